import type { Hono } from "hono";
import { html } from "hono/html";
import {
  addApp,
  deployApp,
  listApps,
  listDeploys,
  listEnv,
  removeApp,
  setEnv,
  showApp,
  updateApp,
} from "../../control/applications";
import { serversList } from "../../control/servers";
import type { ApplicationDetail } from "../../applications/applications";
import type { DeploymentView, StartedBy } from "../../applications/deployments";
import { ServiceError } from "../../errors";
import type { ServerView } from "../../servers/servers";
import {
  duration,
  can,
  csrfField,
  errorText,
  formValues,
  noticeFrom,
  optional,
  person,
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
import { failedPage, page } from "../layout";

// Applications (spec §11 "The dashboard"): the list, adding and editing one, deploying it (the verb
// answers at once with the operation, whose page follows the log), its deployment history, and its
// write-only environment: names and update times are shown, values never, not even after a refused
// post. The deploy, history and environment verbs take the organisation's id as `tenant_id`, as
// the seed's paths do; the dashboard's own paths need no tenant.

const NOTICES = {
  added: "Application added. Set its environment or deploy it below.",
  saved: "Changes saved.",
  removed: "Application removed.",
  env_saved: "Variable saved. The next deploy or restart gets it.",
  env_removed: "Variable removed.",
};

const HISTORY_PAGE = 20;

const errorPage = (c: DashContext, err: unknown, title = "Applications") =>
  failedPage(
    c,
    title,
    err,
    html`<p><a href="/applications">Back to the applications</a></p>`,
    "/applications",
  );

async function orErrorPage(c: DashContext, show: () => Promise<Response>) {
  try {
    return await show();
  } catch (err) {
    return errorPage(c, err);
  }
}

/** The organisation's servers for names and the picker; none when the person may not list them. */
async function serversOf(c: DashContext, deps: DashDeps): Promise<ServerView[]> {
  return can(c, serversList) ? (await run(c, deps, serversList, {})).items : [];
}

const tenant = (c: DashContext, id: string) => ({ tenant_id: person(c).orgId, application_id: id });

function serverName(servers: readonly ServerView[], id: string): Markup {
  const server = servers.find((s) => s.id === id);
  return server ? html`${server.name}` : html`<code>${id}</code>`;
}

function outcome(d: DeploymentView | undefined): Markup {
  if (!d) return html`<span class="muted">never deployed</span>`;
  return html`<span class="status status-${d.outcome}">${d.outcome}</span>`;
}

function startedBy(who: StartedBy): string {
  switch (who.type) {
    case "user":
      return who.email ?? `person ${who.id}`;
    case "automation_key":
      return `automation key ${who.name} (${who.prefix})`;
    case "integration_key":
      return `integration key ${who.label ?? who.prefix ?? who.id}`;
    case "admin":
      return "reoclo-admin";
    case "unknown":
      return who.actor ?? "unknown";
  }
}

const durationOf = (ms: number | null) => (ms === null ? html`<span class="muted">–</span>` : duration(ms));

// The list.

async function listPage(c: DashContext, deps: DashDeps, failed?: ServiceError) {
  const [{ items }, servers] = await Promise.all([run(c, deps, listApps, {}), serversOf(c, deps)]);
  const history = can(c, listDeploys);
  const last = history
    ? await Promise.all(
        items.map(async (a) => (await run(c, deps, listDeploys, { ...tenant(c, a.id), limit: 1 })).items[0]),
      )
    : [];
  return page(c, {
    title: "Applications",
    status: failed ? statusOf(failed) : 200,
    error: failed,
    notice: noticeFrom(c, NOTICES),
    body: html`${can(c, addApp) ? html`<p class="actions"><a class="button" href="/applications/new">Add an application</a></p>` : ""}
    ${
      items.length === 0
        ? html`<div class="empty">
            <p>No applications yet.</p>
            <p>
              An application is a deploy script run in a working directory on one of your servers, with an
              environment kept secret. Deploy it from here, from CI or with the API.
              ${
                can(c, addApp)
                  ? html`<a href="/applications/new">Add an application</a> once its server is on the
                      <a href="/servers">Servers</a> page.`
                  : "A manager of your organisation can add one."
              }
            </p>
          </div>`
        : html`<table>
            <caption class="visually-hidden">
              Applications
            </caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Server</th>
                <th scope="col">Working directory</th>
                ${history ? html`<th scope="col">Last deploy</th>` : ""}
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (a, i) =>
                  html`<tr>
                    <td><a href="/applications/${a.id}">${a.name}</a></td>
                    <td>${serverName(servers, a.server_id)}</td>
                    <td>
                      <code>${a.working_directory}</code>${
                        a.has_restart_script ? html` <span class="muted">(with a restart script)</span>` : ""
                      }
                    </td>
                    ${
                      history
                        ? html`<td>${outcome(last[i])} ${last[i] ? when(last[i].created_at) : ""}</td>`
                        : ""
                    }
                  </tr>`,
              )}
            </tbody>
          </table>`
    }`,
  });
}

