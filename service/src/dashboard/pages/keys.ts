import { KEY_EXPIRY_CHOICES, OPERATION_TYPES, type KeyExpiry } from "@reoclo/protocol";
import type { Hono } from "hono";
import { html } from "hono/html";
import { keysCreate, keysList, keysRevoke, keysShow, keysUpdate } from "../../control/automation-keys";
import { listCreds } from "../../control/credentials";
import { serversList } from "../../control/servers";
import { ServiceError } from "../../errors";
import type { KeyView } from "../../keys/keys";
import {
  can,
  csrfField,
  formValues,
  list,
  noticeFrom,
  optionalNumber,
  redirectWith,
  run,
  statusOf,
  text,
  when,
  type DashContext,
  type DashDeps,
  type DashEnv,
  type FormValues,
  type Markup,
} from "../kit";
import { page } from "../layout";
import { integrationKeyPages, integrationTab } from "./keys-integration";
import { lastUsed, revokeForm, shownOnce, statusBadge } from "./keys-shared";

// API Keys (spec §11 "The dashboard"): two tabs, Automation Keys (`rca_`, for CI) and Integration
// Keys (`rk_t_`, for scripts and tools). A new key is shown once, on the page that answers its
// form (never behind a redirect, never again); lists show prefixes, never secrets or hashes.

const NOTICES = {
  revoked: "The key is revoked; requests with it are refused from now on.",
  updated: "The key is changed; its next request uses the new settings.",
};

type Tab = "automation" | "integration";

const tabs = (current: Tab) =>
  html`<ul class="tabs">
    <li><a href="/keys" ${current === "automation" ? html`aria-current="page"` : ""}>Automation Keys</a></li>
    <li>
      <a href="/keys?tab=integration" ${current === "integration" ? html`aria-current="page"` : ""}
        >Integration Keys</a
      >
    </li>
  </ul>`;

/** The list page of a tab, with an error of a refused write above it if there was one. */
export async function keysPage(c: DashContext, deps: DashDeps, tab: Tab, error?: ServiceError) {
  let body: Markup;
  let failed = error;
  try {
    body = tab === "automation" ? await automationTab(c, deps) : await integrationTab(c, deps);
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    failed ??= err;
    body = html``;
  }
  return page(c, {
    title: "API Keys",
    status: failed ? statusOf(failed) : 200,
    error: failed,
    notice: noticeFrom(c, NOTICES),
    body: html`${tabs(tab)}${body}`,
  });
}

// --- Automation keys -------------------------------------------------------------------------

interface Named {
  readonly id: string;
  readonly name: string;
}

/** The servers and credentials the person may list (null: the picker is left out). */
async function pickers(c: DashContext, deps: DashDeps) {
  const servers: Named[] | null = can(c, serversList) ? (await run(c, deps, serversList, {})).items : null;
  const creds: Named[] | null = can(c, listCreds) ? (await run(c, deps, listCreds, {})).items : null;
  return { servers, creds };
}

const names = (ids: readonly string[], known: readonly Named[] | null, what: string) => {
  if (!known) return `${ids.length} ${what}${ids.length === 1 ? "" : "s"}`;
  return ids.map((id) => known.find((k) => k.id === id)?.name ?? `${id} (gone)`).join(", ");
};

function scopeOf(k: KeyView, servers: readonly Named[] | null, creds: readonly Named[] | null) {
  return html`<div>
      <span class="muted">Servers:</span>
      ${k.all_servers ? "all servers" : names(k.server_ids, servers, "server")}
    </div>
    <div><span class="muted">Operations:</span> ${k.operations.join(", ")}</div>
    <div>
      <span class="muted">Registry credentials:</span>
      ${k.all_credentials ? "all credentials" : k.credential_ids.length ? names(k.credential_ids, creds, "credential") : "none"}
    </div>
    ${k.allowed_ips.length ? html`<div><span class="muted">From:</span> ${k.allowed_ips.join(", ")}</div>` : ""}`;
}

