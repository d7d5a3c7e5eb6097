import { INTEGRATION_KEY_PREFIX, KEY_PREFIX, integrationKeyPattern } from "@reoclo/protocol";
import { parseConfig } from "../config";
import { adminSocketPath, socketIsLive } from "../db/data-dir";
import { orgId, type Executor, type RouteRef } from "./executor";
import { UsageError } from "./inputs";
import { remoteExecutor } from "./remote";
import { callAdminSocket } from "./socket-client";

// Chooses where a command runs: a remote service (--url or REOCLO_URL, with an integration key),
// the running service's admin socket, or this process on the service's storage. The heavy modules
// (storage, the database drivers, SSH) are loaded only by the in-process executor.

export interface ExecutorChoice {
  readonly env: Record<string, string | undefined>;
  /** `--url`, else REOCLO_URL: a remote service. */
  readonly url: string | undefined;
  /** The integration key read with `--api-key-stdin`, else REOCLO_API_KEY. */
  readonly apiKey: string | undefined;
  /** `--org` as given (remote mode refuses it: a key acts in its own organisation). */
  readonly org: string | undefined;
  readonly warn: (message: string) => void;
  /** The management API's routes, for the remote mode (default: the service's own table). */
  readonly routes?: () => Promise<readonly RouteRef[]>;
}

export async function openExecutor(choice: ExecutorChoice): Promise<Executor> {
  const url = choice.url ?? nonEmpty(choice.env.REOCLO_URL);
  if (url !== undefined) {
    if (choice.org !== undefined)
      throw new UsageError(
        "--org: a remote service's integration key acts in its own organisation; --org is for reoclo-admin on the service's machine",
      );
    return remoteExecutor({
      url,
      apiKey: integrationKey(choice.apiKey ?? nonEmpty(choice.env.REOCLO_API_KEY)),
      routes: choice.routes ?? (async () => (await import("./route-table")).managementRouteRefs()),
      warn: choice.warn,
    });
  }
  if (choice.apiKey !== undefined)
    throw new UsageError("--api-key-stdin: the key is for a remote service; give --url or set REOCLO_URL");
  const config = parseConfig(choice.env);
  // A running service owns the embedded database: talk to it through its socket.
  const socket = adminSocketPath(config.dataDir);
  if (!config.databaseUrl && (await socketIsLive(socket))) {
    const call = (verb: string, input: Record<string, unknown>) => callAdminSocket(socket, verb, input);
    return { call, tenantId: (org) => orgId(call, org), close: () => Promise.resolve() };
  }
  const { inProcessExecutor } = await import("./in-process");
  return inProcessExecutor(config, choice.warn);
}

const nonEmpty = (v: string | undefined) => (v?.trim() ? v.trim() : undefined);

/** The remote mode's key: an integration key, never an automation key (spec §11). */
function integrationKey(key: string | undefined): string {
  if (key === undefined)
    throw new UsageError(
      "a remote service (--url or REOCLO_URL) needs an integration key: set REOCLO_API_KEY=rk_t_… or pipe it in with --api-key-stdin",
    );
  if (key.startsWith(KEY_PREFIX))
    throw new UsageError(
      `the API key is an automation key (${KEY_PREFIX}…), which works only on the automation API: a remote service's management API takes an integration key (${INTEGRATION_KEY_PREFIX}…); unset REOCLO_URL to manage the service on its own machine`,
    );
  if (!integrationKeyPattern.test(key))
    throw new UsageError(`the API key is not a well-formed integration key (${INTEGRATION_KEY_PREFIX}…)`);
  return key;
}
