// Input helpers every action shares. Each action builds its one settings object in its own
// inputs.ts; these keep the common inputs (api_url, api_key) read the same way everywhere.

export class InputError extends Error {}

export type GetInput = (name: string) => string;
export type Environment = Readonly<Record<string, string | undefined>>;

/** `api_url`, else the REOCLO_API_URL variable; an http(s) URL without a trailing slash. */
export function readApiUrl(getInput: GetInput, environment: Environment): string {
  const apiUrl = (getInput("api_url").trim() || environment.REOCLO_API_URL?.trim() || "").replace(/\/+$/, "");
  if (!apiUrl)
    throw new InputError(
      `Input "api_url" (or the REOCLO_API_URL environment variable) is required: the URL of your Reoclo service.`,
    );
  if (!/^https?:\/\/[^\s/]+/.test(apiUrl)) throw new InputError(`Input "api_url" must be an http(s) URL.`);
  return apiUrl;
}

/** What a post step needs: where the service is and the key, read again from the inputs (never from state). */
export interface PostSettings {
  readonly apiUrl: string;
  readonly apiKey: string;
}

export function readPostSettings(getInput: GetInput, environment: Environment): PostSettings {
  const apiKey = getInput("api_key").trim();
  if (!apiKey) throw new InputError(`Input "api_key" is required.`);
  return { apiKey, apiUrl: readApiUrl(getInput, environment) };
}