async function automationTab(c: DashContext, deps: DashDeps): Promise<Markup> {
  const { items } = await run(c, deps, keysList, {});
  const { servers, creds } = await pickers(c, deps);
  const mayRevoke = can(c, keysRevoke);
  const create = can(c, keysCreate)
    ? html`<p class="actions"><a class="button" href="/keys/automation/new">Create an automation key</a></p>`
    : "";
  if (items.length === 0)
    return html`${create}
      <div class="empty">
        <p>No automation keys yet.</p>
        <p>
          An automation key (<code>rca_…</code>) lets CI run commands on your servers through the
          <code>reoclo/run</code> action, limited to the servers, operations and registry credentials you
          choose.
          ${
            can(c, keysCreate)
              ? html`Make one with “Create an automation key”; it is shown once, so store it as a CI secret
                right away.`
              : html`A manager or owner of your organisation can make one.`
          }
        </p>
      </div>`;
  return html`${create}
    <table>
      <caption>
        Automation keys of your organisation
      </caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Prefix</th>
          <th scope="col">Scope</th>
          <th scope="col">Created</th>
          <th scope="col">Expires</th>
          <th scope="col">Last used</th>
          <th scope="col">Status</th>
          ${mayRevoke ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ""}
        </tr>
      </thead>
      <tbody>
        ${items.map(
          (k) =>
            html`<tr>
              <td><a href="/keys/automation/${k.id}">${k.name}</a></td>
              <td class="mono">${k.prefix}…</td>
              <td>${scopeOf(k, servers, creds)}</td>
              <td>${when(k.created_at)}</td>
              <td>${when(k.expires_at)}</td>
              <td>${lastUsed(k.last_used_at, k.last_used_ip)}</td>
              <td>${statusBadge(k.status)}</td>
              ${
                mayRevoke
                  ? html`<td>
                      ${k.status === "active" ? revokeForm(c, `/keys/automation/${k.id}/revoke`, k.name) : ""}
                    </td>`
                  : ""
              }
            </tr>`,
        )}
      </tbody>
    </table>`;
}

/** What the person typed into the automation key form (kept when the verb refuses it). */
interface KeyForm {
  readonly name: string;
  readonly allServers: boolean;
  readonly serverIds: readonly string[];
  readonly operations: readonly string[];
  readonly allCredentials: boolean;
  readonly credentialIds: readonly string[];
  /** "" on the edit form: keep the current expiry. */
  readonly expires: string;
  readonly allowedIps: string;
  readonly perMinute: string;
  readonly perHour: string;
}

const EMPTY_FORM: KeyForm = {
  name: "",
  allServers: false,
  serverIds: [],
  operations: [],
  allCredentials: false,
  credentialIds: [],
  expires: "never",
  allowedIps: "",
  perMinute: "",
  perHour: "",
};

const formOfKey = (k: KeyView): KeyForm => ({
  name: k.name,
  allServers: k.all_servers,
  serverIds: k.server_ids,
  operations: k.operations,
  allCredentials: k.all_credentials,
  credentialIds: k.credential_ids,
  expires: "",
  allowedIps: k.allowed_ips.join("\n"),
  perMinute: String(k.rate_limit_per_minute),
  perHour: String(k.rate_limit_per_hour),
});

const readForm = (f: FormValues): KeyForm => ({
  name: text(f, "name"),
  allServers: text(f, "all_servers") !== "",
  serverIds: list(f, "server_ids"),
  operations: list(f, "operations"),
  allCredentials: text(f, "all_credentials") !== "",
  credentialIds: list(f, "credential_ids"),
  expires: text(f, "expires"),
  allowedIps: text(f, "allowed_ips"),
  perMinute: text(f, "rate_limit_per_minute"),
  perHour: text(f, "rate_limit_per_hour"),
});

/** The verb's input: empty fields left out so its defaults (or the key's current values) apply. */
function inputOf(form: KeyForm, f: FormValues): Record<string, unknown> {
  const input: Record<string, unknown> = {
    name: form.name,
    operations: form.operations,
    all_servers: form.allServers,
    server_ids: form.serverIds,
    all_credentials: form.allCredentials,
    credential_ids: form.credentialIds,
    allowed_ips: form.allowedIps.split(/[\s,]+/).filter(Boolean),
    rate_limit_per_minute: optionalNumber(f, "rate_limit_per_minute"),
    rate_limit_per_hour: optionalNumber(f, "rate_limit_per_hour"),
  };
  if (form.expires) input.expires = form.expires;
  return input;
}

const EXPIRY_LABELS: Record<KeyExpiry, string> = {
  never: "Never",
  "30d": "30 days",
  "90d": "90 days",
  "1y": "1 year",
};

const checked = (on: boolean) => (on ? html`checked` : "");

function picker(
  legend: string,
  all: { name: string; label: string; on: boolean },
  field: string,
  items: readonly Named[] | null,
  chosen: readonly string[],
  missing: string,
) {
  return html`<fieldset>
    <legend>${legend}</legend>
    <label class="check"
      ><input type="checkbox" name="${all.name}" value="1" ${checked(all.on)} /> ${all.label}</label
    >
    ${
      items === null
        ? html`<p class="hint">${missing}</p>`
        : items.map(
            (s) =>
              html`<label class="check"
                ><input type="checkbox" name="${field}" value="${s.id}" ${checked(chosen.includes(s.id))} />
                ${s.name}</label
              >`,
          )
    }
  </fieldset>`;
}