// Adding and editing.

interface AppFormOptions {
  readonly action: string;
  readonly button: string;
  readonly form: FormValues;
  readonly servers: readonly ServerView[];
  /** The new-application form also takes the first variables. */
  readonly withEnv: boolean;
}

function appForm(c: DashContext, o: AppFormOptions) {
  const f = o.form;
  const chosen = text(f, "server_id");
  return html`<form method="post" action="${o.action}" class="stack">
    ${csrfField(c)}
    <div>
      <label for="app-name">Name</label>
      <input id="app-name" name="name" type="text" required maxlength="100" value="${text(f, "name")}" />
    </div>
    <div>
      <label for="app-server">Server</label>
      <select id="app-server" name="server_id" required>
        <option value="" ${chosen ? "" : html`selected`}>Choose a server</option>
        ${o.servers.map(
          (s) =>
            html`<option value="${s.id}" ${s.id === chosen ? html`selected` : ""}>
              ${s.name} (${s.user}@${s.host})
            </option>`,
        )}
      </select>
    </div>
    <div>
      <label for="app-workdir">Working directory</label>
      <input
        id="app-workdir"
        name="working_directory"
        type="text"
        required
        value="${text(f, "working_directory")}"
        aria-describedby="app-workdir-hint"
      />
      <p class="hint" id="app-workdir-hint">An absolute path on the server; the scripts run there.</p>
    </div>
    <div>
      <label for="app-deploy">Deploy script</label>
      <textarea id="app-deploy" name="deploy_script" required aria-describedby="app-deploy-hint">
${text(f, "deploy_script")}</textarea>
      <p class="hint" id="app-deploy-hint">
        A shell script run on each deploy; the ref asked for is in <code>REOCLO_COMMIT_REF</code>.
      </p>
    </div>
    <div>
      <label for="app-restart">Restart script (optional)</label>
      <textarea id="app-restart" name="restart_script" aria-describedby="app-restart-hint">
${text(f, "restart_script")}</textarea>
      <p class="hint" id="app-restart-hint">Run by a restart. Leave empty for none.</p>
    </div>
    ${
      o.withEnv
        ? html`<div>
            <label for="app-env">Environment (optional)</label>
            <textarea
              id="app-env"
              name="env"
              autocomplete="off"
              spellcheck="false"
              aria-describedby="app-env-hint"
            ></textarea>
            <p class="hint" id="app-env-hint">
              One <code>NAME=value</code> a line. Write-only: stored encrypted, given to the scripts, masked
              in their output, never shown again.
            </p>
          </div>`
        : ""
    }
    <div><button type="submit">${o.button}</button></div>
  </form>`;
}

/** `NAME=value` lines; a line without `=` is refused by name, never echoing the value. */
function parseEnvLines(textValue: string): Record<string, string> {
  // The names are typed: no prototype, so `__proto__=…` is a name the verb judges, not dropped.
  const env = Object.create(null) as Record<string, string>;
  const lines = textValue.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw new ServiceError("validation", `Line ${i + 1} of the environment is not NAME=value.`, {
        env: [`line ${i + 1} is not NAME=value`],
      });
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return env;
}

