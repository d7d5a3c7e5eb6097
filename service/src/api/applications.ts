// /deploy, /restart and /reboot (spec §5): operations started like /exec, answered like /exec.
import { deployRequestSchema, rebootRequestSchema, restartRequestSchema } from "@reoclo/protocol";
import { Hono } from "hono";
import { automationAccess } from "../access/pipeline";
import { deployApplication, restartApplication } from "../applications/deploy";
import { rebootServer } from "../servers/reboot";
import { answerStarted, requestFacts, type ApiDeps } from "./answer";

export function applicationRoutes(deps: ApiDeps) {
  const { svc } = deps;
  return new Hono()
    .post(
      "/deploy",
      automationAccess(deps.access, { operation: "deploy", body: deployRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        return answerStarted(
          c,
          deps,
          access,
          await deployApplication(svc, access, input, requestFacts(c, input)),
        );
      },
    )
    .post(
      "/restart",
      automationAccess(deps.access, { operation: "restart", body: restartRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        return answerStarted(
          c,
          deps,
          access,
          await restartApplication(svc, access, input, requestFacts(c, input)),
        );
      },
    )
    .post(
      "/reboot",
      automationAccess(deps.access, { operation: "reboot", body: rebootRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        return answerStarted(c, deps, access, await rebootServer(svc, access, input, requestFacts(c, input)));
      },
    );
}
