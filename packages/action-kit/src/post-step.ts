// The post step of an action that started an operation: when main stopped before the
// operation ended (the runner killed it, or it gave up waiting), cancel it so nothing keeps
// running on the server. Best effort: it only ever warns.
import * as core from "@actions/core";
import { actionClient } from "./client.js";
import { readPostSettings } from "./inputs.js";
import { resolveApiKey } from "./oidc.js";
import { STATE } from "./state.js";

const say = (msg: string) => core.info(`[reoclo] ${msg}`);

export async function cancelLeftOperation(userAgent: string): Promise<void> {
  const saved = core.getState(STATE.operationId);
  const idempotencyKey = core.getState(STATE.idempotencyKey);
  if (core.getState(STATE.finished) === "true" || (!saved && !idempotencyKey)) {
    return say("nothing left running");
  }
  // Every request of main was refused at connect (or its host unknown): no operation can exist.
  if (!saved && core.getState(STATE.nothingSent) === "true") {
    return say("nothing left running: no request of the main step reached the service");
  }
  try {
    const settings = readPostSettings((name) => core.getInput(name), process.env);
    const signal = AbortSignal.timeout(20_000);
    // With OIDC this is a new key: the main step's is never kept in the state.
    const apiKey = await resolveApiKey(settings, userAgent, signal);
    const client = actionClient({ apiUrl: settings.apiUrl, apiKey }, userAgent, {
      retry: { attempts: 4, baseDelayMs: 500, maxDelayMs: 4_000 },
      recordSent: false,
    });
    const id = saved || (await client.findOperationByIdempotencyKey(idempotencyKey, signal))?.operation_id;
    if (!id) return say("the main step's request never started an operation");
    const op = await client.cancel(id, signal);
    say(`operation ${id} was left running by the main step: cancel sent (status ${op.status})`);
  } catch (err) {
    core.warning(
      `Could not cancel the operation left by the main step: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