async function newPage(c: DashContext, deps: DashDeps, failed?: { error: ServiceError; form: FormValues }) {
  if (!can(c, addApp))
    return errorPage(c, new ServiceError("forbidden", "You cannot add applications."), "Add an application");
  const servers = await serversOf(c, deps);
  return page(c, {
    title: "Add an application",
    section: "/applications",
    status: failed ? statusOf(failed.error) : 200,
    error: failed?.error,
    body: html`${
        servers.length === 0
          ? html`<div class="empty">
              <p>
                An application runs on a server, and there is none yet:
                <a href="/servers">add a server</a> first.
              </p>
            </div>`
          : appForm(c, {
              action: "/applications",
              button: "Add application",
              form: failed?.form ?? {},
              servers,
              withEnv: true,
            })
      }
      <p><a href="/applications">Back to the applications</a></p>`,
  });
}

async function editPage(
  c: DashContext,
  deps: DashDeps,
  id: string,
  failed?: { error: ServiceError; form: FormValues },
) {
  const [app, servers] = await Promise.all([run(c, deps, showApp, { id }), serversOf(c, deps)]);
  const form: FormValues = failed?.form ?? {
    name: app.name,
    server_id: app.server_id,
    working_directory: app.working_directory,
    deploy_script: app.deploy_script,
    restart_script: app.restart_script ?? "",
  };
  return page(c, {
    title: `Edit ${app.name}`,
    section: "/applications",
    status: failed ? statusOf(failed.error) : 200,
    error: failed?.error,
    body: html`${
        can(c, updateApp)
          ? appForm(c, {
              action: `/applications/${app.id}/edit`,
              button: "Save changes",
              form,
              servers,
              withEnv: false,
            })
          : html`<p>You cannot change applications.</p>`
      }
      <p><a href="/applications/${app.id}">Back to ${app.name}</a></p>`,
  });
}

// One application.

interface ShownFailure {
  readonly error: ServiceError;
  /** What the person typed in the deploy or environment form (never a value). */
  readonly form: FormValues;
}

async function appPage(c: DashContext, deps: DashDeps, id: string, failed?: ShownFailure) {
  const app = await run(c, deps, showApp, { id });
  const cursor = c.req.query("cursor");
  const [servers, history, env] = await Promise.all([
    serversOf(c, deps),
    can(c, listDeploys)
      ? run(c, deps, listDeploys, { ...tenant(c, app.id), limit: HISTORY_PAGE, cursor })
      : undefined,
    can(c, listEnv) ? run(c, deps, listEnv, tenant(c, app.id)) : undefined,
  ]);
  const form = failed?.form ?? {};
  return page(c, {
    title: app.name,
    section: "/applications",
    status: failed ? statusOf(failed.error) : 200,
    error: failed?.error,
    notice: noticeFrom(c, NOTICES),
    body: html`${facts(app, servers)}
      <div class="actions">
        ${can(c, updateApp) ? html`<a class="button secondary" href="/applications/${app.id}/edit">Edit application</a>` : ""}
        ${
          can(c, removeApp)
            ? html`<form
                method="post"
                action="/applications/${app.id}/remove"
                class="inline"
                data-confirm="Remove the application ${app.name}? Its environment is deleted; its past deploys stay in the operations log."
              >
                ${csrfField(c)}
                <button type="submit" class="danger">Remove application</button>
              </form>`
            : ""
        }
      </div>
      ${can(c, deployApp) ? deployForm(c, app, form) : ""}
      ${history ? historySection(app, history.items, history.next_cursor) : ""}
      ${env ? envSection(c, app, env.items, form) : ""}
      <h2>Scripts</h2>
      <h3>Deploy script</h3>
      <pre class="yaml"><code>${app.deploy_script}</code></pre>
      ${
        app.restart_script === null
          ? ""
          : html`<h3>Restart script</h3>
              <pre class="yaml"><code>${app.restart_script}</code></pre>`
      }`,
  });
}

function facts(app: ApplicationDetail, servers: readonly ServerView[]) {
  return html`<dl class="facts">
    <dt>Id</dt>
    <dd><code>${app.id}</code></dd>
    <dt>Server</dt>
    <dd><a href="/servers/${app.server_id}">${serverName(servers, app.server_id)}</a></dd>
    <dt>Working directory</dt>
    <dd><code>${app.working_directory}</code></dd>
    <dt>Restart script</dt>
    <dd>${app.restart_script === null ? "none" : "yes"}</dd>
    <dt>Created</dt>
    <dd>${when(app.created_at)}</dd>
  </dl>`;
}

