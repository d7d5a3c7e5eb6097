import { DEFAULT_TRUST_LIFETIME_SECONDS, MAX_TRUST_LIFETIME_SECONDS } from "@reoclo/protocol";
import type { Hono } from "hono";
import { html } from "hono/html";
import { trustPoliciesCreate, trustPoliciesList, trustPoliciesRemove } from "../../control/trust-policies";
import { ServiceError } from "../../errors";
import type { PolicyView } from "../../trust/policies";
import {
  can,
  csrfField,
  formValues,
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
import { readForm, scopeFieldsets, type KeyForm } from "./keys-automation-form";
import { pickers, type Named } from "./keys-shared";

// The Trust Policies tab of the API Keys page (spec §12): which CI jobs may exchange their OIDC ID
// token for a short-lived automation key, and what that key may do. Through the same verbs as
// /api/trust-policies and `reoclo-admin trust-policies`.

const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";

interface PolicyForm extends KeyForm {
  readonly issuer: string;
  readonly audience: string;
  readonly conditions: string;
  readonly lifetime: string;
}

const EMPTY: PolicyForm = {
  ...readForm({}),
  issuer: GITHUB_ISSUER,
  audience: "",
  conditions: "repository=acme/shop\nref=refs/heads/main",
  lifetime: String(DEFAULT_TRUST_LIFETIME_SECONDS),
};

const readPolicyForm = (f: FormValues): PolicyForm => ({
  ...readForm(f),
  issuer: text(f, "issuer"),
  audience: text(f, "audience"),
  conditions: text(f, "conditions"),
  lifetime: text(f, "lifetime_seconds"),
});

/** `claim=value` lines (blank lines ignored); a line without `=` is passed on for the verb to refuse. */
function conditionsOf(lines: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const line of lines.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 0) out[line.trim()] = "";
    else out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return { ...out };
}

function inputOf(form: PolicyForm, f: FormValues): Record<string, unknown> {
  return {
    name: form.name,
    issuer: form.issuer,
    ...(form.audience.trim() ? { audience: form.audience } : {}),
    conditions: conditionsOf(form.conditions),
    operations: form.operations,
    all_servers: form.allServers,
    server_ids: form.serverIds,
    all_credentials: form.allCredentials,
    credential_ids: form.credentialIds,
    allowed_ips: form.allowedIps.split(/[\s,]+/).filter(Boolean),
    rate_limit_per_minute: optionalNumber(f, "rate_limit_per_minute"),
    rate_limit_per_hour: optionalNumber(f, "rate_limit_per_hour"),
    lifetime_seconds: optionalNumber(f, "lifetime_seconds"),
  };
}

const names = (ids: readonly string[], known: readonly Named[] | null) =>
  known
    ? ids.map((id) => known.find((k) => k.id === id)?.name ?? `${id} (gone)`).join(", ")
    : `${ids.length}`;

function grants(p: PolicyView, servers: readonly Named[] | null, creds: readonly Named[] | null) {
  return html`${p.operations.join(", ")} on
  ${p.all_servers ? "all servers" : names(p.server_ids, servers)}${
    p.all_credentials
      ? html`; all credentials`
      : p.credential_ids.length
        ? html`; credentials ${names(p.credential_ids, creds)}`
        : ""
  }${p.allowed_ips.length ? html`; from ${p.allowed_ips.join(", ")}` : ""}`;
}

const minutes = (s: number) => (s % 60 === 0 ? `${s / 60} min` : `${s} s`);

/** The tab's content (under the API Keys page's tabs). */
export async function trustTab(c: DashContext, deps: DashDeps): Promise<Markup> {
  const [{ items }, { servers, creds }] = await Promise.all([
    run(c, deps, trustPoliciesList, {}),
    pickers(c, deps),
  ]);
  const create = can(c, trustPoliciesCreate)
    ? html`<p class="actions"><a class="button" href="/keys/trust/new">Create a trust policy</a></p>`
    : "";
  const intro = html`<p>
    A trust policy lets a CI job that proves who it is with its OIDC ID token (GitHub Actions with
    <code>permissions: id-token: write</code>, GitLab's <code>id_tokens</code>) exchange it for a short-lived
    automation key: no secret in CI at all. The audit log then shows the job's repository, ref and workflow as
    verified.
  </p>`;
  if (items.length === 0)
    return html`${intro}
      <div class="empty">
        <p><strong>No trust policies yet.</strong></p>
        <p>
          Create one naming the issuer (<code>${GITHUB_ISSUER}</code> for GitHub Actions), the claims a job
          must have (e.g. <code>repository=acme/shop</code>, <code>ref=refs/heads/main</code>) and what its
          keys may do. Then leave <code>api_key</code> out of the <code>reoclo/run</code> step and give the
          job <code>permissions: id-token: write</code>.
        </p>
      </div>
      ${create}`;
  const remove = can(c, trustPoliciesRemove);
  return html`${intro}${create}
    <table>
      <caption class="visually-hidden">
        Trust policies
      </caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Issuer and audience</th>
          <th scope="col">Conditions</th>
          <th scope="col">Grants</th>
          <th scope="col">Key lifetime</th>
          <th scope="col">Created</th>
          ${remove ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ""}
        </tr>
      </thead>
      <tbody>
        ${items.map(
          (p) =>
            html`<tr>
              <td>${p.name}</td>
              <td><code>${p.issuer}</code><br /><span class="muted">aud</span> <code>${p.audience}</code></td>
              <td>${Object.entries(p.conditions).map(([k, v]) => html`<code>${k}=${v}</code><br />`)}</td>
              <td>${grants(p, servers, creds)}</td>
              <td>${minutes(p.lifetime_seconds)}</td>
              <td>${when(p.created_at)}</td>
              ${
                remove
                  ? html`<td>
                      <form
                        method="post"
                        action="/keys/trust/${p.id}/remove"
                        class="inline"
                        data-confirm="Remove trust policy ${p.name}? The keys it gave out stop at once."
                      >
                        ${csrfField(c)}<button
                          type="submit"
                          class="danger"
                          aria-label="Remove trust policy ${p.name}"
                        >
                          Remove
                        </button>
                      </form>
                    </td>`
                  : ""
              }
            </tr>`,
        )}
      </tbody>
    </table>`;
}

