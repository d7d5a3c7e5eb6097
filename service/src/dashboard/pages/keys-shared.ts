import { html } from "hono/html";
import { listCreds } from "../../control/credentials";
import { serversList } from "../../control/servers";
import { can, csrfField, run, when, type DashContext, type DashDeps } from "../kit";

// Pieces both tabs of the API Keys page use.

/** A key's status as a coloured word: active, expired or revoked. */
export const statusBadge = (status: string) => html`<span class="status status-${status}">${status}</span>`;

/** When a key was last used, and from which address. */
export const lastUsed = (at: string | null, ip: string | null) =>
  html`${when(at)}${ip ? html`<br /><span class="mono">${ip}</span>` : ""}`;

/** The revoke button of a list row, asking first (dashboard.js) since a revocation is immediate. */
export const revokeForm = (c: DashContext, action: string, name: string) =>
  html`<form
    method="post"
    action="${action}"
    class="inline"
    data-confirm="Revoke key ${name}? Requests with it are refused at once."
  >
    ${csrfField(c)}<button type="submit" class="danger" aria-label="Revoke key ${name}">Revoke</button>
  </form>`;

/**
 * A secret shown this once (a new key, a one-time password): a read-only field to select or copy,
 * and a Copy button that dashboard.js unhides when it can copy.
 */
export const shownOnce = (id: string, label: string, value: string) =>
  html`<div class="secret-once">
    <input
      type="text"
      id="${id}"
      readonly
      value="${value}"
      aria-label="${label}"
      autocomplete="off"
      spellcheck="false"
    />
    <button type="button" data-copy="${id}" hidden>
      Copy<span class="visually-hidden"> the ${label.toLowerCase()}</span>
    </button>
  </div>`;

/** A server or a registry credential, as the pickers and the scope column name them. */
export interface Named {
  readonly id: string;
  readonly name: string;
}

/** The servers and credentials the person may list (null: the picker is left out). */
export async function pickers(c: DashContext, deps: DashDeps) {
  const servers: Named[] | null = can(c, serversList) ? (await run(c, deps, serversList, {})).items : null;
  const creds: Named[] | null = can(c, listCreds) ? (await run(c, deps, listCreds, {})).items : null;
  return { servers, creds };
}
