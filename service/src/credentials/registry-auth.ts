// Registry login and logout on a host (spec §3): the host's container CLI (docker or podman, a
// server setting) logs in with a stored credential, the password on standard input.
import type { RegistryLoginRequest, RegistryLogoutRequest } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { registryCredentials, servers } from "../db/schema";
import { AppError } from "../errors";
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

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/**
 * The fixed command of both operations: the CLI and the registry arrive base64-encoded as env
 * values, the username and password as env values of their own (masked in output); the
 * password reaches the CLI on standard input, never in an argument.
 */
export const REGISTRY_SCRIPT = String.raw`arg() { printf '%s' "$1" | base64 -d; }
cli=$(arg "$REOCLO_REGISTRY_CLI"); registry=$(arg "$REOCLO_REGISTRY"); action=$(arg "$REOCLO_REGISTRY_ACTION")
case "$cli" in docker | podman) ;; *) echo "reoclo: unsupported container CLI $cli" >&2; exit 2 ;; esac
case "$registry" in '' | -*) echo "reoclo: invalid registry" >&2; exit 2 ;; esac
command -v "$cli" >/dev/null 2>&1 || { echo "reoclo: $cli is not installed on this server (the server's container CLI setting says $cli)" >&2; exit 127; }
if [ "$action" = login ]; then
  printf '%s' "$REOCLO_REGISTRY_PASSWORD" | "$cli" login --username "$REOCLO_REGISTRY_USERNAME" --password-stdin -- "$registry"
  exit $?
fi
out=$("$cli" logout -- "$registry" 2>&1); code=$?
printf '%s\n' "$out"
# Already logged out is what was asked for.
case "$out" in *"ot logged in"*) exit 0 ;; esac
exit $code
`;

async function containerCliOf(ctx: ServiceContext, serverId: string) {
  const [server] = await ctx.db
    .select({ cli: servers.containerCli })
    .from(servers)
    .where(eq(servers.id, serverId))
    .limit(1);
  if (!server) throw new AppError("not_found", "Server not found.");
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
  const serverId = input.server_id.toLowerCase();
  const [cred] = await ctx.db
    .select()
    .from(registryCredentials)
    .where(
      and(
        eq(registryCredentials.id, input.credential_id.toLowerCase()),
        eq(registryCredentials.orgId, caller.key.orgId),
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
      runId: input.run_id ?? undefined,
      runContext: input.run_context ?? undefined,
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
  const serverId = input.server_id.toLowerCase();
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
      runId: input.run_id ?? undefined,
      runContext: input.run_context ?? undefined,
    },
    request,
  );
}
