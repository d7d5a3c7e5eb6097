// The API client every action step builds: masks the key, logs retries in the job log.
import * as core from "@actions/core";
import { ReocloClient, type ClientOptions } from "@reoclo/client";

/** Enough to ride out a service restart of about a minute (1, 2, 4, 8, 15, 15, 15 s ceilings, full jitter). */
export const ACTION_RETRY = { attempts: 8, baseDelayMs: 1_000, maxDelayMs: 15_000 } as const;

export function actionClient(
  settings: { apiUrl: string; apiKey: string },
  userAgent: string,
  options: Partial<Pick<ClientOptions, "retry" | "pollIntervalMs">> = {},
): ReocloClient {
  core.setSecret(settings.apiKey);
  return new ReocloClient({
    apiUrl: settings.apiUrl,
    apiKey: settings.apiKey,
    userAgent,
    retry: ACTION_RETRY,
    log: (msg) => core.info(`[reoclo] ${msg}`),
    ...options,
  });
}
