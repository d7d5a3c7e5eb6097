import { ROLES } from "@reoclo/protocol";
import type { Hono } from "hono";
import { html } from "hono/html";
import { usersAdd, usersList, usersRemove, usersUpdate } from "../../control/people";
import { ServiceError } from "../../errors";
import type { UserView } from "../../people/users";
import {
  can,
  csrfField,
  formValues,
  noticeFrom,
  person,
  redirectWith,
  run,
  statusOf,
  text,
  when,
  type DashContext,
  type DashDeps,
  type DashEnv,
} from "../kit";
import { page } from "../layout";
import { shownOnce } from "./keys-shared";

// Users and roles (spec §11 "Who"): the owners' page. The same verbs as /api/users: adding a
// person answers a one-time password, shown here once; the verbs refuse to remove or demote the
// organisation's last owner, and that refusal is shown as it is.

const NOTICES = {
  role: "The role is changed; it applies from the person's next request.",
  removed: "The person is removed: their sessions have ended and their integration keys stopped working.",
};

const ROLE_HINT =
  "Viewer: reads everything but users. Developer: also runs commands, deploys and makes integration keys. Manager: also changes servers, applications, credentials and automation keys. Owner: also manages people.";

interface AddForm {
  readonly email: string;
  readonly role: string;
}

const roleOptions = (current: string) =>
  ROLES.map((r) => html`<option value="${r}" ${r === current ? html`selected` : ""}>${r}</option>`);

async function usersPage(c: DashContext, deps: DashDeps, opts: { add?: AddForm; error?: ServiceError } = {}) {
  let people: UserView[];
  try {
    people = (await run(c, deps, usersList, {})).items;
  } catch (err) {
    if (!(err instanceof ServiceError)) throw err;
    return page(c, {
      title: "Users",
      status: statusOf(err),
      error: err,
      body: html`<p>People and roles are managed by your organisation's owners.</p>`,
    });
  }
  const me = person(c).userId;
  const mayChange = can(c, usersUpdate);
  const mayRemove = can(c, usersRemove);
  const add = opts.add ?? { email: "", role: "developer" };
  const addForm = can(c, usersAdd)
    ? html`<h2 id="add-person">Add a person</h2>
        <form method="post" action="/users" class="stack" aria-labelledby="add-person">
          ${csrfField(c)}
          <div>
            <label for="new-email">Email</label>
            <input
              id="new-email"
              name="email"
              type="email"
              required
              autocomplete="off"
              value="${add.email}"
            />
          </div>
          <div>
            <label for="new-role">Role</label>
            <select id="new-role" name="role" aria-describedby="role-hint">
              ${roleOptions(add.role)}
            </select>
            <p class="hint" id="role-hint">${ROLE_HINT}</p>
          </div>
          <div>
            <button type="submit">Add person</button>
          </div>
          <p class="hint">
            They get a one-time password, shown to you once; they choose their own at their first sign-in.
          </p>
        </form>`
    : "";
  return page(c, {
    title: "Users",
    status: opts.error ? statusOf(opts.error) : 200,
    error: opts.error,
    notice: noticeFrom(c, NOTICES),
    body: html`<table>
        <caption>
          People of your organisation
        </caption>
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">Added</th>
            <th scope="col">Password</th>
            ${mayRemove ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ""}
          </tr>
        </thead>
        <tbody>
          ${people.map(
            (u) =>
              html`<tr>
                <td>${u.email}${u.id === me ? html` <span class="muted">(you)</span>` : ""}</td>
                <td>
                  ${
                    mayChange
                      ? html`<form method="post" action="/users/${u.id}/role" class="inline">
                          ${csrfField(c)}
                          <label for="role-${u.id}" class="visually-hidden">Role of ${u.email}</label>
                          <select id="role-${u.id}" name="role">
                            ${roleOptions(u.role)}
                          </select>
                          <button type="submit" class="secondary" aria-label="Change role of ${u.email}">
                            Change role
                          </button>
                        </form>`
                      : u.role
                  }
                </td>
                <td>${when(u.created_at)}</td>
                <td>
                  ${u.must_change_password ? html`<span class="muted">one-time, not changed yet</span>` : "own"}
                </td>
                ${
                  mayRemove
                    ? html`<td>
                        <form
                          method="post"
                          action="/users/${u.id}/remove"
                          class="inline"
                          data-confirm="Remove ${u.email}? Their sessions end and their integration keys stop working."
                        >
                          ${csrfField(c)}
                          <button type="submit" class="danger" aria-label="Remove ${u.email}">Remove</button>
                        </form>
                      </td>`
                    : ""
                }
              </tr>`,
          )}
        </tbody>
      </table>
      ${addForm}`,
  });
}

export function userPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/users", (c) => usersPage(c, deps));

  app.post("/users", async (c) => {
    const f = await formValues(c);
    const add = { email: text(f, "email"), role: text(f, "role") };
    let added: UserView & { password: string };
    try {
      added = await run(c, deps, usersAdd, add);
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return usersPage(c, deps, { add, error: err });
    }
    return page(c, {
      title: "Person added",
      status: 201,
      section: "/users",
      body: html`<p>${added.email} is added as <strong>${added.role}</strong>.</p>
        <p class="warning">
          This one-time password is shown only this once. Give it to them by a safe way; they must change it
          at their first sign-in, and the dashboard asks them to before anything else.
        </p>
        ${shownOnce("new-password", "One-time password", added.password)}
        <p><a href="/users">Back to Users</a></p>`,
    });
  });

  app.post("/users/:id/role", async (c) => {
    const f = await formValues(c);
    try {
      await run(c, deps, usersUpdate, { id: c.req.param("id"), role: text(f, "role") });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return usersPage(c, deps, { error: err });
    }
    return redirectWith(c, "/users", "role");
  });

  app.post("/users/:id/remove", async (c) => {
    try {
      await run(c, deps, usersRemove, { id: c.req.param("id") });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return usersPage(c, deps, { error: err });
    }
    return redirectWith(c, "/users", "removed");
  });
}
