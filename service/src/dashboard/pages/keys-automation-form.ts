import { KEY_EXPIRY_CHOICES, OPERATION_TYPES, type KeyExpiry } from "@reoclo/protocol";
import { html } from "hono/html";
import type { ServiceError } from "../../errors";
import type { KeyView } from "../../keys/keys";
import {
  csrfField,
  list,
  optionalNumber,
  statusOf,
  text,
  type DashContext,
  type DashDeps,
  type FormValues,
} from "../kit";
import { page } from "../layout";
import { pickers, shownOnce, type Named } from "./keys-shared";

// The automation key form (create, and edit on a key's page) and the page that shows a new key
// once, with the reoclo/run step to paste into a workflow.

/** What the person typed into the automation key form (kept when the verb refuses it). */
export interface KeyForm {
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

export const EMPTY_FORM: KeyForm = {
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

export const formOfKey = (k: KeyView): KeyForm => ({
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

export const readForm = (f: FormValues): KeyForm => ({
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
export function inputOf(form: KeyForm, f: FormValues): Record<string, unknown> {
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

/** Advanced settings typed (or a key's allowlist) open the section, so they are seen. */
const advancedSet = (form: KeyForm, edit = false) =>
  form.allowedIps !== "" ||
  (!edit && (form.perMinute !== "" || form.perHour !== "" || form.expires !== "never"));

/** What a key (or a trust policy's keys) may reach: servers, operations, registry credentials. */
export function scopeFieldsets(
  form: Pick<KeyForm, "allServers" | "serverIds" | "operations" | "allCredentials" | "credentialIds">,
  servers: readonly Named[] | null,
  creds: readonly Named[] | null,
) {
  return html` ${picker(
      "Servers",
      { name: "all_servers", label: "All servers", on: form.allServers },
      "server_ids",
      servers,
      form.serverIds,
      "Your role cannot list servers, so only “All servers” is offered here.",
    )}
    <fieldset aria-describedby="key-operations-hint">
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
      <p class="hint" id="key-operations-hint">
        <code>exec</code> runs commands (what <code>reoclo/run</code> needs).
      </p>
    </fieldset>
    ${picker(
      "Registry credentials",
      { name: "all_credentials", label: "All credentials", on: form.allCredentials },
      "credential_ids",
      creds,
      form.credentialIds,
      "Your role cannot list registry credentials, so only “All credentials” is offered here.",
    )}`;
}

export async function keyFormPage(
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
      ${scopeFieldsets(form, servers, creds)}
      <details class="advanced" ${advancedSet(form, opts.edit) ? html`open` : ""}>
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

export function createdPage(c: DashContext, k: KeyView & { key: string }) {
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
