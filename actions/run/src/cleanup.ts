// The post step: when main stopped before its operation ended (the runner killed it, or it
// gave up waiting), cancel the operation so nothing keeps running on the server. Best effort:
// it only ever warns.
import * as core from "@actions/core";
import { ReocloClient } from "@reoclo/client";
import { InputError, readPostSettings } from "./inputs.js";
import { STATE, USER_AGENT } from "./constants.js";

export async function cleanup(): Promise<void> {
  const operationId = core.getState(STATE.operationId);
  if (!operationId || core.getState(STATE.finished) === "true") return;
  try {
    const settings = readPostSettings((name) => core.getInput(name), process.env);
    core.setSecret(settings.apiKey);
    const client = new ReocloClient({
      apiUrl: settings.apiUrl,
      apiKey: settings.apiKey,
      userAgent: USER_AGENT,
      retry: { attempts: 4, baseDelayMs: 500, maxDelayMs: 4_000 },
      log: (msg) => core.info(`[reoclo] ${msg}`),
    });
    const op = await client.cancel(operationId, AbortSignal.timeout(20_000));
    core.info(
      `[reoclo] operation ${operationId} was left running by the main step: cancel sent (status ${op.status})`,
    );
  } catch (err) {
    const why = err instanceof InputError || err instanceof Error ? err.message : String(err);
    core.warning(`Could not cancel operation ${operationId} left running by the main step: ${why}`);
  }
}
