// Registry login and logout on a host (spec §3): the host's container CLI (docker or podman, a
// server setting) logs in with a stored credential, the password on standard input.
import type { RegistryLoginRequest, RegistryLogoutRequest } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { registryCredentials, servers } from "../db/schema";
import { ServiceError } from "../errors";
import { REGISTRY_SCRIPT } from "../operations/scripts";
import { b64 } from "../ssh/wrapper";
import {
  startOperation,
  type KeyCaller,
  type OperationServices,
  type RequestFacts,
} from "../operations/start";
import { credentialSecretContext } from "./credentials";

/** Usernames shorter than this are not masked in output (they would garble every word they occur in). */
const MASK_USERNAME_MIN = 3;
const LOGIN_TIMEOUT_SECONDS = 120;

async function containerCliOf(ctx: ServiceContext, serverId: string) {
  const [server] = await ctx.db
    .select({ cli: servers.containerCli })
    .from(servers)
    .where(eq(servers.id, serverId))
    .limit(1);
  if (!server) throw new ServiceError("not_found", "Server not found.");
  return server.cli;
}

/** POST /registry-auth/login: logs the server's container CLI in with a stored credential. */
export async function registryLogin(
  svc: OperationServices,
  caller: KeyCaller,
  input: RegistryLoginRequest,
  request: RequestFacts,
) {
  const { ctx } = svc;
  const serverId = input.server_id;
  const [cred] = await ctx.db
    .select()
    .from(registryCredentials)
    .where(
      and(eq(registryCredentials.id, input.credential_id), eq(registryCredentials.orgId, caller.key.orgId)),
    )
    .limit(1);
  if (!cred) throw new ServiceError("not_found", "Registry credential not found.");
  if (!ctx.secrets.available)
    throw new ServiceError(
      "secrets_unavailable",
      "The registry password is encrypted and the service has no master key (REOCLO_MASTER_KEY).",
    );
  const password = ctx.secrets.decrypt(cred.passwordEnc, credentialSecretContext(cred.id));
  const started = await startOperation(
    svc,
    caller,
    {
      type: "registry_login",
      serverId,
      credentialId: cred.id,
      command: REGISTRY_SCRIPT,
      env: { REOCLO_REGISTRY_PASSWORD: password, REOCLO_REGISTRY_USERNAME: cred.username },
      maskAlso: [password, ...(cred.username.length >= MASK_USERNAME_MIN ? [cred.username] : [])],
      publicEnv: {
        REOCLO_REGISTRY_CLI: b64(await containerCliOf(ctx, serverId)),
        REOCLO_REGISTRY: b64(cred.registryUrl),
        REOCLO_REGISTRY_ACTION: b64("login"),
      },
      timeoutSeconds: LOGIN_TIMEOUT_SECONDS,
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
  return { ...started, registryUrl: cred.registryUrl, registryType: cred.registryType };
}

/** POST /registry-auth/logout: logs the server's container CLI out of a registry (already out is fine). */
export async function registryLogout(
  svc: OperationServices,
  caller: KeyCaller,
  input: RegistryLogoutRequest,
  request: RequestFacts,
) {
  const serverId = input.server_id;
  return startOperation(
    svc,
    caller,
    {
      type: "registry_logout",
      serverId,
      command: REGISTRY_SCRIPT,
      env: {},
      publicEnv: {
        REOCLO_REGISTRY_CLI: b64(await containerCliOf(svc.ctx, serverId)),
        REOCLO_REGISTRY: b64(input.registry_url),
        REOCLO_REGISTRY_ACTION: b64("logout"),
      },
      timeoutSeconds: LOGIN_TIMEOUT_SECONDS,
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}
