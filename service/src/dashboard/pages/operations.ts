import { OPERATION_OUTCOMES } from "@reoclo/protocol";
import type { Hono } from "hono";
import { html } from "hono/html";
import type { z } from "zod";
import { listApps } from "../../control/applications";
import { keysList } from "../../control/automation-keys";
import { listIntegrationKeysVerb } from "../../control/integration-keys";
import { cancelOperationVerb, listOperationsVerb, showOperationVerb } from "../../control/operations";
import { usersList } from "../../control/people";
import { serversList } from "../../control/servers";
import type { Verb } from "../../control/verb";
import type { ServiceError } from "../../errors";
import type { OperationDetail } from "../../operations/view";
import {
  duration,
  shortId,
  can,
  csrfField,
  errorText,
  noticeFrom,
  redirectWith,
  run,
  statusOf,
  when,
  type DashContext,
  type DashDeps,
  type DashEnv,
  type Markup,
} from "../kit";
import { failedPage, page } from "../layout";

// Operations (spec §11 "The dashboard"): what ran in the organisation, whoever started it (a CI
// job's automation key, a person, a script), filtered; one operation with its output followed live
// (dashboard.js replays /api/operations/{id}/events) and a cancel button.

const NOTICES = {
  cancel: "Cancelled: the operation's process tree on the host was told to stop.",
};

// ---- Shared with the audit log's page (filters, names of what rows point at) ----

/** A filter's value from the query string, or undefined when absent or blank. */
export const queryValue = (c: DashContext, name: string): string | undefined =>
  c.req.query(name)?.trim() || undefined;

