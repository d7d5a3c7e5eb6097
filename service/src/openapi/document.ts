import {
  API_BASE_PATH,
  ERROR_CODE_LIST,
  errorEnvelopeSchema,
  errorStatus,
  HEADERS,
  INTEGRATION_KEY_PREFIX,
  KEY_PREFIX,
  MANAGEMENT_BASE_PATH,
} from "@reoclo/protocol";
import { z } from "zod";
import {
  createDocument,
  type ZodOpenApiContentObject,
  type ZodOpenApiOperationObject,
  type ZodOpenApiParameters,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
} from "zod-openapi";
import { pathParams, type ManagementRoute } from "../api/management/router";
import { SESSION_COOKIE } from "../people/sessions";
import servicePackage from "../../package.json" with { type: "json" };
import { AUTOMATION_TAG, automationRoutes, SERVICE_TAG, serviceRoutes } from "./automation-routes";
import { documentManagementRoute } from "./management-routes";
import type { DocumentedRoute, ErrorStatus, Security } from "./routes";
import { needsBody } from "./zod-fields";

// The OpenAPI 3.1 document of both APIs (spec §11), built from the schemas the routes validate
// with: request bodies and parameters from their input side (what clients send), answers from
// their output side. Served at /api/openapi.json and rendered at /api/docs.

export type OpenApiDocument = ReturnType<typeof createDocument>;

export interface DocumentSources {
  /** The management API's table (MANAGEMENT_ROUTES). */
  readonly managementRoutes: readonly ManagementRoute[];
  /** The service's REOCLO_MAX_TIMEOUT_SECONDS, the upper bound of /exec's timeout_seconds. */
  readonly maxTimeoutSeconds: number;
}

/** Every route the service serves, as the document shows it. */
export function documentedRoutes(sources: DocumentSources): DocumentedRoute[] {
  return [
    ...automationRoutes(sources),
    ...sources.managementRoutes.map(documentManagementRoute),
    ...serviceRoutes(),
  ];
}

const ERROR_RESPONSES: Readonly<Record<ErrorStatus, { name: string; description: string }>> = {
  400: { name: "MalformedRequest", description: "The body is not valid JSON." },
  401: {
    name: "Unauthorized",
    description:
      "No valid key or session: missing, malformed, unknown, revoked or expired (one body for all).",
  },
  403: {
    name: "Forbidden",
    description: "Refused: the key's scope or IP allowlist, or the caller's role or permissions.",
  },
  404: {
    name: "NotFound",
    description: "No such id in the caller's organisation (ids of another one included).",
  },
  409: {
    name: "Conflict",
    description: "The same Idempotency-Key is still being created, or the application is busy.",
  },
  413: { name: "PayloadTooLarge", description: "The body is larger than the service accepts." },
  422: { name: "ValidationFailed", description: "The input is invalid; `fields` names each problem." },
  429: { name: "RateLimited", description: "Too many requests; `Retry-After` says when to try again." },
  503: {
    name: "Unavailable",
    description: "A dependency is down: the database, or the master key is missing.",
  },
};

function errorResponse(status: ErrorStatus): ZodOpenApiResponseObject {
  const codes = ERROR_CODE_LIST.filter((code) => errorStatus(code) === status);
  const { description } = ERROR_RESPONSES[status];
  return {
    description: `${description} Codes: ${codes.map((c) => `\`${c}\``).join(", ")}.`,
    headers: z.object({
      [HEADERS.requestId]: z.string().describe("The request's id, also in the body."),
      ...(status === 429 ? { [HEADERS.retryAfter]: z.number().int().describe("Seconds to wait.") } : {}),
    }),
    content: { "application/json": { schema: errorEnvelopeSchema } },
  };
}

const SECURITY: Readonly<Record<Security, Record<string, string[]>[]>> = {
  automation_key: [{ automationKey: [] }],
  management: [{ integrationKey: [] }, { integrationKeyHeader: [] }, { session: [] }],
  none: [],
};

const EVENT_STREAM = {
  schema: {
    type: "string",
    description:
      "Server-Sent Events, each with an `id`: `output` `{stream, data}`, `status` `{status, outcome}`, then `end` (the operation's result) or `error` (the error envelope).",
  },
} as const;

function operationOf(route: DocumentedRoute): ZodOpenApiOperationObject {
  const requestParams: ZodOpenApiParameters = {};
  const names = pathParams(route.path);
  if (names.length > 0)
    requestParams.path = z.object(
      Object.fromEntries(names.map((n) => [n, route.pathParams?.[n] ?? z.string()])),
    );
  if (route.query) requestParams.query = route.query;
  if (route.headers) requestParams.header = route.headers;

  const content: ZodOpenApiContentObject = {};
  if (route.stream !== "only") {
    const mediaType = route.responseMediaType ?? "application/json";
    content[mediaType] = {
      schema: route.response ?? (mediaType === "application/json" ? { type: "object" } : { type: "string" }),
    };
  }
  if (route.stream) content["text/event-stream"] = EVENT_STREAM;
  const responses: ZodOpenApiResponsesObject = {
    [`${route.status}`]: {
      description: route.responseDescription ?? (route.stream === "only" ? "The event stream." : "Success."),
      ...(route.responseHeaders ? { headers: route.responseHeaders } : {}),
      content,
    },
  };
  for (const status of route.errors)
    responses[`${status}`] = { $ref: `#/components/responses/${ERROR_RESPONSES[status].name}` };

  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    security: SECURITY[route.security],
    ...(Object.keys(requestParams).length > 0 ? { requestParams } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: needsBody(route.body),
            content: { "application/json": { schema: route.body } },
          },
        }
      : {}),
    responses,
    ...route.extensions,
  };
}

