import {
  ACL_RESOURCE_NAMES,
  ACL_RESOURCES,
  INTEGRATION_KEY_PRESETS,
  type Acl,
  type AclAction,
  type AclResource,
  type IntegrationKeyPreset,
  type KeyExpiry,
} from "@reoclo/protocol";
import type { Hono } from "hono";
import { html } from "hono/html";
import {
  createIntegrationKeyVerb,
  listIntegrationKeysVerb,
  revokeIntegrationKeyVerb,
} from "../../control/integration-keys";
import { ServiceError } from "../../errors";
import type { IntegrationKeyView } from "../../keys/integration-keys";
import {
  can,
  csrfField,
  formValues,
  list,
  redirectWith,
  run,
  statusOf,
  text,
  when,
  type DashContext,
  type DashDeps,
  type DashEnv,
  type Markup,
} from "../kit";
import { page } from "../layout";
import { lastUsed, revokeForm, shownOnce, statusBadge } from "./keys-shared";

// The Integration Keys tab (spec §11): `rk_t_` keys for scripts, IDEs and the MCP server, with a
// preset or custom permissions that never exceed what their maker may do (the verb caps them).

const PRESET_LABELS: Record<IntegrationKeyPreset, string> = {
  full_access: "Full Access",
  deploy_only: "Deploy Only",
  read_only: "Read Only",
  custom: "Custom",
};

const PRESET_HINTS: Record<IntegrationKeyPreset, string> = {
  full_access: "everything your role allows",
  deploy_only: "read and deploy applications, read deployments and logs",
  read_only: "read everything your role may read",
  custom: "the permissions you tick below",
};

/** Integration keys offer the same expiry choices, shortest first. */
const EXPIRIES: readonly { value: KeyExpiry; label: string }[] = [
  { value: "30d", label: "30 days" },
  { value: "90d", label: "90 days" },
  { value: "1y", label: "1 year" },
  { value: "never", label: "Never" },
];

const permissionsOf = (k: IntegrationKeyView) =>
  k.preset === "custom"
    ? html`<span class="muted">Custom:</span> ${k.permission_summary}`
    : html`${PRESET_LABELS[k.preset]} <span class="muted">(${k.permission_summary})</span>`;