/** The filters of a list page, as they were given (for the form, the verb and the next page's link). */
export function filtersOf(c: DashContext, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = queryValue(c, name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** The link to a list's next page: the same filters and the cursor. */
export function nextPageLink(path: string, filters: Record<string, string>, cursor: string | null): Markup {
  if (!cursor) return html``;
  const query = new URLSearchParams({ ...filters, cursor });
  return html`<p class="actions"><a href="${path}?${query.toString()}" rel="next">Next page</a></p>`;
}

/** The organisation's servers, keys, people and applications by id, where the person may list them. */
export interface Names {
  servers: Map<string, string>;
  apps: Map<string, string>;
  keys: Map<string, string>;
  integrationKeys: Map<string, string>;
  users: Map<string, string>;
}

async function listIfAllowed<T>(
  c: DashContext,
  deps: DashDeps,
  verb: Verb<z.ZodType, { items: T[] }>,
): Promise<T[]> {
  return can(c, verb) ? (await run(c, deps, verb, {})).items : [];
}

export async function namesOf(c: DashContext, deps: DashDeps): Promise<Names> {
  const [servers, apps, keys, integrationKeys, users] = await Promise.all([
    listIfAllowed(c, deps, serversList),
    listIfAllowed(c, deps, listApps),
    listIfAllowed(c, deps, keysList),
    listIfAllowed(c, deps, listIntegrationKeysVerb),
    listIfAllowed(c, deps, usersList),
  ]);
  return {
    servers: new Map(servers.map((s) => [s.id, s.name])),
    apps: new Map(apps.map((a) => [a.id, a.name])),
    keys: new Map(keys.map((k) => [k.id, `${k.name} (${k.prefix})`])),
    integrationKeys: new Map(integrationKeys.map((k) => [k.id, `${k.label} (${k.prefix})`])),
    users: new Map(users.map((u) => [u.id, u.email])),
  };
}

/** Who an actor is (`user:<id>`, `integration_key:<id>`, `admin-cli`…), by name where known. */
export function actorName(names: Names, actor: string | null | undefined, keyId?: string | null): string {
  if (actor) {
    const [kind, id] = actor.split(/:(.*)/s) as [string, string | undefined];
    if (kind === "user" && id) return names.users.get(id) ?? `person ${shortId(id)}`;
    if (kind === "integration_key" && id)
      return `integration key ${names.integrationKeys.get(id) ?? shortId(id)}`;
    return actor;
  }
  if (keyId) return `automation key ${names.keys.get(keyId) ?? shortId(keyId)}`;
  return "";
}

/** Text shortened to `max` characters, with an ellipsis. */
export const truncate = (value: string, max: number) =>
  value.length > max ? `${value.slice(0, max - 1)}…` : value;

/**
 * A labelled filter: a picker of `options` (value → label) when the person may list them, else a
 * text field for the id. A value not among the options stays selectable, so a link keeps its filter.
 */
export function filterField(opts: {
  id: string;
  label: string;
  value: string | undefined;
  options?: ReadonlyMap<string, string> | undefined;
  any?: string;
  hint?: string;
  placeholder?: string;
}): Markup {
  const hintId = `${opts.id}-hint`;
  const described = opts.hint ? html`aria-describedby="${hintId}"` : "";
  const hint = opts.hint ? html`<span class="hint" id="${hintId}">${opts.hint}</span>` : "";
  if (opts.options) {
    const entries = [...opts.options];
    if (opts.value !== undefined && !opts.options.has(opts.value)) entries.push([opts.value, opts.value]);
    return html`<div>
      <label for="${opts.id}">${opts.label}</label>
      <select id="${opts.id}" name="${opts.id}" ${described}>
        <option value="">${opts.any ?? "Any"}</option>
        ${entries.map(
          ([value, label]) =>
            html`<option value="${value}" ${value === opts.value ? html`selected` : ""}>${label}</option>`,
        )}
      </select>
      ${hint}
    </div>`;
  }
  return html`<div>
    <label for="${opts.id}">${opts.label}</label>
    <input
      type="text"
      id="${opts.id}"
      name="${opts.id}"
      value="${opts.value ?? ""}"
      ${opts.placeholder ? html`placeholder="${opts.placeholder}"` : ""}
      ${described}
    />
    ${hint}
  </div>`;
}

export const SINCE_HINT = "A date (2025-01-31) or a time (2025-01-31T12:00:00Z).";

/** The filter form's buttons. */
export const filterButtons = (path: string) =>
  html`<div class="actions"><button type="submit">Filter</button> <a href="${path}">Clear</a></div>`;

/** A picker only when the person may list what it picks from (else a text field for the id). */
const pickerIf = (c: DashContext, verb: Verb<z.ZodType, unknown>, options: Map<string, string>) =>
  can(c, verb) ? options : undefined;

/** A page that could not be shown: the verb's error, with its status. */

// ---- Operations ----

const FILTERS = ["server", "application", "key", "user", "status", "run_id", "since"] as const;

/** One line about what an operation was for: its application, commit, CI run. */
function summaryOf(op: OperationDetail, names: Names): string {
  const parts: string[] = [];
  // An exec says what ran (stored redacted); a deploy says which application.
  if (op.command && !op.application_id) parts.push(op.command.replace(/\s+/g, " "));
  if (op.application_id)
    parts.push(`application ${names.apps.get(op.application_id) ?? shortId(op.application_id)}`);
  if (op.commit_ref) parts.push(`ref ${op.commit_ref}`);
  const ctx = op.run_context;
  if (ctx?.repository) parts.push(ctx.workflow ? `${ctx.repository} · ${ctx.workflow}` : ctx.repository);
  if (op.run_id) parts.push(`run ${op.run_id}`);
  if (op.reason) parts.push(op.reason);
  return truncate(parts.join("; "), 120);
}

const whoOf = (op: OperationDetail, names: Names) => actorName(names, op.actor, op.key_id) || "unknown";

const exitOf = (op: OperationDetail) => (op.result ? String(op.result.exit_code) : "none yet");

const statusSpan = (op: OperationDetail, id?: string) =>
  html`<span ${id ? html`id="${id}"` : ""} class="status status-${op.outcome}">${op.outcome}</span>`;

function operationRow(op: OperationDetail, names: Names) {
  return html`<tr>
    <td>
      <a href="/operations/${op.operation_id}" aria-label="Operation ${op.operation_id}"
        ><code>${shortId(op.operation_id)}</code></a
      >
    </td>
    <td>${when(op.started_at)}</td>
    <td>${op.operation_type}</td>
    <td>${op.server_name}</td>
    <td>${summaryOf(op, names) || html`<span class="muted">—</span>`}</td>
    <td>${whoOf(op, names)}</td>
    <td>${statusSpan(op)}</td>
    <td>${op.result ? op.result.exit_code : html`<span class="muted">—</span>`}</td>
    <td>${op.result ? duration(op.result.duration_ms) : html`<span class="muted">—</span>`}</td>
  </tr>`;
}

function operationsFilterForm(c: DashContext, filters: Record<string, string>, names: Names) {
  return html`<form method="get" action="/operations" class="filters" aria-label="Filter operations">
    ${filterField({ id: "server", label: "Server", value: filters.server, options: pickerIf(c, serversList, names.servers), hint: can(c, serversList) ? undefined : "A server's id." })}
    ${filterField({ id: "application", label: "Application", value: filters.application, options: pickerIf(c, listApps, names.apps), hint: can(c, listApps) ? undefined : "An application's id." })}
    ${filterField({ id: "key", label: "Key", value: filters.key, options: pickerIf(c, keysList, names.keys), hint: can(c, keysList) ? undefined : "An automation key's id." })}
    ${filterField({ id: "user", label: "Person", value: filters.user, options: pickerIf(c, usersList, names.users), hint: can(c, usersList) ? undefined : "A person's id." })}
    ${filterField({ id: "status", label: "Status", value: filters.status, options: new Map(OPERATION_OUTCOMES.map((o) => [o, o])) })}
    ${filterField({ id: "run_id", label: "Run id", value: filters.run_id, hint: "A CI run's id, as the action sent it." })}
    ${filterField({ id: "since", label: "Since", value: filters.since, hint: SINCE_HINT })}
    ${filterButtons("/operations")}
  </form>`;
}

function operationsEmpty(filtered: boolean) {
  if (filtered)
    return html`<div class="empty">
      <p>No operation matches these filters. <a href="/operations">Clear the filters</a> to see them all.</p>
    </div>`;
  return html`<div class="empty">
    <p>No operations yet.</p>
    <p>
      Operations appear here when a CI job with an automation key calls <code>reoclo/run</code> (or the
      automation API), or when someone runs a command from a server's page. Create an automation key on
      <a href="/keys">API Keys</a> and add it to your CI secrets.
    </p>
  </div>`;
}

function operationsTable(items: readonly OperationDetail[], names: Names) {
  return html`<table>
    <caption class="visually-hidden">
      Operations, newest first
    </caption>
    <thead>
      <tr>
        <th scope="col">Operation</th>
        <th scope="col">Started</th>
        <th scope="col">Type</th>
        <th scope="col">Server</th>
        <th scope="col">Summary</th>
        <th scope="col">Who</th>
        <th scope="col">Status</th>
        <th scope="col">Exit code</th>
        <th scope="col">Duration</th>
      </tr>
    </thead>
    <tbody>
      ${items.map((op) => operationRow(op, names))}
    </tbody>
  </table>`;
}

function runContextFacts(op: OperationDetail) {
  const ctx = op.run_context as Record<string, unknown> | null | undefined;
  if (!ctx) return [];
  const verified = ctx.verified === true;
  const labels: [string, string][] = [
    ["provider", "CI provider"],
    ["repository", "Repository"],
    ["workflow", "Workflow"],
    ["workflow_ref", "Workflow file"],
    ["environment", "Environment"],
    ["trigger", "Trigger"],
    ["actor", "CI actor"],
    ["ref", "Git ref"],
    ["sha", "Commit"],
  ];
  // Verified: the issuer signed these claims (a key from a trust policy); claimed: the job said so.
  const source = verified
    ? html`<dt>Run context</dt>
        <dd>
          <span class="status status-active">verified</span> signed by <code>${String(ctx.issuer)}</code>
        </dd>`
    : html`<dt>Run context</dt>
        <dd><span class="muted">claimed by the CI job, not verified</span></dd>`;
  return [
    source,
    ...labels
      .filter(([k]) => typeof ctx[k] === "string" && ctx[k] !== "")
      .map(
        ([k, label]) =>
          html`<dt>${label}</dt>
            <dd>${String(ctx[k])}</dd>`,
      ),
  ];
}

/** The stored output of a finished operation (its kept tails), so the page shows it without a script. */
function storedOutput(op: OperationDetail): Markup {
  const r = op.result;
  if (!r) return html``;
  const cut = (stream: string) =>
    html`<span class="meta">${`[${stream}: only its last part is kept]\n`}</span>`;
  const end = `\n[${op.outcome}, exit code ${r.exit_code}]\n`;
  return html`${r.stdout_truncated ? cut("stdout") : ""}${r.stdout ? html`<span class="stdout">${r.stdout}</span>` : ""}${r.stderr_truncated ? cut("stderr") : ""}${r.stderr ? html`<span class="stderr">${r.stderr}</span>` : ""}<span
      class="meta"
      >${end}</span
    >`;
}

function operationView(
  c: DashContext,
  op: OperationDetail,
  names: Names,
  opts: { error?: ServiceError } = {},
) {
  const running = op.outcome === "running";
  // The live log: a log region is polite by default, so every chunk of output would be read out as
  // it arrives. It is quiet here (aria-live="off"); dashboard.js announces the operation's end once,
  // and the log takes focus to be read at any time.
  const app = op.application_id ? (names.apps.get(op.application_id) ?? op.application_id) : undefined;
  const body = html`<dl class="facts">
      <dt>Operation id</dt>
      <dd><code>${op.operation_id}</code></dd>
      <dt>Type</dt>
      <dd>${op.operation_type}</dd>
      <dt>Server</dt>
      <dd>${op.server_name}</dd>
      ${
        op.command && !op.application_id
          ? html`<dt>Command</dt>
              <dd><code class="command">${op.command}</code></dd>`
          : ""
      }
      ${
        app
          ? html`<dt>Application</dt>
              <dd>${app}</dd>`
          : ""
      }
      ${
        op.commit_ref
          ? html`<dt>Commit ref</dt>
              <dd><code>${op.commit_ref}</code></dd>`
          : ""
      }
      <dt>Who</dt>
      <dd>${whoOf(op, names)}</dd>
      <dt>Started</dt>
      <dd>${when(op.started_at)}</dd>
      <dt>Ended</dt>
      <dd>${when(op.completed_at, running ? "still running" : "unknown")}</dd>
      <dt>Status</dt>
      <dd>${statusSpan(op, "op-status")}</dd>
      ${
        op.reason
          ? html`<dt>Reason</dt>
              <dd>${op.reason}</dd>`
          : ""
      }
      <dt>Exit code</dt>
      <dd><span id="op-exit">${exitOf(op)}</span></dd>
      ${
        op.result
          ? html`<dt>Duration</dt>
              <dd>${duration(op.result.duration_ms)}</dd>`
          : ""
      }
      ${
        op.run_id
          ? html`<dt>Run id</dt>
              <dd><code>${op.run_id}</code></dd>`
          : ""
      }
      ${runContextFacts(op)}
    </dl>
    ${
      running && can(c, cancelOperationVerb)
        ? html`<form
            method="post"
            action="/operations/${op.operation_id}/cancel"
            id="cancel-form"
            class="inline"
            data-confirm="Cancel this operation? Its process tree on the host is stopped."
          >
            ${csrfField(c)}<button type="submit" class="danger">Cancel</button>
          </form>`
        : ""
    }
    <h2>Output</h2>
    <p class="hint">
      Lines written to standard error are marked <span class="legend-stderr">⚠ in red</span>; the rest is
      standard output.
    </p>
    <p>
      <label class="check"><input type="checkbox" id="follow" checked /> Follow the output</label>
    </p>
    <pre
      class="log"
      id="live-log"
      role="log"
      aria-live="off"
      aria-label="Output"
      tabindex="0"
      data-live-log
      ${running ? "" : html`data-ended`}
      data-events="/api/operations/${op.operation_id}/events"
    >
${running ? html`<span class="meta">Waiting for output… (reload the page to see more)</span>` : storedOutput(op)}</pre>
    <p><a href="/operations">All operations</a></p>`;
  return page(c, {
    title: `Operation ${shortId(op.operation_id)}`,
    section: "/operations",
    notice: noticeFrom(c, NOTICES),
    ...(opts.error ? { error: opts.error, status: statusOf(opts.error) } : {}),
    body,
  });
}

export function operationPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/operations", async (c) => {
    const filters = filtersOf(c, FILTERS);
    // A page size (not in the form) is kept from page to page like the filters.
    const paging = { ...filters, ...filtersOf(c, ["limit"]) };
    const names = await namesOf(c, deps);
    const form = operationsFilterForm(c, filters, names);
    let result;
    try {
      result = await run(c, deps, listOperationsVerb, { ...paging, cursor: queryValue(c, "cursor") });
    } catch (err) {
      return failedPage(c, "Operations", err, form);
    }
    return page(c, {
      title: "Operations",
      body: html`${form}
      ${
        result.items.length === 0
          ? operationsEmpty(Object.keys(filters).length > 0 || queryValue(c, "cursor") !== undefined)
          : operationsTable(result.items, names)
      }
      ${nextPageLink("/operations", paging, result.next_cursor)}`,
    });
  });

  app.get("/operations/:id", async (c) => {
    const id = c.req.param("id");
    try {
      const [op, names] = await Promise.all([run(c, deps, showOperationVerb, { id }), namesOf(c, deps)]);
      return operationView(c, op, names);
    } catch (err) {
      return failedPage(c, "Operation", err, html`<p><a href="/operations">All operations</a></p>`);
    }
  });

  app.post("/operations/:id/cancel", async (c) => {
    const id = c.req.param("id");
    try {
      await run(c, deps, cancelOperationVerb, { id });
    } catch (err) {
      const refused = errorText(err);
      // The operation's page again, with why; if it cannot be read either, the error alone.
      try {
        const [op, names] = await Promise.all([run(c, deps, showOperationVerb, { id }), namesOf(c, deps)]);
        return operationView(c, op, names, { error: refused });
      } catch {
        return failedPage(c, "Operation", refused, html`<p><a href="/operations">All operations</a></p>`);
      }
    }
    return redirectWith(c, `/operations/${encodeURIComponent(id)}`, "cancel");
  });
}
