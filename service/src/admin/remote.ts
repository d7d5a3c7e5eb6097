import { HEADERS, MANAGEMENT_BASE_PATH } from "@reoclo/protocol";
import { ServiceError } from "../errors";
import type { Executor, RouteRef } from "./executor";
import { UsageError } from "./inputs";

// reoclo-admin against a remote service (`--url` or REOCLO_URL) with an integration key: each verb
// goes to its route of the management API (spec §11), found in the route table by verb name, so
// the command line needs no shell on the service's machine and is refused exactly as the API is.

export interface RemoteOptions {
  readonly url: string;
  readonly apiKey: string;
  readonly routes: () => Promise<readonly RouteRef[]>;
  readonly warn: (message: string) => void;
}

/** Longest wait for one answer; the management API answers long work (deploys) at once. */
const ANSWER_TIMEOUT_MS = 300_000;

export function remoteExecutor(opts: RemoteOptions): Executor {
  const base = serviceBase(opts.url, opts.warn);
  let table: Promise<readonly RouteRef[]> | undefined;
  let tenant: Promise<string> | undefined;

  const call = async (verb: string, input: Record<string, unknown>): Promise<unknown> => {
    const route = (await (table ??= opts.routes())).find((r) => r.verb === verb);
    if (!route)
      throw new UsageError(
        `"${verb.replaceAll(".", " ")}" is not on the management API: run it with reoclo-admin on the service's machine (without --url or REOCLO_URL)`,
      );
    const rest: Record<string, unknown> = { ...input };
    let path = route.path;
    for (const [placeholder, name = ""] of route.path.matchAll(/\{(\w+)\}/g)) {
      const value = name === "tenant_id" ? (rest[name] ?? (await tenantId())) : rest[name];
      delete rest[name];
      if (value === undefined) throw new UsageError(`"${verb}" needs ${name}`);
      path = path.replace(placeholder, encodeURIComponent(scalar(value)));
    }
    const target = new URL(`${base.pathname.replace(/\/$/, "")}${MANAGEMENT_BASE_PATH}${path}`, base);
    if (route.from === "query")
      for (const [k, v] of Object.entries(rest))
        if (v !== undefined)
          target.searchParams.set(k, Array.isArray(v) ? v.map(scalar).join(",") : scalar(v));
    const body = route.from === "body" ? JSON.stringify(rest) : undefined;
    let res: Response;
    try {
      res = await fetch(target, {
        method: route.method.toUpperCase(),
        headers: {
          [HEADERS.authorization]: `Bearer ${opts.apiKey}`,
          [HEADERS.accept]: "application/json",
          ...(body === undefined ? {} : { [HEADERS.contentType]: "application/json" }),
        },
        body,
        // A redirect would resend the key elsewhere: ask for the final address instead.
        redirect: "error",
        signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
      });
    } catch (err) {
      throw new ServiceError("service_unavailable", `Could not reach ${base.origin}: ${reason(err)}.`);
    }
    return answerOf(res, base.origin);
  };

  const tenantId = () =>
    (tenant ??= call("auth.me", {}).then((me) => {
      const id = (me as { org?: { id?: unknown } }).org?.id;
      if (typeof id !== "string")
        throw new ServiceError("service_unavailable", "GET /api/auth/me answered without the organisation.");
      return id;
    }));

  return { call, tenantId: () => tenantId(), close: () => Promise.resolve() };
}

/** The service's base URL; the key travels in it, so a clear-text one is said out loud. */
function serviceBase(url: string, warn: (message: string) => void): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new UsageError(`--url / REOCLO_URL: "${url}" is not a URL such as https://reoclo.example.com`);
  }
  if (base.protocol !== "https:" && base.protocol !== "http:")
    throw new UsageError(`--url / REOCLO_URL: "${url}" is not an http(s) URL`);
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(base.hostname);
  if (base.protocol === "http:" && !loopback)
    warn(`${base.origin} is plain http: the integration key travels unencrypted`);
  return base;
}

/** The answer's JSON, or the service's refusal (its error envelope) as a ServiceError. */
async function answerOf(res: Response, origin: string): Promise<unknown> {
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === "" ? {} : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (res.ok && parsed !== undefined) return parsed;
  const envelope = parsed as { error?: unknown; detail?: unknown; fields?: Record<string, string[]> };
  if (typeof envelope?.error === "string" && typeof envelope.detail === "string")
    throw new ServiceError(envelope.error as "service_unavailable", envelope.detail, envelope.fields);
  throw new ServiceError(
    "service_unavailable",
    `${origin} answered HTTP ${res.status} ${res.ok ? "with something else than JSON" : "without an error body"}: is it a Reoclo service?`,
  );
}

/** A path or query value: the verbs' inputs there are strings, numbers and booleans. */
const scalar = (v: unknown): string =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? String(v) : JSON.stringify(v);

const reason = (err: unknown): string => {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof Error && err.name === "TimeoutError")
    return `no answer in ${ANSWER_TIMEOUT_MS / 1000} s`;
  return cause?.code ?? cause?.message ?? (err as Error).message;
};