function deployForm(c: DashContext, app: ApplicationDetail, form: FormValues) {
  return html`<h2 id="deploy">Deploy</h2>
    <form method="post" action="/applications/${app.id}/deploy" class="stack" aria-labelledby="deploy">
      ${csrfField(c)}
      <div>
        <label for="deploy-ref">Ref</label>
        <input
          id="deploy-ref"
          name="commit_ref"
          type="text"
          maxlength="1024"
          value="${text(form, "commit_ref")}"
          aria-describedby="deploy-ref-hint"
        />
        <p class="hint" id="deploy-ref-hint">
          Optional: a branch, tag or commit id, given to the deploy script in <code>REOCLO_COMMIT_REF</code>.
        </p>
      </div>
      <div><button type="submit">Deploy</button></div>
    </form>`;
}

function historySection(app: ApplicationDetail, items: readonly DeploymentView[], next: string | null) {
  return html`<h2 id="history">Deployment history</h2>
    ${
      items.length === 0
        ? html`<p class="empty">No deploys yet.</p>`
        : html`<table aria-labelledby="history">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Duration</th>
                <th scope="col">Commit ref</th>
                <th scope="col">Who</th>
                <th scope="col">Started</th>
                <th scope="col">Operation</th>
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (d) =>
                  html`<tr>
                    <td>${outcome(d)}${d.reason ? html` <span class="muted">${d.reason}</span>` : ""}</td>
                    <td>${durationOf(d.duration_ms)}</td>
                    <td>
                      ${d.commit_ref ? html`<code>${d.commit_ref}</code>` : html`<span class="muted">none</span>`}
                    </td>
                    <td>${startedBy(d.started_by)}</td>
                    <td>${when(d.started_at ?? d.created_at)}</td>
                    <td>
                      <a href="/operations/${d.operation_id}"
                        >Log<span class="visually-hidden"> of the deploy ${d.operation_id}</span></a
                      >
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${next ? html`<p><a href="/applications/${app.id}?cursor=${encodeURIComponent(next)}#history">Older deploys</a></p>` : ""}`;
}

