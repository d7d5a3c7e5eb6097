import { createHash } from "node:crypto";
import type { OpenApiDocument } from "./document";

// The reference page at /api/docs: the OpenAPI document rendered by the service as one HTML page,
// with no script and no external asset (its only style is inline and allowed by its hash), so it
// works offline, under a strict Content-Security-Policy, and with a screen reader.

type Json = Record<string, unknown>;

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:0 1rem 4rem;color:#1a1a1a;background:#fff}
a{color:#0b57a4}
a:focus,main:focus{outline:3px solid #0b57a4;outline-offset:2px}
.skip{position:absolute;left:-100vw}
.skip:focus{position:static;display:inline-block;margin:.5rem 0}
code{font-family:ui-monospace,monospace;font-size:.95em;background:#f2f2f2;padding:0 .2em;border-radius:3px}
section.operation{border-top:1px solid #ccc;margin-top:2rem}
.route{font-size:1.1rem}
.method{font-weight:700;font-family:ui-monospace,monospace;margin-right:.5em}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:#f2f2f2}
tbody th{font-weight:400}
`.trim();

/** The CSP source that allows the page's one inline style and nothing else. */
export const REFERENCE_STYLE_SOURCE = `'sha256-${createHash("sha256").update(STYLE, "utf8").digest("base64")}'`;

/** The page's Content-Security-Policy: nothing but its own inline style. */
export const REFERENCE_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${REFERENCE_STYLE_SOURCE}`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

/** Escaped text with `code` spans, in paragraphs split at blank lines. */
function prose(text: string | undefined, tag = "p"): string {
  if (!text) return "";
  return text
    .split(/\n{2,}/)
    .map((para) => `<${tag}>${inline(para)}</${tag}>`)
    .join("\n");
}

const inline = (text: string) => escapeHtml(text).replace(/`([^`]+)`/g, "<code>$1</code>");

const slug = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");

/** A string value of the document, or the fallback. */
const text = (v: unknown, fallback = ""): string =>
  typeof v === "string" ? v : typeof v === "number" ? String(v) : fallback;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads `#/components/...` references of the document. */
class Resolver {
  constructor(private readonly doc: Json) {}

  resolve(value: unknown): Json {
    let current = value;
    for (let depth = 0; depth < 8 && isObject(current) && typeof current.$ref === "string"; depth++) {
      const parts = current.$ref.replace(/^#\//, "").split("/");
      current = parts.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), this.doc);
    }
    return isObject(current) ? current : {};
  }
}

const SAFE_INTEGER_BOUND = Number.MAX_SAFE_INTEGER;

/** The branches of a union (anyOf or oneOf), `{"type": "null"}` included. */
function branches(schema: Json): Json[] {
  const list = (schema.anyOf ?? schema.oneOf) as unknown[] | undefined;
  return Array.isArray(list) ? list.filter(isObject) : [];
}

/** A short type: `string (uuid)`, `integer or null`, `"running"`, `array of Operation`. */
function typeOf(schema: Json): string {
  if (typeof schema.$ref === "string") return schema.$ref.split("/").pop() ?? "object";
  if ("const" in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const union = branches(schema);
  if (union.length > 0) return [...new Set(union.map(typeOf))].join(" or ");
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined];
  const named = types
    .filter((t): t is string => typeof t === "string")
    .map((t) => {
      if (t === "array") return `array of ${isObject(schema.items) ? typeOf(schema.items) : "any"}`;
      if (t === "object" && isObject(schema.additionalProperties))
        return `object of ${typeOf(schema.additionalProperties)}`;
      if (t === "string" && typeof schema.format === "string") return `string (${schema.format})`;
      return t;
    });
  return named.length > 0 ? named.join(" or ") : "any";
}

/** Limits worth reading: lengths, ranges, defaults, patterns a person can read. */
function limitsOf(schema: Json): string[] {
  const parts: string[] = [];
  for (const s of [schema, ...branches(schema)]) {
    const shortest = typeof s.minLength === "number" && s.minLength > 0 ? s.minLength : undefined;
    const longest = typeof s.maxLength === "number" ? s.maxLength : undefined;
    if (shortest !== undefined && longest !== undefined) parts.push(`${shortest}–${longest} characters`);
    else if (shortest !== undefined)
      parts.push(`at least ${shortest} ${shortest === 1 ? "character" : "characters"}`);
    else if (longest !== undefined) parts.push(`at most ${longest} characters`);
    const min = typeof s.minimum === "number" && s.minimum > -SAFE_INTEGER_BOUND ? s.minimum : undefined;
    const max = typeof s.maximum === "number" && s.maximum < SAFE_INTEGER_BOUND ? s.maximum : undefined;
    if (min !== undefined && max !== undefined) parts.push(`${min} to ${max}`);
    else if (min !== undefined) parts.push(`at least ${min}`);
    else if (max !== undefined) parts.push(`at most ${max}`);
    if ("default" in s && s.default !== null) parts.push(`default ${JSON.stringify(s.default)}`);
    if (typeof s.pattern === "string" && !s.format && s.pattern.length <= 40)
      parts.push(`pattern ${s.pattern}`);
  }
  return parts;
}

function describeSchema(schema: Json): string {
  const own = typeof schema.description === "string" ? schema.description : undefined;
  const inner = branches(schema).find((b) => typeof b.description === "string")?.description as
    string | undefined;
  const limits = limitsOf(schema);
  return [
    (own ?? inner) ? inline(own ?? inner!) : "",
    limits.length ? `<br>${escapeHtml(limits.join("; "))}` : "",
  ]
    .join("")
    .replace(/^<br>/, "");
}

interface FieldRow {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
  readonly description: string;
}

/** The fields of an object schema, its nested objects' fields as `parent.child`. */
function fieldRows(schema: Json, r: Resolver, prefix = "", depth = 0): FieldRow[] {
  const object = r.resolve(schema);
  const properties = isObject(object.properties) ? object.properties : {};
  const required = new Set(Array.isArray(object.required) ? (object.required as string[]) : []);
  const rows: FieldRow[] = [];
  for (const [name, field] of Object.entries(properties)) {
    if (!isObject(field)) continue;
    rows.push({
      name: `${prefix}${name}`,
      type: typeOf(field),
      required: required.has(name),
      description: describeSchema(field),
    });
    const nested = [field, ...branches(field)].map((s) => r.resolve(s)).find((s) => isObject(s.properties));
    if (nested && depth < 2) rows.push(...fieldRows(nested, r, `${prefix}${name}.`, depth + 1));
  }
  return rows;
}

function fieldTable(rows: readonly FieldRow[], caption: string): string {
  if (rows.length === 0) return "";
  const body = rows
    .map(
      (row) =>
        `<tr><th scope="row"><code>${escapeHtml(row.name)}</code></th><td>${escapeHtml(row.type)}</td><td>${row.required ? "yes" : "no"}</td><td>${row.description}</td></tr>`,
    )
    .join("\n");
  return `<table><caption>${escapeHtml(caption)}</caption>
<thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Required</th><th scope="col">Description</th></tr></thead>
<tbody>
${body}
</tbody></table>`;
}

/** An object's fields, or for a union the fields of each form it may take. */
function schemaFields(schema: Json, r: Resolver, caption: string): string {
  const resolved = r.resolve(schema);
  const forms = branches(resolved).filter((b) => isObject(r.resolve(b).properties));
  if (forms.length > 1)
    return `<p>One of ${forms.length} forms:</p>\n${forms
      .map((form, i) => fieldTable(fieldRows(form, r), `${caption}, form ${i + 1}`))
      .join("\n")}`;
  return fieldTable(fieldRows(forms[0] ?? resolved, r), caption);
}

function parametersSection(operation: Json, r: Resolver, title: string): string {
  const params = (Array.isArray(operation.parameters) ? operation.parameters : []).map((p) => r.resolve(p));
  if (params.length === 0) return "";
  const rows = params
    .map((p) => {
      const schema = isObject(p.schema) ? r.resolve(p.schema) : {};
      const description =
        typeof p.description === "string" ? p.description : (schema.description as string | undefined);
      const limits = limitsOf(schema);
      return `<tr><th scope="row"><code>${escapeHtml(String(p.name))}</code></th><td>${escapeHtml(String(p.in))}</td><td>${escapeHtml(typeOf(schema))}</td><td>${p.required ? "yes" : "no"}</td><td>${description ? inline(description) : ""}${limits.length ? `${description ? "<br>" : ""}${escapeHtml(limits.join("; "))}` : ""}</td></tr>`;
    })
    .join("\n");
  return `<h4>Parameters</h4>
<table><caption>Parameters of ${escapeHtml(title)}</caption>
<thead><tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th><th scope="col">Required</th><th scope="col">Description</th></tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

function bodySection(operation: Json, r: Resolver, title: string): string {
  if (!operation.requestBody) return "";
  const body = r.resolve(operation.requestBody);
  const content = isObject(body.content) ? body.content : {};
  const parts = Object.entries(content).map(([mediaType, media]) => {
    const schema = isObject(media) && isObject(media.schema) ? media.schema : {};
    return `<p><code>${escapeHtml(mediaType)}</code>${body.required ? ", required" : ", optional"}.</p>\n${schemaFields(schema, r, `Request body of ${title}`)}`;
  });
  return `<h4>Request body</h4>\n${prose(body.description as string | undefined)}\n${parts.join("\n")}`;
}

function responsesSection(operation: Json, r: Resolver, title: string): string {
  const responses = isObject(operation.responses) ? operation.responses : {};
  const rows: string[] = [];
  const details: string[] = [];
  for (const [status, raw] of Object.entries(responses)) {
    const response = r.resolve(raw);
    const content = isObject(response.content) ? response.content : {};
    const types = Object.keys(content);
    rows.push(
      `<tr><th scope="row">${escapeHtml(status)}</th><td>${inline(text(response.description))}</td><td>${types.map((t) => `<code>${escapeHtml(t)}</code>`).join(", ")}</td></tr>`,
    );
    const json = content["application/json"];
    if (status.startsWith("2") && isObject(json) && isObject(json.schema)) {
      const fields = schemaFields(json.schema, r, `Answer ${status} of ${title}`);
      if (fields) details.push(`<p>The ${status} answer (JSON):</p>\n${fields}`);
    }
    const stream = content["text/event-stream"];
    if (status.startsWith("2") && isObject(stream) && isObject(stream.schema))
      details.push(prose(stream.schema.description as string | undefined));
  }
  return `<h4>Responses</h4>
<table><caption>Responses of ${escapeHtml(title)}</caption>
<thead><tr><th scope="col">Status</th><th scope="col">Meaning</th><th scope="col">Content</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>
${details.join("\n")}`;
}

function securityText(operation: Json, doc: Json): string {
  const requirements = Array.isArray(operation.security) ? operation.security.filter(isObject) : [];
  if (requirements.length === 0) return "No key needed.";
  const components = isObject(doc.components) ? doc.components : {};
  const schemes = isObject(components.securitySchemes) ? components.securitySchemes : {};
  const names = requirements.flatMap((req) => Object.keys(req));
  const labels = names.map((name) => {
    const scheme = isObject(schemes[name]) ? schemes[name] : {};
    if (scheme.type === "http") return `\`Authorization: Bearer ${text(scheme.bearerFormat)}\``;
    if (scheme.in === "cookie") return `the \`${String(scheme.name)}\` cookie`;
    return `\`${String(scheme.name)}\` header`;
  });
  return `Send ${labels.join(", or ")}.`;
}

