// /registry-auth/login and /logout (spec §3): parse, call the verb, answer.
import { registryLoginRequestSchema, registryLogoutRequestSchema } from "@reoclo/protocol";
import { Hono } from "hono";
import { automationAccess } from "../access/pipeline";
import { registryLogin, registryLogout } from "../credentials/registry-auth";
import { answerStarted, requestFacts, type ApiDeps } from "./answer";

export function registryRoutes(deps: ApiDeps) {
  const { svc } = deps;
  return new Hono()
    .post(
      "/registry-auth/login",
      automationAccess(deps.access, { operation: "registry_login", body: registryLoginRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const started = await registryLogin(svc, access, input, requestFacts(c, input));
        // 202 at once: the action follows the operation (spec §3).
        return answerStarted(c, deps, access, started, {
          accepted: true,
          extra: { registry_url: started.registryUrl, registry_type: started.registryType },
        });
      },
    )
    .post(
      "/registry-auth/logout",
      automationAccess(deps.access, { operation: "registry_logout", body: registryLogoutRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const started = await registryLogout(svc, access, input, requestFacts(c, input));
        return answerStarted(c, deps, access, started, { extra: { registry_url: input.registry_url } });
      },
    );
}
