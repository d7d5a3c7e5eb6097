import type { Hono } from "hono";
import { html } from "hono/html";
import { REGISTRY_TYPES } from "@reoclo/protocol";
import { addCred, listCreds, removeCred, updateCred } from "../../control/credentials";
import type { CredentialView } from "../../credentials/credentials";
import { ServiceError } from "../../errors";
import {
  can,
  csrfField,
  errorText,
  formValues,
  noticeFrom,
  redirectWith,
  run,
  statusOf,
  text,
  when,
  type DashContext,
  type DashDeps,
  type DashEnv,
  type FormValues,
} from "../kit";
import { failedPage, page } from "../layout";

// Registry credentials (spec §11 "The dashboard"): a list, an add form, an edit page and removal,
// through the same verbs as /api/registry-credentials. The password is write-only: it is typed
// into a form, sealed by the service and never rendered into any page again, not even after a
// refused post.

const NOTICES = {
  added: "Credential added. Its password is stored encrypted and will not be shown again.",
  saved: "Credential saved.",
  removed: "Credential removed.",
};

const TYPE_LABELS: Record<(typeof REGISTRY_TYPES)[number], string> = {
  docker_hub: "Docker Hub",
  ghcr: "GitHub Container Registry",
  aws_ecr: "AWS Elastic Container Registry",
  google_artifact_registry: "Google Artifact Registry",
  azure_acr: "Azure Container Registry",
  harbor: "Harbor",
  generic: "Other (generic)",
};

const typeLabel = (type: string) => (Object.hasOwn(TYPE_LABELS, type) ? TYPE_LABELS[type as never] : type);

interface ShownError {
  readonly error: ServiceError;
  /** What the person typed, shown again (never the password). */
  readonly form: FormValues;
}

/** The list, and the add form for those who may add. */
async function listPage(c: DashContext, deps: DashDeps, failed?: ShownError) {
  const { items } = await run(c, deps, listCreds, {});
  const form = failed?.form ?? {};
  const mayAdd = can(c, addCred);
  const mayChange = can(c, updateCred) || can(c, removeCred);
  return page(c, {
    title: "Registry credentials",
    status: failed ? statusOf(failed.error) : 200,
    error: failed?.error,
    notice: noticeFrom(c, NOTICES),
    body: html`${
      items.length === 0
        ? html`<div class="empty">
            <p>No registry credentials yet.</p>
            <p>
              A credential is a login to a container registry (a username and a password or token). The
              <code>docker-auth</code> action and deploy scripts use it to log a server in to the registry by
              the credential's id, so the password never passes through a CI workflow.
              ${mayAdd ? "Add one below." : "A manager of your organisation can add one."}
            </p>
          </div>`
        : html`<table>
            <caption class="visually-hidden">
              Registry credentials
            </caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Registry</th>
                <th scope="col">Username</th>
                <th scope="col">Id</th>
                <th scope="col">Created</th>
                ${mayChange ? html`<th scope="col">Actions</th>` : ""}
              </tr>
            </thead>
            <tbody>
              ${items.map((cred) => row(c, cred, mayChange))}
            </tbody>
          </table>`
    }
    ${mayAdd ? addForm(c, form) : ""}`,
  });
}

function row(c: DashContext, cred: CredentialView, mayChange: boolean) {
  return html`<tr>
    <td>${cred.name}</td>
    <td>${cred.registry_url} <span class="muted">(${typeLabel(cred.registry_type)})</span></td>
    <td>${cred.username}</td>
    <td><code>${cred.id}</code></td>
    <td>${when(cred.created_at)}</td>
    ${
      mayChange
        ? html`<td>
            <div class="actions">
              ${
                can(c, updateCred)
                  ? html`<a href="/credentials/${cred.id}"
                      >Edit<span class="visually-hidden"> ${cred.name}</span></a
                    >`
                  : ""
              }
              ${can(c, removeCred) ? removeForm(c, cred) : ""}
            </div>
          </td>`
        : ""
    }
  </tr>`;
}

function removeForm(c: DashContext, cred: CredentialView) {
  return html`<form
    method="post"
    action="/credentials/${cred.id}/remove"
    class="inline"
    data-confirm="Remove the credential ${cred.name}? Keys and workflows that use it can no longer log in with it."
  >
    ${csrfField(c)}
    <button type="submit" class="danger">Remove<span class="visually-hidden"> ${cred.name}</span></button>
  </form>`;
}

function addForm(c: DashContext, form: FormValues) {
  const type = text(form, "type") || "generic";
  return html`<h2 id="add-credential">Add a credential</h2>
    <form method="post" action="/credentials" class="stack" aria-labelledby="add-credential">
      ${csrfField(c)}
      <div>
        <label for="cred-name">Name</label>
        <input
          id="cred-name"
          name="name"
          type="text"
          required
          maxlength="100"
          value="${text(form, "name")}"
        />
      </div>
      <div>
        <label for="cred-type">Type</label>
        <select id="cred-type" name="type">
          ${REGISTRY_TYPES.map(
            (t) => html`<option value="${t}" ${t === type ? html`selected` : ""}>${TYPE_LABELS[t]}</option>`,
          )}
        </select>
      </div>
      ${commonFields(form, "cred")}
      <div>
        <label for="cred-password">Password</label>
        <input
          id="cred-password"
          name="password"
          type="password"
          required
          autocomplete="new-password"
          aria-describedby="cred-password-hint"
        />
        <p class="hint" id="cred-password-hint">
          A password or access token. Write-only: stored encrypted, never shown again.
        </p>
      </div>
      <div><button type="submit">Add credential</button></div>
    </form>`;
}