async function keyFormPage(
  c: DashContext,
  deps: DashDeps,
  opts: {
    title: string;
    action: string;
    submit: string;
    form: KeyForm;
    error?: ServiceError;
    edit?: boolean;
  },
) {
  const { servers, creds } = await pickers(c, deps);
  const { form } = opts;
  const expiries: readonly string[] = opts.edit ? ["", ...KEY_EXPIRY_CHOICES] : KEY_EXPIRY_CHOICES;
  return page(c, {
    title: opts.title,
    status: opts.error ? statusOf(opts.error) : 200,
    error: opts.error,
    section: "/keys",
    body: html`<form method="post" action="${opts.action}" class="stack">
      ${csrfField(c)}
      <div>
        <label for="key-name">Name</label>
        <input
          id="key-name"
          name="name"
          type="text"
          required
          maxlength="100"
          value="${form.name}"
          aria-describedby="key-name-hint"
        />
        <p class="hint" id="key-name-hint">What uses it, e.g. “ci-deploy of shop-web”.</p>
      </div>
      ${picker(
        "Servers",
        { name: "all_servers", label: "All servers", on: form.allServers },
        "server_ids",
        servers,
        form.serverIds,
        "Your role cannot list servers, so only “All servers” is offered here.",
      )}
      <fieldset>
        <legend>Operations</legend>
        ${OPERATION_TYPES.map(
          (op) =>
            html`<label class="check"
              ><input
                type="checkbox"
                name="operations"
                value="${op}"
                ${checked(form.operations.includes(op))}
              />
              ${op}</label
            >`,
        )}
        <p class="hint"><code>exec</code> runs commands (what <code>reoclo/run</code> needs).</p>
      </fieldset>
      ${picker(
        "Registry credentials",
        { name: "all_credentials", label: "All credentials", on: form.allCredentials },
        "credential_ids",
        creds,
        form.credentialIds,
        "Your role cannot list registry credentials, so only “All credentials” is offered here.",
      )}
      <details class="advanced" ${form.expires !== EMPTY_FORM.expires && !opts.edit ? html`open` : ""}>
        <summary>Advanced</summary>
        <div>
          <label for="key-expires">Expires</label>
          <select id="key-expires" name="expires">
            ${expiries.map(
              (e) =>
                html`<option value="${e}" ${e === form.expires ? html`selected` : ""}>
                  ${e === "" ? "Keep the current expiry" : EXPIRY_LABELS[e as KeyExpiry]}
                </option>`,
            )}
          </select>
        </div>
        <div>
          <label for="key-allowed-ips">Allowed IPs</label>
          <textarea id="key-allowed-ips" name="allowed_ips" aria-describedby="key-allowed-ips-hint">
${form.allowedIps}</textarea>
          <p class="hint" id="key-allowed-ips-hint">
            One address or CIDR per line (or comma separated), e.g. <code>198.51.100.7/32</code>. Empty: any
            address.
          </p>
        </div>
        <div>
          <label for="key-per-minute">Requests per minute</label>
          <input
            id="key-per-minute"
            name="rate_limit_per_minute"
            type="number"
            min="1"
            value="${form.perMinute}"
            aria-describedby="key-limits-hint"
          />
        </div>
        <div>
          <label for="key-per-hour">Requests per hour</label>
          <input
            id="key-per-hour"
            name="rate_limit_per_hour"
            type="number"
            min="1"
            value="${form.perHour}"
            aria-describedby="key-limits-hint"
          />
          <p class="hint" id="key-limits-hint">Empty: the service's default limits.</p>
        </div>
      </details>
      <div class="actions">
        <button type="submit">${opts.submit}</button>
        <a href="/keys">Cancel</a>
      </div>
    </form>`,
  });
}

/** The workflow step that uses a new key, for a server of its scope (or a variable to set). */
function workflowYaml(origin: string, k: KeyView) {
  const server = k.server_ids[0] ?? "${{ vars.REOCLO_SERVER_ID }}";
  return `- uses: reoclo/run@v2
  with:
    api_url: ${origin}
    api_key: \${{ secrets.REOCLO_API_KEY }}
    server_id: ${server}
    command: uptime
`;
}

