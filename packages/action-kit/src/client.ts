// The API client every action step builds: masks the key, logs retries in the job log, and
// records in the state whether any request can have reached the service (for the post step).
import * as core from "@actions/core";
import { neverSentReason, ReocloClient, type ClientOptions } from "@reoclo/client";
import { STATE } from "./state.js";

/** Enough to ride out a service restart of about a minute (1, 2, 4, 8, 15, 15, 15 s ceilings, full jitter). */
export const ACTION_RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 } as const;

export interface ActionClientOptions extends Partial<Pick<ClientOptions, "retry" | "pollIntervalMs">> {
  /** Keep STATE.nothingSent up to date (main steps; default true). A post step has no later step to tell. */
  recordSent?: boolean;
}

export function actionClient(
  settings: { apiUrl: string; apiKey: string },
  userAgent: string,
  { recordSent = true, ...options }: ActionClientOptions = {},
): ReocloClient {
  core.setSecret(settings.apiKey);
  return new ReocloClient({
    apiUrl: settings.apiUrl,
    apiKey: settings.apiKey,
    userAgent,
    retry: ACTION_RETRY,
    log: (msg) => core.info(`[reoclo] ${msg}`),
    ...(recordSent ? { fetch: recordingNothingSent(globalThis.fetch.bind(globalThis)) } : {}),
    ...options,
  });
}

/** A fetch that failed before its request left the runner (refused, or a name that does not resolve). */
const leftNothing = (err: unknown): boolean => neverSentReason(err) !== undefined;

/**
 * `fetch` that keeps STATE.nothingSent "true" exactly while no request of this step can have
 * reached the service. It is cleared before a request leaves, so a step killed mid-request
 * leaves it unset and the post step looks the operation up, as it always did.
 */
function recordingNothingSent(inner: typeof fetch): typeof fetch {
  let mayHaveArrived = false;
  let inFlight = 0;
  let recorded = false;
  const record = (nothingSent: boolean) => {
    if (recorded === nothingSent) return;
    core.saveState(STATE.nothingSent, nothingSent ? "true" : "");
    recorded = nothingSent;
  };
  return async (input, init) => {
    record(false);
    inFlight++;
    try {
      const res = await inner(input, init);
      mayHaveArrived = true;
      return res;
    } catch (err) {
      if (!leftNothing(err)) mayHaveArrived = true;
      throw err;
    } finally {
      inFlight--;
      if (!mayHaveArrived && inFlight === 0) record(true);
    }
  };
}