const TAG_DESCRIPTIONS: Readonly<Record<string, string>> = {
  [AUTOMATION_TAG]: `For CI: base path \`${API_BASE_PATH}\`, an automation key as \`Authorization: Bearer ${KEY_PREFIX}…\`. Every answer carries RateLimit headers.`,
  [SERVICE_TAG]: "Health, readiness and this reference; no key needed.",
};

/** Builds the document; the same sources always give the same document. */
export function buildOpenApiDocument(sources: DocumentSources): OpenApiDocument {
  const routes = documentedRoutes(sources);
  const paths: ZodOpenApiPathsObject = {};
  const tags: string[] = [];
  const usedErrors = new Set<ErrorStatus>();
  const operationIds = new Set<string>();
  for (const route of routes) {
    const item = (paths[route.path] ??= {});
    if (item[route.method]) throw new Error(`Two routes for ${route.method.toUpperCase()} ${route.path}`);
    // Operation ids are unique in a document; a verb served by two routes gets a numbered second id.
    let id = route.operationId;
    for (let n = 2; operationIds.has(id); n++) id = `${route.operationId}-${n}`;
    operationIds.add(id);
    item[route.method] = operationOf({ ...route, operationId: id });
    if (!tags.includes(route.tag)) tags.push(route.tag);
    for (const status of route.errors) usedErrors.add(status);
  }
  const responses: Record<string, ZodOpenApiResponseObject> = {};
  for (const status of [...usedErrors].sort())
    responses[ERROR_RESPONSES[status].name] = errorResponse(status);

  return createDocument(
    {
      openapi: "3.1.0",
      info: {
        title: "Reoclo automation service",
        version: servicePackage.version,
        description: [
          `Two APIs. The automation API (\`${API_BASE_PATH}\`) runs commands, deploys and registry logins for CI with an automation key (\`${KEY_PREFIX}…\`).`,
          `The management API (\`${MANAGEMENT_BASE_PATH}\`) manages servers, applications, keys, people and the audit log with an integration key (\`${INTEGRATION_KEY_PREFIX}…\`, as \`Authorization: Bearer\` or \`${HEADERS.apiKey}\`) or a signed-in session.`,
          `Bodies are JSON; unknown fields are ignored. Every answer carries \`${HEADERS.requestId}\`; every error has one shape, the ErrorEnvelope.`,
        ].join("\n\n"),
      },
      tags: tags.map((name) => ({
        name,
        ...(TAG_DESCRIPTIONS[name] ? { description: TAG_DESCRIPTIONS[name] } : {}),
      })),
      paths,
      components: {
        schemas: { ErrorEnvelope: errorEnvelopeSchema },
        responses,
        securitySchemes: {
          automationKey: {
            type: "http",
            scheme: "bearer",
            bearerFormat: `${KEY_PREFIX}…`,
            description: "An automation key; works only on the automation API.",
          },
          integrationKey: {
            type: "http",
            scheme: "bearer",
            bearerFormat: `${INTEGRATION_KEY_PREFIX}…`,
            description: "An integration key; works only on the management API.",
          },
          integrationKeyHeader: {
            type: "apiKey",
            in: "header",
            name: HEADERS.apiKey,
            description: "The same integration key, in a header of its own.",
          },
          session: {
            type: "apiKey",
            in: "cookie",
            name: SESSION_COOKIE,
            description:
              "The session cookie set by POST /api/auth/login; writes must come from the service's own pages (same Origin).",
          },
        },
      },
    },
    {
      // Unknown fields are ignored on the way in and answers may grow (spec §1, §11): never promise
      // a closed object.
      override: ({ jsonSchema }) => {
        if (jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
        // z.int()'s own bounds (the safe integers) say nothing to a reader.
        if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
        if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      },
      // z.custom fields (env) and the output of transforms say nothing unless described with .meta().
      allowEmptySchema: { custom: true, pipe: { output: true } },
    },
  );
}