function createdPage(c: DashContext, k: KeyView & { key: string }) {
  const origin = new URL(c.req.url).origin;
  return page(c, {
    title: "Automation key created",
    status: 201,
    section: "/keys",
    body: html`<p class="warning">
        This is the only time the key <strong>${k.name}</strong> is shown. Copy it now and store it as a
        secret; the service keeps only its hash, so it cannot show it again.
      </p>
      ${shownOnce("new-key", "New automation key", k.key)}
      <h2>Use it from reoclo/run</h2>
      <ol>
        <li>
          In your GitHub repository, open Settings → Secrets and variables → Actions and add a repository
          secret named <code>REOCLO_API_KEY</code> with the key above.
        </li>
        <li>
          Add this step to a job of your
          workflow${
            k.all_servers
              ? html` and set the repository variable <code>REOCLO_SERVER_ID</code> to the id of a server`
              : k.server_ids.length > 1
                ? html` (any server of the key's scope works as <code>server_id</code>)`
                : ""
          }:
        </li>
      </ol>
      <pre class="yaml">${workflowYaml(origin, k)}</pre>
      ${
        k.operations.includes("exec")
          ? ""
          : html`<p class="hint">
              This key cannot run commands (<code>exec</code> is not among its operations), so
              <code>reoclo/run</code> will be refused with it.
            </p>`
      }
      <p><a href="/keys">Back to the automation keys</a></p>`,
  });
}

async function detailPage(c: DashContext, deps: DashDeps, id: string, form?: KeyForm, error?: ServiceError) {
  let k: KeyView;
  try {
    k = await run(c, deps, keysShow, { id });
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    return page(c, {
      title: "Automation key",
      status: statusOf(err),
      error: err,
      section: "/keys",
      body: html`<p><a href="/keys">Back to the automation keys</a></p>`,
    });
  }
  if (can(c, keysUpdate) && k.status !== "revoked")
    return keyFormPage(c, deps, {
      title: `Automation key ${k.name}`,
      action: `/keys/automation/${k.id}`,
      submit: "Save changes",
      form: form ?? formOfKey(k),
      edit: true,
      ...(error ? { error } : {}),
    });
  const { servers, creds } = await pickers(c, deps);
  return page(c, {
    title: `Automation key ${k.name}`,
    section: "/keys",
    body: html`<dl class="facts">
        <dt>Prefix</dt>
        <dd class="mono">${k.prefix}…</dd>
        <dt>Status</dt>
        <dd>${statusBadge(k.status)}</dd>
        <dt>Scope</dt>
        <dd>${scopeOf(k, servers, creds)}</dd>
        <dt>Limits</dt>
        <dd>${k.rate_limit_per_minute} per minute, ${k.rate_limit_per_hour} per hour</dd>
        <dt>Created</dt>
        <dd>${when(k.created_at)}</dd>
        <dt>Expires</dt>
        <dd>${when(k.expires_at)}</dd>
        <dt>Last used</dt>
        <dd>${lastUsed(k.last_used_at, k.last_used_ip)}</dd>
      </dl>
      <p><a href="/keys">Back to the automation keys</a></p>`,
  });
}

export function keyPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/keys", (c) =>
    keysPage(c, deps, c.req.query("tab") === "integration" ? "integration" : "automation"),
  );

  const newForm = (c: DashContext, form: KeyForm, error?: ServiceError) =>
    keyFormPage(c, deps, {
      title: "Create an automation key",
      action: "/keys/automation",
      submit: "Create key",
      form,
      ...(error ? { error } : {}),
    });
  app.get("/keys/automation/new", (c) =>
    can(c, keysCreate)
      ? newForm(c, EMPTY_FORM)
      : keysPage(
          c,
          deps,
          "automation",
          new ServiceError("forbidden", "Your role cannot create automation keys; a manager or owner can."),
        ),
  );
  app.post("/keys/automation", async (c) => {
    const f = await formValues(c);
    const form = readForm(f);
    try {
      return createdPage(c, await run(c, deps, keysCreate, inputOf(form, f)));
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return newForm(c, form, err);
    }
  });

  app.get("/keys/automation/:id", (c) => detailPage(c, deps, c.req.param("id")));
  app.post("/keys/automation/:id", async (c) => {
    const id = c.req.param("id");
    const f = await formValues(c);
    const form = readForm(f);
    try {
      await run(c, deps, keysUpdate, { id, ...inputOf(form, f) });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return detailPage(c, deps, id, form, err);
    }
    return redirectWith(c, "/keys", "updated");
  });
  app.post("/keys/automation/:id/revoke", async (c) => {
    try {
      await run(c, deps, keysRevoke, { id: c.req.param("id") });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return keysPage(c, deps, "automation", err);
    }
    return redirectWith(c, "/keys", "revoked");
  });

  integrationKeyPages(app, deps, (c, error) => keysPage(c, deps, "integration", error));
}
