// Registry login and logout on a host (spec §3): the host's container CLI (docker or podman, a
// server setting) logs in with a stored credential, the password on standard input.
import { registryLoginRequestSchema, registryLogoutRequestSchema } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import { Hono } from "hono";
import { automationAccess } from "../access/pipeline";
import { credentialSecretContext } from "../credentials/credentials";
import { registryCredentials, servers } from "../db/schema";
import { AppError } from "../errors";
import { REGISTRY_SCRIPT } from "../operations/scripts";
import { startOperation, type OperationApiDeps } from "./operations";

/** Usernames shorter than this are not masked in output (they would garble every word they occur in). */
const MASK_USERNAME_MIN = 3;
const LOGIN_TIMEOUT_SECONDS = 120;

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

export function registryRoutes(deps: OperationApiDeps) {
  const { ctx } = deps;
  const cliOf = async (serverId: string) => {
    const [server] = await ctx.db
      .select({ cli: servers.containerCli })
      .from(servers)
      .where(eq(servers.id, serverId))
      .limit(1);
    if (!server) throw new AppError("not_found", "Server not found.");
    return server.cli;
  };
  return new Hono()
    .post(
      "/registry-auth/login",
      automationAccess(deps.access, { operation: "registry_login", body: registryLoginRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const serverId = input.server_id.toLowerCase();
        const [cred] = await ctx.db
          .select()
          .from(registryCredentials)
          .where(
            and(
              eq(registryCredentials.id, input.credential_id.toLowerCase()),
              eq(registryCredentials.orgId, access.key.orgId),
            ),
          )
          .limit(1);
        if (!cred) throw new AppError("not_found", "Registry credential not found.");
        if (!ctx.secrets.available)
          throw new AppError(
            "secrets_unavailable",
            "The registry password is encrypted and the service has no master key (REOCLO_MASTER_KEY).",
          );
        const password = ctx.secrets.decrypt(cred.passwordEnc, credentialSecretContext(cred.id));
        return startOperation(c, deps, access, input, {
          type: "registry_login",
          serverId,
          credentialId: cred.id,
          command: REGISTRY_SCRIPT,
          env: { REOCLO_REGISTRY_PASSWORD: password, REOCLO_REGISTRY_USERNAME: cred.username },
          maskAlso: [password, ...(cred.username.length >= MASK_USERNAME_MIN ? [cred.username] : [])],
          publicEnv: {
            REOCLO_REGISTRY_CLI: b64(await cliOf(serverId)),
            REOCLO_REGISTRY: b64(cred.registryUrl),
            REOCLO_REGISTRY_ACTION: b64("login"),
          },
          timeoutSeconds: LOGIN_TIMEOUT_SECONDS,
          runId: input.run_id ?? undefined,
          runContext: input.run_context ?? undefined,
          answer: {
            accepted: true,
            extra: { registry_url: cred.registryUrl, registry_type: cred.registryType },
          },
        });
      },
    )
    .post(
      "/registry-auth/logout",
      automationAccess(deps.access, { operation: "registry_logout", body: registryLogoutRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const serverId = input.server_id.toLowerCase();
        return startOperation(c, deps, access, input, {
          type: "registry_logout",
          serverId,
          command: REGISTRY_SCRIPT,
          env: {},
          publicEnv: {
            REOCLO_REGISTRY_CLI: b64(await cliOf(serverId)),
            REOCLO_REGISTRY: b64(input.registry_url),
            REOCLO_REGISTRY_ACTION: b64("logout"),
          },
          timeoutSeconds: LOGIN_TIMEOUT_SECONDS,
          runId: input.run_id ?? undefined,
          runContext: input.run_context ?? undefined,
          answer: { extra: { registry_url: input.registry_url } },
        });
      },
    );
}