function envSection(
  c: DashContext,
  app: ApplicationDetail,
  items: readonly { name: string; updated_at: string | null }[],
  form: FormValues,
) {
  const mayWrite = can(c, setEnv);
  return html`<h2 id="environment">Environment</h2>
    <p class="hint">
      Values are write-only: stored encrypted, given to the deploy and restart scripts, masked in their
      output, and never shown here or by the API.
    </p>
    ${
      items.length === 0
        ? html`<p class="empty">No variables yet.</p>`
        : html`<table aria-labelledby="environment">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Updated</th>
                ${mayWrite ? html`<th scope="col">Actions</th>` : ""}
              </tr>
            </thead>
            <tbody>
              ${items.map(
                (v) =>
                  html`<tr>
                    <td><code>${v.name}</code></td>
                    <td>${when(v.updated_at, "unknown")}</td>
                    ${
                      mayWrite
                        ? html`<td>
                            <form
                              method="post"
                              action="/applications/${app.id}/env/remove"
                              class="inline"
                              data-confirm="Remove the variable ${v.name}? The next deploy runs without it."
                            >
                              ${csrfField(c)}
                              <input type="hidden" name="name" value="${v.name}" />
                              <button type="submit" class="danger">
                                Remove<span class="visually-hidden"> variable ${v.name}</span>
                              </button>
                            </form>
                          </td>`
                        : ""
                    }
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${
      mayWrite
        ? html`<h3 id="set-variable">Add or update a variable</h3>
            <form
              method="post"
              action="/applications/${app.id}/env"
              class="stack"
              aria-labelledby="set-variable"
            >
              ${csrfField(c)}
              <div>
                <label for="env-name">Name</label>
                <input
                  id="env-name"
                  name="name"
                  type="text"
                  required
                  autocomplete="off"
                  spellcheck="false"
                  value="${text(form, "name")}"
                  aria-describedby="env-name-hint"
                />
                <p class="hint" id="env-name-hint">
                  Letters, digits and <code>_</code>, not starting with a digit. A name that exists gets the
                  new value.
                </p>
              </div>
              <div>
                <label for="env-value">Value</label>
                <textarea id="env-value" name="value" autocomplete="off" spellcheck="false"></textarea>
              </div>
              <div><button type="submit">Save variable</button></div>
            </form>`
        : ""
    }`;
}

export function applicationPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/applications", (c) => orErrorPage(c, () => listPage(c, deps)));
  app.get("/applications/new", (c) => orErrorPage(c, () => newPage(c, deps)));

  app.post("/applications", async (c) => {
    const form = await formValues(c);
    try {
      const added = await run(c, deps, addApp, {
        name: text(form, "name"),
        server_id: text(form, "server_id"),
        working_directory: text(form, "working_directory"),
        deploy_script: text(form, "deploy_script"),
        restart_script:
          optional(form, "restart_script") === undefined ? undefined : text(form, "restart_script"),
        env: parseEnvLines(text(form, "env")),
      });
      return redirectWith(c, `/applications/${added.id}`, "added");
    } catch (err) {
      // The environment's values are secrets: never typed back into the page.
      const error = errorText(err);
      return orErrorPage(c, () => newPage(c, deps, { error, form: { ...form, env: "" } }));
    }
  });

  app.get("/applications/:id", (c) => orErrorPage(c, () => appPage(c, deps, c.req.param("id"))));
  app.get("/applications/:id/edit", (c) => orErrorPage(c, () => editPage(c, deps, c.req.param("id"))));

  app.post("/applications/:id/edit", async (c) => {
    const id = c.req.param("id");
    const form = await formValues(c);
    try {
      await run(c, deps, updateApp, {
        id,
        name: text(form, "name"),
        server_id: optional(form, "server_id"),
        working_directory: text(form, "working_directory"),
        deploy_script: text(form, "deploy_script"),
        // Empty removes the restart script.
        restart_script: optional(form, "restart_script") === undefined ? null : text(form, "restart_script"),
      });
      return redirectWith(c, `/applications/${id}`, "saved");
    } catch (err) {
      const error = errorText(err);
      return orErrorPage(c, () => editPage(c, deps, id, { error, form }));
    }
  });

  app.post("/applications/:id/remove", async (c) => {
    const id = c.req.param("id");
    try {
      await run(c, deps, removeApp, { id });
      return redirectWith(c, "/applications", "removed");
    } catch (err) {
      const error = errorText(err);
      return orErrorPage(c, () => appPage(c, deps, id, { error, form: {} }));
    }
  });

  app.post("/applications/:id/deploy", async (c) => {
    const id = c.req.param("id");
    const form = await formValues(c);
    try {
      const started = await run(c, deps, deployApp, {
        ...tenant(c, id),
        commit_ref: optional(form, "commit_ref"),
      });
      return c.redirect(`/operations/${started.operation_id}`, 303);
    } catch (err) {
      const error = errorText(err);
      return orErrorPage(c, () =>
        appPage(c, deps, id, { error, form: { commit_ref: text(form, "commit_ref") } }),
      );
    }
  });

  app.post("/applications/:id/env", async (c) => {
    const id = c.req.param("id");
    const form = await formValues(c);
    const name = text(form, "name").trim();
    try {
      await run(c, deps, setEnv, { ...tenant(c, id), env: { [name]: text(form, "value") } });
      return redirectWith(c, `/applications/${id}`, "env_saved");
    } catch (err) {
      const error = errorText(err);
      // The name comes back; the value never does.
      return orErrorPage(c, () => appPage(c, deps, id, { error, form: { name } }));
    }
  });

  app.post("/applications/:id/env/remove", async (c) => {
    const id = c.req.param("id");
    const form = await formValues(c);
    try {
      await run(c, deps, setEnv, { ...tenant(c, id), remove: [text(form, "name")] });
      return redirectWith(c, `/applications/${id}`, "env_removed");
    } catch (err) {
      const error = errorText(err);
      return orErrorPage(c, () => appPage(c, deps, id, { error, form: {} }));
    }
  });
}
