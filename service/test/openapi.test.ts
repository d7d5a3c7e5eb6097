// The OpenAPI document of both APIs and its reference page (spec §11): a real validator accepts the
// document, it names exactly the routes the app serves, its request bodies are the schemas the
// routes validate with, and /api/docs renders every operation without script or external asset.
import { createHash } from "node:crypto";
import {
  deployRequestSchema,
  execRequestSchema,
  rebootRequestSchema,
  registryLoginRequestSchema,
  registryLogoutRequestSchema,
  restartRequestSchema,
} from "@reoclo/protocol";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { need } from "../src/access/principal";
import type { ManagementRoute } from "../src/api/management/router";
import { defineVerb } from "../src/control/verb";
import { buildOpenApiDocument } from "../src/openapi/document";
import { createTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { servedRoutes } from "./fixtures/routes";

type Json = Record<string, unknown>;

const isJson = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The value at a path of keys (array indexes too) in a parsed document, or undefined. */
const at = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (node, key) => (typeof node === "object" && node !== null ? (node as Json)[key] : undefined),
    value,
  );

const keysOf = (value: unknown) => (isJson(value) ? Object.keys(value) : []);
const objectAt = (value: unknown, ...path: string[]): Json => {
  const found = at(value, ...path);
  return isJson(found) ? found : {};
};

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

/** Every operation of a document: `POST /api/automation/v1/exec` and its object. */
function operationsOf(doc: Json) {
  return Object.entries(objectAt(doc, "paths")).flatMap(([path, item]) =>
    METHODS.filter((m) => isJson(at(item, m))).map((m) => ({
      method: m.toUpperCase(),
      path,
      operation: objectAt(item, m),
    })),
  );
}

/** Follows `#/components/...` references. */
const deref = (doc: Json, value: unknown): Json =>
  typeof at(value, "$ref") === "string"
    ? deref(doc, at(doc, ...String(at(value, "$ref")).slice(2).split("/")))
    : isJson(value)
      ? value
      : {};

async function validate(doc: Json) {
  const validator = new Validator();
  const result = await validator.validate(doc);
  return { ...result, version: validator.version };
}

const MAX_TIMEOUT_SECONDS = 3600;