export async function integrationTab(c: DashContext, deps: DashDeps): Promise<Markup> {
  const { items } = await run(c, deps, listIntegrationKeysVerb, {});
  const mayRevoke = can(c, revokeIntegrationKeyVerb);
  const mayCreate = can(c, createIntegrationKeyVerb);
  const create = mayCreate
    ? html`<p class="actions">
        <a class="button" href="/keys/integration/new">Create an integration key</a>
      </p>`
    : "";
  if (items.length === 0)
    return html`${create}
      <div class="empty">
        <p>No integration keys yet.</p>
        <p>
          An integration key (<code>rk_t_…</code>) lets a script, an IDE or <code>reoclo-admin</code> on
          another machine use the management API with the permissions you give it, never more than your own.
          ${
            mayCreate
              ? html`Make one with “Create an integration key”; it is shown once.`
              : html`A developer, manager or owner of your organisation can make one.`
          }
        </p>
      </div>`;
  return html`${create}
    <table>
      <caption>
        Integration keys of your organisation
      </caption>
      <thead>
        <tr>
          <th scope="col">Label</th>
          <th scope="col">Prefix</th>
          <th scope="col">Permissions</th>
          <th scope="col">Created by</th>
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
              <td>${k.label}</td>
              <td class="mono">${k.prefix}…</td>
              <td>${permissionsOf(k)}</td>
              <td>${k.created_by_email ?? html`<span class="muted">reoclo-admin</span>`}</td>
              <td>${when(k.created_at)}</td>
              <td>${when(k.expires_at)}</td>
              <td>${lastUsed(k.last_used_at, k.last_used_ip)}</td>
              <td>${statusBadge(k.status)}</td>
              ${
                mayRevoke
                  ? html`<td>
                      ${k.status === "active" ? revokeForm(c, `/keys/integration/${k.id}/revoke`, k.label) : ""}
                    </td>`
                  : ""
              }
            </tr>`,
        )}
      </tbody>
    </table>`;
}

interface IntegrationForm {
  readonly label: string;
  readonly preset: string;
  /** `resource:action` ticked in the custom permissions. */
  readonly permissions: readonly string[];
  readonly expires: string;
}

const EMPTY_FORM: IntegrationForm = { label: "", preset: "read_only", permissions: [], expires: "30d" };

/**
 * The ticked `resource:action` boxes as an ACL (unknown ones go to the verb, which refuses them).
 * The names come from the form: a map without a prototype, so `constructor:read` or
 * `__proto__:x` are unknown resources like any other, never Object's own properties.
 */
function aclOf(ticked: readonly string[]): Acl {
  const acl = new Map<string, AclAction[]>();
  for (const p of ticked) {
    const [resource, action] = p.split(":");
    if (!resource || !action) continue;
    const actions = acl.get(resource) ?? [];
    actions.push(action as AclAction);
    acl.set(resource, actions);
  }
  return Object.fromEntries(acl);
}

function formPage(c: DashContext, form: IntegrationForm, error?: ServiceError) {
  return page(c, {
    title: "Create an integration key",
    status: error ? statusOf(error) : 200,
    error,
    section: "/keys",
    body: html`<form method="post" action="/keys/integration" class="stack">
      ${csrfField(c)}
      <div>
        <label for="ik-label">Label</label>
        <input
          id="ik-label"
          name="label"
          type="text"
          required
          maxlength="100"
          value="${form.label}"
          aria-describedby="ik-label-hint"
        />
        <p class="hint" id="ik-label-hint">Who or what uses it, e.g. “release script on my laptop”.</p>
      </div>
      <fieldset aria-describedby="ik-access-hint">
        <legend>Access</legend>
        ${INTEGRATION_KEY_PRESETS.map(
          (p) =>
            html`<label class="check"
              ><input type="radio" name="preset" value="${p}" ${p === form.preset ? html`checked` : ""} />
              ${PRESET_LABELS[p]}</label
            >`,
        )}
        <p class="hint" id="ik-access-hint">
          ${INTEGRATION_KEY_PRESETS.map((p, i) => html`${i ? "; " : ""}${PRESET_LABELS[p]}: ${PRESET_HINTS[p]}`)}.
        </p>
      </fieldset>
      <fieldset aria-describedby="ik-custom-hint">
        <legend>Custom permissions</legend>
        <p class="hint" id="ik-custom-hint">
          Used only with Custom access. A permission your own role lacks is left out of the key.
        </p>
        ${ACL_RESOURCE_NAMES.map((r: AclResource) =>
          ACL_RESOURCES[r].map((a) => {
            const p = `${r}:${a}`;
            return html`<label class="check"
              ><input
                type="checkbox"
                name="permissions"
                value="${p}"
                ${form.permissions.includes(p) ? html`checked` : ""}
              />
              ${p}</label
            >`;
          }),
        )}
      </fieldset>
      <div>
        <label for="ik-expires">Expires</label>
        <select id="ik-expires" name="expires">
          ${EXPIRIES.map(
            (e) =>
              html`<option value="${e.value}" ${e.value === form.expires ? html`selected` : ""}>
                ${e.label}
              </option>`,
          )}
        </select>
      </div>
      <div class="actions">
        <button type="submit">Create key</button>
        <a href="/keys?tab=integration">Cancel</a>
      </div>
    </form>`,
  });
}

function createdPage(c: DashContext, k: IntegrationKeyView & { key: string }) {
  const origin = new URL(c.req.url).origin;
  return page(c, {
    title: "Integration key created",
    status: 201,
    section: "/keys",
    body: html`<p class="warning">
        This is the only time the key <strong>${k.label}</strong> is shown. Copy it now; the service keeps
        only its hash, so it cannot show it again.
      </p>
      ${shownOnce("new-key", "New integration key", k.key)}
      <p>Permissions: ${permissionsOf(k)}. Expires: ${when(k.expires_at)}.</p>
      <h2>Use it</h2>
      <p>
        Send it as a bearer token to the management API, for example with the key in the environment variable
        <code>REOCLO_KEY</code>:
      </p>
      <pre class="yaml">curl -H "Authorization: Bearer $REOCLO_KEY" ${origin}/api/servers</pre>
      <p>
        or with <code>reoclo-admin</code> from another machine:
        <code>REOCLO_URL=${origin} REOCLO_API_KEY=$REOCLO_KEY npx reoclo-admin servers list</code>
      </p>
      <p><a href="/keys?tab=integration">Back to the integration keys</a></p>`,
  });
}

/** The integration key routes; `list` renders the API Keys page on this tab (with an error). */
export function integrationKeyPages(
  app: Hono<DashEnv>,
  deps: DashDeps,
  listPage: (c: DashContext, error?: ServiceError) => Promise<Response>,
) {
  app.get("/keys/integration/new", (c) =>
    can(c, createIntegrationKeyVerb)
      ? formPage(c, EMPTY_FORM)
      : listPage(c, new ServiceError("forbidden", "Your role cannot create integration keys.")),
  );
  app.post("/keys/integration", async (c) => {
    const f = await formValues(c);
    const form: IntegrationForm = {
      label: text(f, "label"),
      preset: text(f, "preset"),
      permissions: list(f, "permissions"),
      expires: text(f, "expires"),
    };
    const custom = form.preset === "custom";
    try {
      const created = await run(c, deps, createIntegrationKeyVerb, {
        label: form.label,
        preset: form.preset,
        // Only Custom sends permissions; an empty Custom gets the verb's "needs permissions".
        permissions: custom && form.permissions.length ? aclOf(form.permissions) : undefined,
        expires: form.expires || undefined,
      });
      return createdPage(c, created);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return err.code === "forbidden" ? listPage(c, err) : formPage(c, form, err);
    }
  });
  app.post("/keys/integration/:id/revoke", async (c) => {
    try {
      await run(c, deps, revokeIntegrationKeyVerb, { id: c.req.param("id") });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return listPage(c, err);
    }
    return redirectWith(c, "/keys?tab=integration", "revoked");
  });
}