interface PageOperation {
  readonly method: string;
  readonly path: string;
  readonly operation: Json;
  readonly anchor: string;
}

/** Renders the reference page of an OpenAPI document. */
export function renderReferencePage(document: OpenApiDocument): string {
  const doc = document as unknown as Json;
  const r = new Resolver(doc);
  const info = isObject(doc.info) ? doc.info : {};
  const title = `${text(info.title, "API")} API reference`;
  const paths = isObject(doc.paths) ? doc.paths : {};
  const byTag = new Map<string, PageOperation[]>();
  for (const tag of Array.isArray(doc.tags) ? doc.tags.filter(isObject) : []) byTag.set(String(tag.name), []);
  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (!isObject(operation)) continue;
      const tag = Array.isArray(operation.tags) ? String(operation.tags[0]) : "Other";
      const list = byTag.get(tag) ?? [];
      list.push({
        method,
        path,
        operation,
        anchor: `op-${slug(text(operation.operationId, `${method} ${path}`))}`,
      });
      byTag.set(tag, list);
    }
  }
  const tagDescriptions = new Map(
    (Array.isArray(doc.tags) ? doc.tags.filter(isObject) : []).map((t) => [
      String(t.name),
      t.description as string | undefined,
    ]),
  );
  const sections = [...byTag.entries()].filter(([, ops]) => ops.length > 0);

  const toc = sections
    .map(
      ([tag, ops]) =>
        `<li><a href="#tag-${slug(tag)}">${escapeHtml(tag)}</a><ul>\n${ops
          .map(
            (op) =>
              `<li><a href="#${op.anchor}">${escapeHtml(text(op.operation.summary, op.path))}</a>: <code>${op.method.toUpperCase()} ${escapeHtml(op.path)}</code></li>`,
          )
          .join("\n")}\n</ul></li>`,
    )
    .join("\n");

  const body = sections
    .map(([tag, ops]) => {
      const operations = ops
        .map((op) => {
          const summary = text(op.operation.summary, `${op.method.toUpperCase()} ${op.path}`);
          return `<section class="operation" aria-labelledby="${op.anchor}">
<h3 id="${op.anchor}">${escapeHtml(summary)}</h3>
<p class="route"><span class="method">${op.method.toUpperCase()}</span><code>${escapeHtml(op.path)}</code></p>
${prose(op.operation.description as string | undefined)}
<p>${inline(securityText(op.operation, doc))}</p>
${parametersSection(op.operation, r, summary)}
${bodySection(op.operation, r, summary)}
${responsesSection(op.operation, r, summary)}
</section>`;
        })
        .join("\n");
      return `<section aria-labelledby="tag-${slug(tag)}">
<h2 id="tag-${slug(tag)}">${escapeHtml(tag)}</h2>
${prose(tagDescriptions.get(tag))}
${operations}
</section>`;
    })
    .join("\n");

  const envelope = r.resolve({ $ref: "#/components/schemas/ErrorEnvelope" });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the reference</a>
<header>
<h1>${escapeHtml(title)}</h1>
${prose(info.description as string | undefined)}
<p>Version ${escapeHtml(text(info.version))}. The machine-readable document: <a href="openapi.json"><code>openapi.json</code></a> (OpenAPI 3.1).</p>
</header>
<nav aria-labelledby="contents">
<h2 id="contents">Contents</h2>
<ul>
<li><a href="#errors">Errors</a></li>
${toc}
</ul>
</nav>
<main id="main" tabindex="-1">
<section aria-labelledby="errors">
<h2 id="errors">Errors</h2>
<p>Every error answer has this body, whatever the route.</p>
${fieldTable(fieldRows(envelope, r), "The error envelope")}
</section>
${body}
</main>
</body>
</html>
`;
}