/** The registry and username fields of both forms. */
function commonFields(form: FormValues, prefix: string) {
  return html`<div>
      <label for="${prefix}-registry">Registry</label>
      <input
        id="${prefix}-registry"
        name="registry_url"
        type="text"
        required
        maxlength="500"
        value="${text(form, "registry_url")}"
        aria-describedby="${prefix}-registry-hint"
      />
      <p class="hint" id="${prefix}-registry-hint">
        The registry's host, optionally with a path: <code>ghcr.io</code>, <code>docker.io</code>,
        <code>registry.example.com:5000</code>.
      </p>
    </div>
    <div>
      <label for="${prefix}-username">Username</label>
      <input
        id="${prefix}-username"
        name="username"
        type="text"
        required
        maxlength="500"
        autocomplete="off"
        value="${text(form, "username")}"
      />
    </div>`;
}

/** The edit page of one credential (there is no single-credential verb: it is found in the list). */
async function editPage(c: DashContext, deps: DashDeps, id: string, failed?: ShownError) {
  const { items } = await run(c, deps, listCreds, {});
  const cred = items.find((item) => item.id === id.toLowerCase());
  if (!cred) {
    const err = new ServiceError("not_found", `Credential ${id} not found.`);
    return page(c, {
      title: "Credential not found",
      status: statusOf(err),
      error: err,
      body: html`<p><a href="/credentials">Back to the registry credentials</a></p>`,
    });
  }
  const form: FormValues = failed?.form ?? {
    name: cred.name,
    registry_url: cred.registry_url,
    username: cred.username,
  };
  const mayChange = can(c, updateCred);
  return page(c, {
    title: `Credential ${cred.name}`,
    section: "/credentials",
    status: failed ? statusOf(failed.error) : 200,
    error: failed?.error,
    body: html`<dl class="facts">
        <dt>Id</dt>
        <dd><code>${cred.id}</code></dd>
        <dt>Type</dt>
        <dd>${typeLabel(cred.registry_type)}</dd>
        <dt>Created</dt>
        <dd>${when(cred.created_at)}</dd>
      </dl>
      ${
        mayChange
          ? html`<h2 id="edit-credential">Edit</h2>
              <form
                method="post"
                action="/credentials/${cred.id}"
                class="stack"
                aria-labelledby="edit-credential"
              >
                ${csrfField(c)}
                <div>
                  <label for="edit-name">Name</label>
                  <input
                    id="edit-name"
                    name="name"
                    type="text"
                    required
                    maxlength="100"
                    value="${text(form, "name")}"
                  />
                </div>
                ${commonFields(form, "edit")}
                <div>
                  <label for="edit-password">New password</label>
                  <input
                    id="edit-password"
                    name="password"
                    type="password"
                    autocomplete="new-password"
                    aria-describedby="edit-password-hint"
                  />
                  <p class="hint" id="edit-password-hint">Leave empty to keep the current one.</p>
                </div>
                <div><button type="submit">Save changes</button></div>
              </form>`
          : ""
      }
      <div class="actions">
        ${can(c, removeCred) ? removeForm(c, cred) : ""}
        <a href="/credentials">Back to the registry credentials</a>
      </div>`,
  });
}

/** A page whose verb refused (a role without the permission): the refusal, as a page. */
async function orErrorPage(c: DashContext, show: () => Promise<Response>) {
  try {
    return await show();
  } catch (err) {
    return failedPage(c, "Registry credentials", err, html`<p><a href="/">Back to the dashboard</a></p>`);
  }
}

export function credentialPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/credentials", (c) => orErrorPage(c, () => listPage(c, deps)));

  app.post("/credentials", async (c) => {
    const form = await formValues(c);
    try {
      await run(c, deps, addCred, {
        name: text(form, "name"),
        type: text(form, "type"),
        registry_url: text(form, "registry_url"),
        username: text(form, "username"),
        password: text(form, "password"),
      });
    } catch (err) {
      return listPage(c, deps, { error: errorText(err), form: { ...form, password: "" } });
    }
    return redirectWith(c, "/credentials", "added");
  });

  app.get("/credentials/:id", (c) => orErrorPage(c, () => editPage(c, deps, c.req.param("id"))));

  app.post("/credentials/:id", async (c) => {
    const id = c.req.param("id");
    const form = await formValues(c);
    try {
      await run(c, deps, updateCred, {
        id,
        name: text(form, "name"),
        registry_url: text(form, "registry_url"),
        username: text(form, "username"),
        // Empty: keep the sealed one.
        password: text(form, "password") === "" ? undefined : text(form, "password"),
      });
    } catch (err) {
      return editPage(c, deps, id, { error: errorText(err), form: { ...form, password: "" } });
    }
    return redirectWith(c, "/credentials", "saved");
  });

  app.post("/credentials/:id/remove", async (c) => {
    try {
      await run(c, deps, removeCred, { id: c.req.param("id") });
    } catch (err) {
      return listPage(c, deps, { error: errorText(err), form: {} });
    }
    return redirectWith(c, "/credentials", "removed");
  });
}
