// Server-Sent Events of `GET /operations/{id}/events` and of `POST /exec` with
// `Accept: text/event-stream` (spec §6). Each event's `data` is one JSON object.
import { z } from "zod";
import { errorEnvelopeSchema } from "./errors.js";
import {
  operationOutcomeSchema,
  operationResultSchema,
  operationStatusSchema,
  terminalOutcomeSchema,
  withOutcome,
} from "./operations.js";

export const SSE_EVENT_NAMES = ["output", "status", "end", "error"] as const;
type SseEventName = (typeof SSE_EVENT_NAMES)[number];

export const OUTPUT_STREAMS = ["stdout", "stderr"] as const;
const outputStreamSchema = z.enum(OUTPUT_STREAMS);
export type OutputStream = z.infer<typeof outputStreamSchema>;

/** A chunk of output, already masked, in the order the host produced it. */
export const outputEventSchema = z.object({
  stream: outputStreamSchema,
  data: z.string(),
});
export type OutputEvent = z.output<typeof outputEventSchema>;

/** The wire status and the precise outcome, as in the polling answers. */
export const statusEventSchema = z.preprocess(
  withOutcome,
  z.object({ status: operationStatusSchema, outcome: operationOutcomeSchema }),
);
export type StatusEvent = z.output<typeof statusEventSchema>;

/**
 * The last event: the same object as the polling answer's `result`; the stream then closes. An
 * older service sent no `outcome` here: its `status` event before `end` said it.
 */
export const endEventSchema = operationResultSchema.extend({ outcome: terminalOutcomeSchema.optional() });
type EndEvent = z.output<typeof endEventSchema>;

/**
 * A last event instead of `end`: the stream stops although the operation goes on, e.g.
 * `key_revoked` or `key_expired` when the stream's key stopped being valid (issue 13). The data
 * is the error envelope of spec §1; a client must not reconnect with the same key.
 */
export const errorEventSchema = errorEnvelopeSchema;
type StreamErrorEvent = z.output<typeof errorEventSchema>;

/** Payload schema per event name, for a client that dispatches on the SSE `event:` field. */
export const sseEventDataSchemas = {
  output: outputEventSchema,
  status: statusEventSchema,
  end: endEventSchema,
  error: errorEventSchema,
} as const satisfies Record<SseEventName, z.ZodType>;

/** One parsed event; `id` is what a reconnecting client sends back as `Last-Event-ID`. */
export type SseEvent =
  | { id: string; event: "output"; data: OutputEvent }
  | { id: string; event: "status"; data: StatusEvent }
  | { id: string; event: "end"; data: EndEvent }
  | { id: string; event: "error"; data: StreamErrorEvent };
