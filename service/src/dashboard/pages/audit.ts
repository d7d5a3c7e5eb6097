import type { Hono } from "hono";
import { html } from "hono/html";
import type { AuditView } from "../../audit/audit";
import { listAuditVerb } from "../../control/audit";
import { keysList } from "../../control/automation-keys";
import { listIntegrationKeysVerb } from "../../control/integration-keys";
import { usersList } from "../../control/people";
import { serversList } from "../../control/servers";
import { shortId, can, run, when, type DashContext, type DashDeps, type DashEnv, type Markup } from "../kit";
import { failedPage, page } from "../layout";
import {
  actorName,
  filterButtons,
  filterField,
  filtersOf,
  namesOf,
  nextPageLink,
  queryValue,
  SINCE_HINT,
  truncate,
  type Names,
} from "./operations";

// Audit log (spec §11 "The dashboard"): every change, sign-in and automation request of the
// organisation, newest first, with filters. The rows hold no secret; the page shows them compactly.

const FILTERS = ["actor", "key", "server", "outcome", "action", "run_id", "since"] as const;

/** A row's details as `key=value` pairs, each value and the whole shortened. */
function detailsText(details: unknown): string {
  if (details === null || details === undefined) return "";
  if (typeof details !== "object" || Array.isArray(details)) return truncate(JSON.stringify(details), 200);
  const pairs = Object.entries(details as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${truncate(typeof v === "string" ? v : JSON.stringify(v), 60)}`);
  return truncate(pairs.join(" "), 200);
}

/** What a row is about: its server, key, application, credential, operation (a link). */
function targetOf(row: AuditView, names: Names): Markup[] {
  const out: Markup[] = [];
  if (row.server_id) out.push(html`server ${names.servers.get(row.server_id) ?? shortId(row.server_id)}`);
  if (row.key_id) out.push(html`key ${names.keys.get(row.key_id) ?? shortId(row.key_id)}`);
  if (row.application_id)
    out.push(html`application ${names.apps.get(row.application_id) ?? shortId(row.application_id)}`);
  if (row.credential_id) out.push(html`credential ${shortId(row.credential_id)}`);
  if (row.operation_id)
    out.push(
      html`<a href="/operations/${row.operation_id}" aria-label="Operation ${row.operation_id}"
        >operation ${shortId(row.operation_id)}</a
      >`,
    );
  return out;
}

const muted = (text: string) => html`<span class="muted">${text}</span>`;

function auditRow(row: AuditView, names: Names) {
  // An automation request's decision has the key, no actor: the key is who asked.
  const actor = actorName(names, row.actor, row.key_id) || "anonymous";
  const action = row.action ?? row.operation;
  const request = row.method && row.path ? `${row.method} ${truncate(row.path, 80)}` : "";
  const target = targetOf(row, names);
  const summary = [row.reason, detailsText(row.details)].filter(Boolean).join(" · ");
  return html`<tr>
    <td>${when(row.at)}</td>
    <td>${actor}</td>
    <td>
      ${action ? html`<code>${action}</code>` : ""}
      ${request ? html`<span class="muted">${request}</span>` : ""}
    </td>
    <td><span class="status status-${row.outcome}">${row.outcome}</span></td>
    <td>${target.length ? target.map((t, i) => html`${i ? ", " : ""}${t}`) : muted("—")}</td>
    <td>${row.client_ip ?? row.peer_ip ?? muted("—")}</td>
    <td>
      ${summary || muted("—")}${row.repeat_count > 1 ? html` <span class="muted">(×${row.repeat_count})</span>` : ""}
    </td>
    <td>${row.request_id ? html`<code>${row.request_id}</code>` : muted("—")}</td>
  </tr>`;
}

function auditFilterForm(c: DashContext, filters: Record<string, string>, names: Names) {
  // Actors are people (user:<id>), integration keys (integration_key:<id>) or reoclo-admin (admin-cli).
  const actors = can(c, usersList)
    ? new Map([
        ...[...names.users].map(([id, email]): [string, string] => [`user:${id}`, email]),
        ...[...names.integrationKeys].map(([id, label]): [string, string] => [
          `integration_key:${id}`,
          `integration key ${label}`,
        ]),
        ["admin-cli", "reoclo-admin (admin-cli)"] as [string, string],
      ])
    : undefined;
  const keys =
    can(c, keysList) || can(c, listIntegrationKeysVerb)
      ? new Map([
          ...names.keys,
          ...[...names.integrationKeys].map(([id, label]): [string, string] => [
            id,
            `integration key ${label}`,
          ]),
        ])
      : undefined;
  return html`<form method="get" action="/audit" class="filters" aria-label="Filter the audit log">
    ${filterField({
      id: "actor",
      label: "Actor",
      value: filters.actor,
      options: actors,
      hint: actors ? undefined : "user:<id>, integration_key:<id> or admin-cli.",
    })}
    ${filterField({ id: "key", label: "Key", value: filters.key, options: keys, hint: keys ? undefined : "A key's id." })}
    ${filterField({
      id: "server",
      label: "Server",
      value: filters.server,
      options: can(c, serversList) ? names.servers : undefined,
      hint: can(c, serversList) ? undefined : "A server's id.",
    })}
    ${filterField({
      id: "outcome",
      label: "Outcome",
      value: filters.outcome,
      options: new Map([
        ["allowed", "allowed"],
        ["denied", "denied"],
      ]),
    })}
    ${filterField({ id: "action", label: "Action", value: filters.action, hint: "Such as server.update or key.revoke." })}
    ${filterField({ id: "run_id", label: "Run id", value: filters.run_id, hint: "A CI run's id." })}
    ${filterField({ id: "since", label: "Since", value: filters.since, hint: SINCE_HINT })}
    ${filterButtons("/audit")}
  </form>`;
}

function auditTable(items: readonly AuditView[], names: Names) {
  return html`<table>
    <caption class="visually-hidden">
      Audit log, newest first
    </caption>
    <thead>
      <tr>
        <th scope="col">Time</th>
        <th scope="col">Actor</th>
        <th scope="col">Action</th>
        <th scope="col">Outcome</th>
        <th scope="col">Target</th>
        <th scope="col">Client address</th>
        <th scope="col">Summary</th>
        <th scope="col">Request id</th>
      </tr>
    </thead>
    <tbody>
      ${items.map((row) => auditRow(row, names))}
    </tbody>
  </table>`;
}

function auditEmpty(filtered: boolean) {
  return filtered
    ? html`<div class="empty">
        <p>No audit row matches these filters. <a href="/audit">Clear the filters</a> to see them all.</p>
      </div>`
    : html`<div class="empty">
        <p>Nothing has been recorded yet.</p>
        <p>
          Every change (servers, keys, applications, people), every sign-in and every request of the
          automation API is recorded here, allowed or denied.
        </p>
      </div>`;
}

export function auditPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/audit", async (c) => {
    const filters = filtersOf(c, FILTERS);
    // A page size (not in the form) is kept from page to page like the filters.
    const paging = { ...filters, ...filtersOf(c, ["limit"]) };
    const names = await namesOf(c, deps);
    const form = auditFilterForm(c, filters, names);
    let result;
    try {
      result = await run(c, deps, listAuditVerb, { ...paging, cursor: queryValue(c, "cursor") });
    } catch (err) {
      return failedPage(c, "Audit log", err, form);
    }
    return page(c, {
      title: "Audit log",
      body: html`${form}
      ${
        result.items.length === 0
          ? auditEmpty(Object.keys(filters).length > 0 || queryValue(c, "cursor") !== undefined)
          : auditTable(result.items, names)
      }
      ${nextPageLink("/audit", paging, result.next_cursor)}`,
    });
  });
}