describe("the OpenAPI document and the reference page", () => {
  let database: TestDatabase;
  let t: TestApp;
  let doc: Json;

  beforeAll(async () => {
    database = await createTestDatabase("pglite");
    t = createTestApp(database, { env: { REOCLO_MAX_TIMEOUT_SECONDS: String(MAX_TIMEOUT_SECONDS) } });
    const res = await t.app.request("/api/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    doc = objectAt(await res.json());
  });
  afterAll(async () => {
    await t?.close();
    await database?.close();
  });

  it("is served without a key and passes a real OpenAPI 3.1 validator", async () => {
    const result = await validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(result.version).toBe("3.1");
    expect(at(doc, "openapi")).toMatch(/^3\.1\./);
  });

  it("documents every route the app serves, and the app serves every documented operation", () => {
    // The dashboard's pages (HTML for people, at `/`) are not an API; everything else is documented.
    const served = servedRoutes(t.app)
      .filter((r) => r.path.startsWith("/api/") || r.path === "/healthz" || r.path === "/readyz")
      .map((r) => `${r.method} ${r.path}`);
    const documented = operationsOf(doc).map((o) => `${o.method} ${o.path}`);
    expect(served.filter((r) => !documented.includes(r))).toEqual([]);
    expect(documented.filter((r) => !served.includes(r))).toEqual([]);
    expect(served).toContain("POST /api/automation/v1/exec");
    expect(served).toContain("GET /api/openapi.json");
  });

  it("gives every operation a unique id, a tag, a summary and a security requirement", () => {
    const ops = operationsOf(doc);
    const ids = ops.map((o) => at(o.operation, "operationId"));
    expect(new Set(ids).size).toBe(ids.length);
    const tags = (at(doc, "tags") as unknown[]).map((tag) => at(tag, "name"));
    for (const { method, path, operation } of ops) {
      const where = `${method} ${path}`;
      expect(operation.summary, where).toMatch(/\S/);
      expect(tags, where).toContain(at(operation, "tags", "0"));
      expect(Array.isArray(operation.security), where).toBe(true);
      const params = ((operation.parameters ?? []) as unknown[]).filter((p) => at(p, "in") === "path");
      const named = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      expect(
        params.map((p) => at(p, "name")),
        where,
      ).toEqual(named);
      for (const p of params) expect(at(p, "required"), where).toBe(true);
    }
  });

  it("answers every error with the one ErrorEnvelope, whose fields are protocol's", () => {
    expect(keysOf(at(doc, "components", "schemas", "ErrorEnvelope", "properties"))).toEqual([
      "error",
      "detail",
      "request_id",
      "fields",
    ]);
    for (const { method, path, operation } of operationsOf(doc)) {
      for (const [status, response] of Object.entries(objectAt(operation, "responses"))) {
        if (Number(status) < 400) continue;
        const resolved = deref(doc, response);
        expect(at(resolved, "content", "application/json", "schema"), `${method} ${path} ${status}`).toEqual({
          $ref: "#/components/schemas/ErrorEnvelope",
        });
      }
    }
    expect(keysOf(at(doc, "paths", "/api/automation/v1/exec", "post", "responses"))).toEqual(
      expect.arrayContaining(["200", "401", "403", "404", "422", "429", "503"]),
    );
  });

  it("describes each automation body with the fields of the protocol schema that validates it", () => {
    const bodies = {
      "/exec": execRequestSchema,
      "/deploy": deployRequestSchema,
      "/restart": restartRequestSchema,
      "/reboot": rebootRequestSchema,
      "/registry-auth/login": registryLoginRequestSchema,
      "/registry-auth/logout": registryLogoutRequestSchema,
    };
    for (const [path, schema] of Object.entries(bodies)) {
      const body = objectAt(doc, "paths", `/api/automation/v1${path}`, "post", "requestBody");
      const documented = objectAt(body, "content", "application/json", "schema");
      expect(body.required, path).toBe(true);
      expect(keysOf(documented.properties), path).toEqual(Object.keys(schema.shape));
      const required = Object.entries(schema.shape)
        .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
        .map(([name]) => name);
      expect(documented.required, path).toEqual(required);
    }
    const exec = objectAt(
      doc,
      ...["paths", "/api/automation/v1/exec", "post", "requestBody", "content", "application/json", "schema"],
    );
    expect(exec.required).toEqual(["server_id", "command"]);
    expect(at(exec, "properties", "server_id")).toMatchObject({ type: "string", format: "uuid" });
    expect(at(exec, "properties", "server_id", "description")).toMatch(/server/);
    // The service's own maximum, not the default: the document follows the configuration.
    expect(JSON.stringify(at(exec, "properties", "timeout_seconds"))).toContain(
      `"maximum":${MAX_TIMEOUT_SECONDS}`,
    );
    expect(JSON.stringify(at(exec, "properties", "env"))).toContain(
      '"additionalProperties":{"type":"string"}',
    );
  });

  it("serves the reference page with a strict CSP, no script and no external asset", async () => {
    const res = await t.app.request("/api/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? "";
    const hash = createHash("sha256").update(style, "utf8").digest("base64");
    expect(csp).toContain(`style-src 'sha256-${hash}'`);
    expect(html.match(/<style/g)).toHaveLength(1);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|style="/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("shows every documented operation on the page, with its method, path and body fields", async () => {
    const html = await (await t.app.request("/api/docs")).text();
    const missing: string[] = [];
    for (const { method, path, operation } of operationsOf(doc)) {
      if (!html.includes(`<span class="method">${method}</span><code>${path}</code>`))
        missing.push(`${method} ${path}`);
      const schema = at(operation, "requestBody", "content", "application/json", "schema");
      for (const field of keysOf(deref(doc, schema).properties))
        if (!html.includes(`<code>${field}</code>`)) missing.push(`${method} ${path} body field ${field}`);
    }
    expect(missing).toEqual([]);
    expect(html).toContain(
      '<tr><th scope="row"><code>command</code></th><td>string</td><td>yes</td><td>Run by a shell on the host',
    );
  });

  it("is a page a screen reader can walk: language, title, skip link, headings in order, scoped table headers", async () => {
    const html = await (await t.app.request("/api/docs")).text();
    expect(html).toMatch(/^<!doctype html>\n<html lang="en">/);
    expect(html).toMatch(/<title>[^<]+<\/title>/);
    expect(html).toMatch(/<a class="skip" href="#main">/);
    expect(html).toMatch(/<main id="main"/);
    const levels = [...html.matchAll(/<h([1-6])[\s>]/g)].map((m) => Number(m[1]));
    expect(levels[0]).toBe(1);
    expect(levels.filter((l) => l === 1)).toHaveLength(1);
    const jumps = levels.filter((level, i) => i > 0 && level > levels[i - 1]! + 1);
    expect(jumps).toEqual([]);
    const headerCells = [...html.matchAll(/<th[\s>][^>]*>/g)].map((m) => m[0]);
    expect(headerCells.length).toBeGreaterThan(0);
    expect(headerCells.filter((cell) => !/ scope="(col|row)"/.test(cell))).toEqual([]);
    const ids = [...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [, target] of html.matchAll(/href="#([^"]+)"/g)) expect(ids).toContain(target);
  });
});

describe("the management table in the document", () => {
  const serversUpdate = defineVerb({
    name: "servers.update",
    need: need("servers:write"),
    what: "edit servers",
    // Refined objects and unions are what verbs use; zod's .omit refuses the first.
    input: z
      .object({
        id: z.guid().describe("The server's id."),
        name: z.string().optional().describe("A new name."),
        port: z.number().int().optional(),
      })
      .refine((v) => v.name !== "", { error: "name must not be empty" }),
    run: () => Promise.resolve({}),
  });
  const serversPin = defineVerb({
    name: "servers.pin",
    need: need("servers:write"),
    what: "re-pin host keys",
    input: z.union([
      z.object({ id: z.string(), host_key_fingerprint: z.string() }),
      z.object({ id: z.string(), trust_on_first_use: z.literal(true) }),
    ]),
    run: () => Promise.resolve({}),
  });
  const auditList = defineVerb({
    name: "audit.list",
    need: need("audit_logs:read"),
    what: "read the audit log",
    input: z.object({
      org: z.string().optional(),
      actor: z.string().optional().describe("user:<id> or integration_key:<id>."),
      limit: z.coerce.number().int().default(50),
    }),
    run: () => Promise.resolve({ items: [], next_cursor: null }),
  });
  const login = defineVerb({
    name: "auth.login",
    need: null,
    public: true,
    what: "sign in",
    input: z.object({ email: z.string(), password: z.string() }),
    run: () => Promise.resolve({}),
  });
  const operationsEvents = defineVerb({
    name: "operations.events",
    need: need("logs:read"),
    what: "read operation output",
    input: z.object({ id: z.string() }),
    run: () => Promise.resolve({}),
  });
  const routes: ManagementRoute[] = [
    { method: "patch", path: "/servers/{id}", verb: serversUpdate, summary: "Edit a server" },
    {
      method: "post",
      path: "/servers/{id}/host-key",
      verb: serversPin,
      summary: "Re-pin a server's host key",
      status: 201,
    },
    {
      method: "get",
      path: "/audit",
      verb: auditList,
      summary: "Read the audit log",
      response: z.object({
        items: z.array(z.object({ id: z.string() })),
        next_cursor: z.string().nullable(),
      }),
    },
    { method: "post", path: "/auth/login", verb: login, summary: "Sign in" },
    {
      method: "get",
      path: "/operations/{id}/events",
      verb: operationsEvents,
      summary: "Follow",
      stream: true,
    },
  ];
  const doc = objectAt(buildOpenApiDocument({ managementRoutes: routes, maxTimeoutSeconds: 21600 }));
  const op = (method: string, path: string) => objectAt(doc, "paths", `/api${path}`, method);

  it("stays a valid document", async () => {
    expect((await validate(doc)).valid).toBe(true);
  });

  it("takes path parameters out of the body, by name, from the verb's own field", () => {
    const update = op("patch", "/servers/{id}");
    expect(update.parameters).toEqual([
      expect.objectContaining({ in: "path", name: "id", required: true, description: "The server's id." }),
    ]);
    const body = at(update, "requestBody", "content", "application/json", "schema");
    expect(keysOf(at(body, "properties"))).toEqual(["name", "port"]);
    expect(at(update, "requestBody", "required")).toBe(false);
    const pin = op("post", "/servers/{id}/host-key");
    const forms = at(pin, "requestBody", "content", "application/json", "schema", "anyOf") as unknown[];
    expect(forms.map((f) => keysOf(at(f, "properties")))).toEqual([
      ["host_key_fingerprint"],
      ["trust_on_first_use"],
    ]);
    expect(at(pin, "requestBody", "required")).toBe(true);
    expect(keysOf(pin.responses)[0]).toBe("201");
  });

  it("turns a GET verb's input into query parameters (without reoclo-admin's org) and shows a declared answer", () => {
    const audit = op("get", "/audit");
    expect(audit.requestBody).toBeUndefined();
    expect(audit.parameters).toEqual([
      expect.objectContaining({
        in: "query",
        name: "actor",
        description: "user:<id> or integration_key:<id>.",
      }),
      expect.objectContaining({ in: "query", name: "limit" }),
    ]);
    const answer = at(audit, "responses", "200", "content", "application/json", "schema", "properties");
    expect(keysOf(answer)).toEqual(["items", "next_cursor"]);
  });

  it("states who may call: integration key, X-API-Key or session, the verb's permission, none for sign-in", () => {
    const audit = op("get", "/audit");
    expect(audit.security).toEqual([{ integrationKey: [] }, { integrationKeyHeader: [] }, { session: [] }]);
    expect(audit["x-reoclo-permission"]).toBe("audit_logs:read");
    expect(audit["x-reoclo-least-role"]).toBe("viewer");
    expect(audit.description).toContain("audit_logs:read");
    expect(op("post", "/auth/login").security).toEqual([]);
    expect(at(doc, "components", "securitySchemes", "integrationKeyHeader")).toMatchObject({
      type: "apiKey",
      in: "header",
      name: "X-API-Key",
    });
  });

  it("documents an event stream as text/event-stream and groups routes by the verb's area", () => {
    const events = op("get", "/operations/{id}/events");
    expect(keysOf(at(events, "responses", "200", "content"))).toEqual(["text/event-stream"]);
    expect(events.parameters).toEqual([expect.objectContaining({ in: "path", name: "id" })]);
    expect((doc.tags as unknown[]).map((tag) => at(tag, "name"))).toEqual([
      "Automation API",
      "Servers",
      "Audit log",
      "Sign-in",
      "Operations",
      "Service",
    ]);
  });
});
