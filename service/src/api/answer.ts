import { CONTENT_TYPE_EVENT_STREAM, HEADERS } from "@reoclo/protocol";
import type { Context } from "hono";
import type { AccessDeps, Access } from "../access/pipeline";
import { keyEndedEnvelope, type KeyWatch, type StreamCredential } from "../access/key-watch";
import { ServiceError } from "../errors";
import { operationEventStream } from "../operations/events";
import { settledWithin, type OperationServices, type RequestFacts, type Started } from "../operations/start";
import { MAX_SEQ, type OperationRow } from "../operations/store";
import { execAnswer } from "../operations/view";

// How the automation API answers for an operation: its event stream, 202 at once, or the result
// once known (spec §3, §6). Shared by every route that starts or streams an operation.

/** What the automation API routes are built from. */
export interface ApiDeps {
  readonly access: AccessDeps;
  readonly svc: OperationServices;
}

const SSE_HEADERS = {
  [HEADERS.contentType]: `${CONTENT_TYPE_EVENT_STREAM}; charset=utf-8`,
  "Cache-Control": "no-cache, no-transform",
  Connection: "keep-alive",
  "X-Accel-Buffering": "no",
};

/** The request's idempotency and user agent, for a verb (startOperation checks the key). */
export function requestFacts(c: Context, input: unknown): RequestFacts {
  return {
    route: c.req.path,
    input,
    idempotencyKey: c.req.header(HEADERS.idempotencyKey),
    userAgent: c.req.header(HEADERS.userAgent),
  };
}

export interface AnswerOptions {
  /** Answer 202 `{operation_id, status: "running", …extra}` at once instead of waiting (spec §3 login). */
  accepted?: boolean;
  extra?: Record<string, unknown>;
}

/**
 * 202 `{operation_id, status: "running", outcome: "running", …extra}`: the operation started and
 * nobody waits for it (spec §3 registry login, §11 deploy). Needs no automation key.
 */
export function answerAccepted(c: Context, operationId: string, extra: Record<string, unknown> = {}) {
  c.header(HEADERS.operationId, operationId);
  return c.json({ operation_id: operationId, status: "running", outcome: "running", ...extra }, 202);
}

const wantsEvents = (c: Context) => (c.req.header(HEADERS.accept) ?? "").includes(CONTENT_TYPE_EVENT_STREAM);

/**
 * Whose event streams end when their credential does: the automation key that passed the access
 * pipeline, or the management API caller's integration key or session (see `callerStream`).
 */
export type StreamWatch = Pick<Access, "key"> | StreamKey | undefined;

/** Answers for an operation just started (or replayed): its events, 202, or the result once known. */
export async function answerStarted(
  c: Context,
  deps: ApiDeps,
  access: StreamWatch,
  started: Started,
  opts: AnswerOptions = {},
) {
  const { op } = started;
  if (started.replayed) c.header(HEADERS.idempotentReplayed, "true");
  // The id is known before any event: a streaming client can cancel or resume at once.
  c.header(HEADERS.operationId, op.id);
  if (wantsEvents(c))
    return answerEvents(c, deps.svc, op, 0, access && ("key" in access ? streamKey(deps, access) : access));
  if (opts.accepted) return answerAccepted(c, op.id, opts.extra);
  const final = await settledWithin(deps.svc, op, deps.svc.ctx.config.syncWaitSeconds * 1000);
  return c.json({ ...execAnswer(final), ...opts.extra }, 200);
}

/** The credential an event stream was opened with (checked once, for its request), and what watches it. */
export interface StreamKey {
  readonly keyWatch: Pick<KeyWatch, "watchCredential">;
  readonly what: StreamCredential;
  readonly id: string;
}

export const streamKey = (deps: ApiDeps, access: Pick<Access, "key">): StreamKey => ({
  keyWatch: deps.access.keyWatch,
  what: "automation_key",
  id: access.key.id,
});

/**
 * The operation's event stream (spec §6), for whoever may read it. The credential was checked once,
 * for this request: if it is revoked or expires (a session: ends) while the stream is open, the
 * stream ends with an `error` event and the operation goes on.
 */
export function answerEvents(
  c: Context,
  svc: OperationServices,
  op: Pick<OperationRow, "id">,
  after: number,
  key?: StreamKey,
) {
  const requestId = (c.get("requestId") as string | undefined) ?? "";
  const stream = operationEventStream(svc, op, after, {
    endEarly:
      key &&
      ((end) =>
        key.keyWatch.watchCredential(key.what, key.id, (why) =>
          end(keyEndedEnvelope(why, requestId, key.what)),
        )),
  });
  // c.body keeps what the pipeline already set (X-Request-Id, RateLimit-*, Idempotent-Replayed).
  return c.body(stream, 200, SSE_HEADERS);
}

/**
 * `Last-Event-ID` (or `?last_event_id=`): absent or empty means from the start; a number past the
 * end is clamped (nothing new, not an error); anything else was never an id of ours.
 */
export function parseLastEventId(value: string | undefined): number {
  const text = value?.trim() ?? "";
  if (text === "") return 0;
  if (!/^\d{1,30}$/.test(text))
    throw new ServiceError(
      "validation",
      `${HEADERS.lastEventId} must be the id of an event of this stream.`,
      {
        [HEADERS.lastEventId]: ["is not an event id"],
      },
    );
  // Event ids are output sequence numbers; an id past any stream's end means "nothing new".
  return Math.min(Number(text), MAX_SEQ);
}