async function formPage(c: DashContext, deps: DashDeps, form: PolicyForm, error?: ServiceError) {
  const { servers, creds } = await pickers(c, deps);
  const audienceDefault = deps.svc.ctx.config.publicUrl;
  return page(c, {
    title: "Create a trust policy",
    section: "/keys",
    status: error ? statusOf(error) : 200,
    error,
    body: html`<form method="post" action="/keys/trust" class="stack">
      ${csrfField(c)}
      <div>
        <label for="tp-name">Name</label>
        <input id="tp-name" name="name" type="text" required maxlength="100" value="${form.name}" />
      </div>
      <div>
        <label for="tp-issuer">Issuer</label>
        <input
          id="tp-issuer"
          name="issuer"
          type="text"
          required
          value="${form.issuer}"
          aria-describedby="tp-issuer-hint"
        />
        <p class="hint" id="tp-issuer-hint">
          GitHub Actions: <code>${GITHUB_ISSUER}</code>; GitLab: <code>https://gitlab.com</code> or your
          instance's URL. An <code>https://</code> URL.
        </p>
      </div>
      <div>
        <label for="tp-audience">Audience</label>
        <input
          id="tp-audience"
          name="audience"
          type="text"
          value="${form.audience}"
          aria-describedby="tp-audience-hint"
        />
        <p class="hint" id="tp-audience-hint">
          The <code>aud</code> the job asks its token for (the actions ask for this service's URL by default).
          ${audienceDefault ? html`Empty: <code>${audienceDefault}</code>.` : ""}
        </p>
      </div>
      <div>
        <label for="tp-conditions">Conditions</label>
        <textarea id="tp-conditions" name="conditions" required aria-describedby="tp-conditions-hint">
${form.conditions}</textarea>
        <p class="hint" id="tp-conditions-hint">
          One <code>claim=value</code> per line; every one must match; <code>*</code> matches anything, e.g.
          <code>repository=acme/*</code>, <code>ref=refs/heads/main</code>,
          <code>environment=production</code>.
        </p>
      </div>
      ${scopeFieldsets(form, servers, creds)}
      <details class="advanced" ${form.allowedIps || form.perMinute || form.perHour ? html`open` : ""}>
        <summary>Advanced</summary>
        <div>
          <label for="tp-lifetime">Key lifetime (seconds)</label>
          <input
            id="tp-lifetime"
            name="lifetime_seconds"
            type="number"
            min="60"
            max="${MAX_TRUST_LIFETIME_SECONDS}"
            value="${form.lifetime}"
          />
        </div>
        <div>
          <label for="tp-allowed-ips">Allowed IPs</label>
          <textarea id="tp-allowed-ips" name="allowed_ips">${form.allowedIps}</textarea>
        </div>
        <div>
          <label for="tp-per-minute">Requests per minute</label>
          <input
            id="tp-per-minute"
            name="rate_limit_per_minute"
            type="number"
            min="1"
            value="${form.perMinute}"
          />
        </div>
        <div>
          <label for="tp-per-hour">Requests per hour</label>
          <input id="tp-per-hour" name="rate_limit_per_hour" type="number" min="1" value="${form.perHour}" />
        </div>
      </details>
      <div><button type="submit">Create trust policy</button></div>
    </form>`,
  });
}

export function trustPolicyPages(
  app: Hono<DashEnv>,
  deps: DashDeps,
  listWithError: (c: DashContext, error?: ServiceError) => Promise<Response>,
) {
  app.get("/keys/trust/new", (c) =>
    can(c, trustPoliciesCreate)
      ? formPage(c, deps, EMPTY)
      : listWithError(
          c,
          new ServiceError("forbidden", "Your role cannot create trust policies; a manager or owner can."),
        ),
  );
  app.post("/keys/trust", async (c) => {
    const f = await formValues(c);
    const form = readPolicyForm(f);
    try {
      await run(c, deps, trustPoliciesCreate, inputOf(form, f));
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return err.code === "forbidden" ? listWithError(c, err) : formPage(c, deps, form, err);
    }
    return redirectWith(c, "/keys?tab=trust", "policyCreated");
  });
  app.post("/keys/trust/:id/remove", async (c) => {
    try {
      await run(c, deps, trustPoliciesRemove, { id: c.req.param("id") });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return listWithError(c, err);
    }
    return redirectWith(c, "/keys?tab=trust", "policyRemoved");
  });
}
