import type { Hono } from "hono";
import { html } from "hono/html";
import { keysCreate, keysList, keysRevoke, keysShow, keysUpdate } from "../../control/automation-keys";
import { ServiceError } from "../../errors";
import type { KeyView } from "../../keys/keys";
import {
  can,
  formValues,
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
import { page } from "../layout";
import {
  createdPage,
  EMPTY_FORM,
  formOfKey,
  inputOf,
  keyFormPage,
  readForm,
  type KeyForm,
} from "./keys-automation-form";
import { integrationKeyPages, integrationTab } from "./keys-integration";
import { trustPolicyPages, trustTab } from "./keys-trust";
import { lastUsed, pickers, revokeForm, statusBadge, type Named } from "./keys-shared";

// API Keys (spec §11 "The dashboard"): two tabs, Automation Keys (`rca_`, for CI) and Integration
// Keys (`rk_t_`, for scripts and tools). A new key is shown once, on the page that answers its
// form (never behind a redirect, never again); lists show prefixes, never secrets or hashes.

const NOTICES = {
  revoked: "The key is revoked; requests with it are refused from now on.",
  updated: "The key is changed; its next request uses the new settings.",
  policyCreated: "The trust policy is created: jobs whose tokens match it can exchange them for keys now.",
  policyRemoved: "The trust policy is removed; the keys it gave out are refused from now on.",
};

type Tab = "automation" | "integration" | "trust";

const tabs = (current: Tab) =>
  html`<ul class="tabs">
    <li><a href="/keys" ${current === "automation" ? html`aria-current="page"` : ""}>Automation Keys</a></li>
    <li>
      <a href="/keys?tab=integration" ${current === "integration" ? html`aria-current="page"` : ""}
        >Integration Keys</a
      >
    </li>
    <li>
      <a href="/keys?tab=trust" ${current === "trust" ? html`aria-current="page"` : ""}>Trust Policies</a>
    </li>
  </ul>`;

/** The list page of a tab, with an error of a refused write above it if there was one. */
export async function keysPage(c: DashContext, deps: DashDeps, tab: Tab, error?: ServiceError) {
  let body: Markup;
  let failed = error;
  try {
    body =
      tab === "automation"
        ? await automationTab(c, deps)
        : tab === "integration"
          ? await integrationTab(c, deps)
          : await trustTab(c, deps);
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
  app.get("/keys", (c) => {
    const tab = c.req.query("tab");
    return keysPage(c, deps, tab === "integration" || tab === "trust" ? tab : "automation");
  });

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
      // Someone who may not create keys gets the list back, not a form they cannot use.
      return err.code === "forbidden" ? keysPage(c, deps, "automation", err) : newForm(c, form, err);
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
  trustPolicyPages(app, deps, (c, error) => keysPage(c, deps, "trust", error));
}
