import type { z } from "zod";

// One documented route, whichever API serves it: the management API's table and the automation
// API's static table below are both turned into these, and the document is built from them alone.

export type DocumentedMethod = "get" | "post" | "patch" | "delete";

/** Who may call a route: an automation key, a management caller, or anyone. */
export type Security = "automation_key" | "management" | "none";

export interface DocumentedRoute {
  readonly method: DocumentedMethod;
  /** Absolute, in OpenAPI form: `/api/servers/{id}`. */
  readonly path: string;
  readonly operationId: string;
  readonly tag: string;
  readonly summary: string;
  readonly description?: string;
  readonly security: Security;
  /** Path parameters by name (every `{name}` of the path); a plain string when absent. */
  readonly pathParams?: Readonly<Record<string, z.ZodType>>;
  /** The query's fields (what the route parses the query with). */
  readonly query?: z.ZodObject;
  /** Request headers the route reads. */
  readonly headers?: z.ZodObject;
  /** The JSON body the route validates (input side: what clients send). */
  readonly body?: z.ZodType;
  readonly status: 200 | 201 | 202;
  /** The answer's JSON (output side); a JSON object when unknown. */
  readonly response?: z.ZodType;
  readonly responseDescription?: string;
  /** The answer's media type when it is not JSON (and not an event stream). */
  readonly responseMediaType?: string;
  /** Response headers of the success answer. */
  readonly responseHeaders?: z.ZodObject;
  /** `only`: the answer is an event stream; `also`: an event stream when asked with `Accept`. */
  readonly stream?: "only" | "also";
  /** The error statuses it may answer (each with the error envelope). */
  readonly errors: readonly ErrorStatus[];
  /** Specification extensions (`x-…`) of the operation. */
  readonly extensions?: Readonly<Record<`x-${string}`, unknown>>;
}

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 422 | 429 | 503;
