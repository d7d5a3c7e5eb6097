import type { RebootRequest } from "@reoclo/protocol";
import { eq } from "drizzle-orm";
import { servers } from "../db/schema";
import { ServiceError } from "../errors";
import { runReboot } from "../operations/reboot";
import {
  startOperation,
  type KeyCaller,
  type OperationServices,
  type RequestFacts,
} from "../operations/start";

/** POST /reboot: the server's reboot command, then waiting for it to answer SSH again (spec §5). */
export async function rebootServer(
  svc: OperationServices,
  caller: KeyCaller,
  input: RebootRequest,
  request: RequestFacts,
) {
  const serverId = input.server_id;
  const [server] = await svc.ctx.db
    .select({ rebootCommand: servers.rebootCommand })
    .from(servers)
    .where(eq(servers.id, serverId))
    .limit(1);
  if (!server) throw new ServiceError("not_found", "Server not found.");
  const boundMs = svc.ctx.config.rebootTimeoutSeconds * 1000;
  return startOperation(
    svc,
    caller,
    {
      type: "reboot",
      serverId,
      command: server.rebootCommand,
      env: {},
      timeoutSeconds: svc.ctx.config.rebootTimeoutSeconds,
      execute: (pool, target, handlers, operationId) =>
        runReboot(pool, target, { command: server.rebootCommand, operationId, boundMs }, handlers),
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}
