import type { Hono } from "hono";
import { html } from "hono/html";
import { authorize } from "../../access/principal";
import {
  serversAdd,
  serversList,
  serversPin,
  serversRemove,
  serversScan,
  serversShow,
  serversTest,
  serversUpdate,
} from "../../control/servers";
import type { AnyVerb } from "../../control/verb";
import { ServiceError } from "../../errors";
import type { ServerTestView, ServerView } from "../../servers/servers";
import {
  can,
  csrfField,
  errorText,
  formValues,
  noticeFrom,
  optional,
  optionalNumber,
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
import { page } from "../layout";

// Servers (spec §11 "The dashboard"): the list, adding one in two steps (the host key is read and
// shown for the person to compare with the host's own BEFORE anything is pinned), a server's page
// with test, edit, re-pin and remove. Every action is a servers.* verb run as the signed-in person.

const LIST_NOTICES = { removed: "The server is removed." };
const SERVER_NOTICES = {
  added: "The server is added and its host key pinned.",
  updated: "Your changes are saved.",
  repinned: "The host key is pinned again; the server keeps its id.",
};

const KEYGEN = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub";
const address = (s: { user: string; host: string; port: number | string }) => `${s.user}@${s.host}:${s.port}`;
const serverPath = (s: { id: string }) => `/servers/${encodeURIComponent(s.id)}`;
/** A textarea's lines come back CRLF from a browser; a key file has LF. */
const keyText = (f: FormValues, name: string) => text(f, name).replace(/\r\n?/g, "\n");

/** The verb's own refusal when the person may not run it (the same sentence as the API's 403). */
function refusalOf(c: DashContext, verb: AnyVerb): ServiceError | undefined {
  if (!verb.need) return undefined;
  try {
    authorize(person(c), verb.need, verb.what);
    return undefined;
  } catch (err) {
    return errorText(err);
  }
}

/** Runs a verb; a ServiceError comes back as a value so the page can show it, anything else throws. */
async function attempt<O>(fn: () => Promise<O>): Promise<{ ok: O } | { err: ServiceError }> {
  try {
    return { ok: await fn() };
  } catch (err) {
    return { err: errorText(err) };
  }
}

const fingerprintConfirm = html`<label class="check">
  <input type="checkbox" name="fingerprint_confirmed" value="yes" required />
  The fingerprint matches the host's own
</label>`;

const notConfirmed = () =>
  new ServiceError(
    "validation",
    "Compare the fingerprint with the host's own, then tick “The fingerprint matches the host's own”.",
    { fingerprint_confirmed: ["not ticked"] },
  );

const compareHint = (host: string) =>
  html`<p>
    On <strong>${host}</strong> itself (over a console or a connection you already trust), run
    <code>${KEYGEN}</code> (the ecdsa or rsa key's <code>.pub</code> if it has no ed25519 key) and check that
    it prints the same <code>SHA256:…</code> fingerprint. If it differs, stop: something between the service
    and the host may be pretending to be it.
  </p>`;

// ---- The list ----

function listPage(c: DashContext, servers: ServerView[]) {
  const add = can(c, serversAdd)
    ? html`<p class="actions"><a class="button" href="/servers/new">Add a server</a></p>`
    : "";
  const body =
    servers.length === 0
      ? html`<div class="empty">
            <h2>No servers yet</h2>
            <p>
              ${
                can(c, serversAdd)
                  ? html`Add one here with <a href="/servers/new">Add a server</a>.`
                  : "Someone of your organisation who may add servers adds them here."
              }
              You need its address, the SSH user commands run as, and a private key that user accepts (in its
              <code>~/.ssh/authorized_keys</code>). Its host key fingerprint is shown for you to compare with
              <code>${KEYGEN}</code> on the host before it is pinned.
            </p>
          </div>
          ${add}`
      : html`${add}
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Address</th>
                <th scope="col">Host key fingerprint</th>
                <th scope="col">Added</th>
              </tr>
            </thead>
            <tbody>
              ${servers.map(
                (s) =>
                  html`<tr>
                    <td><a href="${serverPath(s)}">${s.name}</a></td>
                    <td><code>${address(s)}</code></td>
                    <td><code>${s.host_key_fingerprint}</code></td>
                    <td>${when(s.created_at)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`;
  return page(c, { title: "Servers", notice: noticeFrom(c, LIST_NOTICES), body });
}

// ---- Adding: step 1, where the server is ----

interface Where {
  name: string;
  host: string;
  port: string;
  user: string;
}
const whereOf = (f: FormValues | Record<string, string | undefined>): Where => ({
  name: (typeof f.name === "string" ? f.name : "").trim(),
  host: (typeof f.host === "string" ? f.host : "").trim(),
  port: (typeof f.port === "string" ? f.port : "").trim() || "22",
  user: (typeof f.user === "string" ? f.user : "").trim(),
});

function addStepOne(c: DashContext, where: Where, error?: ServiceError) {
  // Someone who may not add servers sees why, not a form that would be refused.
  if (error?.code === "forbidden")
    return page(c, {
      title: "Add a server",
      section: "/servers",
      status: statusOf(error),
      error,
      body: html`<p><a href="/servers">All servers</a></p>`,
    });
  const field = (id: keyof Where, label: string, attrs: Markup, hint?: string) =>
    html`<div>
      <label for="${id}">${label}</label>
      <input
        id="${id}"
        name="${id}"
        value="${where[id]}"
        ${attrs}
        ${hint ? html`aria-describedby="${id}-hint"` : ""}
      />
      ${hint ? html`<p class="hint" id="${id}-hint">${hint}</p>` : ""}
    </div>`;
  return page(c, {
    title: "Add a server",
    status: error ? statusOf(error) : 200,
    error,
    body: html`<h2 id="step-where">Step 1 of 2: where the server is</h2>
      <form method="post" action="/servers/new/scan" class="stack" aria-labelledby="step-where">
        ${csrfField(c)}
        ${field("name", "Name", html`type="text" required maxlength="100" autocomplete="off"`, "Unique in your organisation; CI names the server by it or by its id.")}
        ${field("host", "Host", html`type="text" required maxlength="253" autocomplete="off" spellcheck="false"`, "Its host name or IP address, as the service reaches it.")}
        ${field("port", "Port", html`type="number" required min="1" max="65535"`)}
        ${field("user", "User", html`type="text" required maxlength="33" autocomplete="off" spellcheck="false"`, "The SSH user commands run as.")}
        <p class="hint">
          The service connects to the host and reads the host key it presents, without logging in. Nothing is
          stored until you have compared it with the host's own.
        </p>
        <div><button type="submit">Read the host key</button></div>
      </form>`,
  });
}

// ---- Adding: step 2, compare the host key and log in ----

function addStepTwo(c: DashContext, where: Where, fingerprint: string, error?: ServiceError) {
  const back = `/servers/new?${new URLSearchParams({ ...where }).toString()}`;
  return page(c, {
    title: "Add a server",
    status: error ? statusOf(error) : 200,
    error,
    body: html`<h2 id="step-compare">Step 2 of 2: compare the host key</h2>
      <p>The SSH server at <code>${where.host}:${where.port}</code> presents this host key:</p>
      <p>
        <code class="fingerprint" id="scanned-fingerprint">${fingerprint}</code>
        <button type="button" class="secondary" data-copy="scanned-fingerprint" hidden>
          Copy<span class="visually-hidden"> the fingerprint</span>
        </button>
      </p>
      ${compareHint(where.host)}
      <form method="post" action="/servers" class="stack" aria-labelledby="step-compare">
        ${csrfField(c)}
        <input type="hidden" name="name" value="${where.name}" />
        <input type="hidden" name="host" value="${where.host}" />
        <input type="hidden" name="port" value="${where.port}" />
        <input type="hidden" name="user" value="${where.user}" />
        <input type="hidden" name="host_key_fingerprint" value="${fingerprint}" />
        <dl class="facts">
          <dt>Name</dt>
          <dd>${where.name}</dd>
          <dt>Address</dt>
          <dd><code>${address(where)}</code></dd>
        </dl>
        <p><a href="${back}">Change the name, host, port or user</a></p>
        <div>
          <label for="private_key">Private key</label>
          <textarea
            id="private_key"
            name="private_key"
            rows="8"
            required
            autocomplete="off"
            spellcheck="false"
            aria-describedby="private_key-hint"
          ></textarea>
          <p class="hint" id="private_key-hint">
            The whole private key file (<code>-----BEGIN OPENSSH PRIVATE KEY-----</code> …) of a key
            ${where.user} accepts. It is stored encrypted and never shown again.
          </p>
        </div>
        <div>
          <label for="passphrase">Passphrase</label>
          <input
            id="passphrase"
            name="passphrase"
            type="password"
            autocomplete="off"
            aria-describedby="passphrase-hint"
          />
          <p class="hint" id="passphrase-hint">Only if the private key has one.</p>
        </div>
        ${fingerprintConfirm}
        <div><button type="submit">Confirm fingerprint and add server</button></div>
      </form>`,
  });
}

// ---- A server's page ----

interface ServerPageExtra {
  error?: ServiceError;
  tested?: ServerTestView;
  /** What the person typed into the edit form, shown again after a refusal (never the key). */
  edit?: FormValues;
}

function serverPage(c: DashContext, s: ServerView, extra: ServerPageExtra = {}) {
  const e = extra.edit;
  const v = (name: string, current: string | number) => (e ? text(e, name) : String(current));
  const path = serverPath(s);
  const tested = extra.tested
    ? html`<section aria-labelledby="test-result">
        <h2 id="test-result">Connection test</h2>
        <p>
          Connected as <code>${extra.tested.remote_user}</code> in ${extra.tested.latency_ms} ms; the host
          presented the pinned host key <code>${extra.tested.host_key_fingerprint}</code>.
        </p>
      </section>`
    : "";
  const testForm = can(c, serversTest)
    ? html`<form method="post" action="${path}/test" class="inline">
        ${csrfField(c)}<button type="submit">Test connection</button>
      </form>`
    : "";
  const edit = can(c, serversUpdate)
    ? html`<h2 id="edit">Edit</h2>
        <form method="post" action="${path}" class="stack" aria-labelledby="edit">
          ${csrfField(c)}
          <div>
            <label for="edit-name">Name</label>
            <input
              id="edit-name"
              name="name"
              type="text"
              required
              maxlength="100"
              value="${v("name", s.name)}"
            />
          </div>
          <div>
            <label for="edit-host">Host</label>
            <input
              id="edit-host"
              name="host"
              type="text"
              required
              maxlength="253"
              spellcheck="false"
              value="${v("host", s.host)}"
              aria-describedby="edit-host-hint"
            />
            <p class="hint" id="edit-host-hint">
              A new address keeps the pinned host key: if the new host's differs, re-pin it below.
            </p>
          </div>
          <div>
            <label for="edit-port">Port</label>
            <input
              id="edit-port"
              name="port"
              type="number"
              required
              min="1"
              max="65535"
              value="${v("port", s.port)}"
            />
          </div>
          <div>
            <label for="edit-user">User</label>
            <input
              id="edit-user"
              name="user"
              type="text"
              required
              spellcheck="false"
              value="${v("user", s.user)}"
            />
          </div>
          <div>
            <label for="edit-container-cli">Container CLI</label>
            <select id="edit-container-cli" name="container_cli">
              ${["docker", "podman"].map(
                (cli) =>
                  html`<option
                    value="${cli}"
                    ${v("container_cli", s.container_cli) === cli ? html`selected` : ""}
                  >
                    ${cli}
                  </option>`,
              )}
            </select>
          </div>
          <div>
            <label for="edit-reboot-command">Reboot command</label>
            <input
              id="edit-reboot-command"
              name="reboot_command"
              type="text"
              maxlength="1024"
              spellcheck="false"
              value="${v("reboot_command", s.reboot_command)}"
            />
          </div>
          <div>
            <label for="edit-private-key">New private key</label>
            <textarea
              id="edit-private-key"
              name="private_key"
              rows="6"
              autocomplete="off"
              spellcheck="false"
              aria-describedby="edit-private-key-hint"
            ></textarea>
            <p class="hint" id="edit-private-key-hint">
              Leave empty to keep the stored key. A new one is stored encrypted and never shown again.
            </p>
          </div>
          <div>
            <label for="edit-passphrase">Passphrase of the new key</label>
            <input id="edit-passphrase" name="passphrase" type="password" autocomplete="off" />
          </div>
          <div><button type="submit">Save changes</button></div>
        </form>`
    : "";
  const repin =
    can(c, serversPin) && can(c, serversScan)
      ? html`<h2 id="host-key">Host key</h2>
          <p>
            After the host was re-installed or its SSH host key rotated, connections fail with a host key
            mismatch. Read the key it presents now, compare it with the host's own, and pin it again; the
            server keeps its id, so automation keys and CI secrets that name it keep working.
          </p>
          <form method="post" action="${path}/host-key/scan" class="inline">
            ${csrfField(c)}<button type="submit" class="secondary">Re-pin host key</button>
          </form>`
      : "";
  const remove = can(c, serversRemove)
    ? html`<h2 id="remove">Remove</h2>
        <p>Automation keys lose this server; a server an application uses cannot be removed.</p>
        <form
          method="post"
          action="${path}/remove"
          class="inline"
          data-confirm="Remove server ${s.name}? Automation keys lose it and it cannot be undone."
        >
          ${csrfField(c)}<button type="submit" class="danger">Remove server</button>
        </form>`
    : "";
  return page(c, {
    title: s.name,
    section: "/servers",
    status: extra.error ? statusOf(extra.error) : 200,
    error: extra.error,
    notice: noticeFrom(c, SERVER_NOTICES),
    body: html`<p><a href="/servers">All servers</a></p>
      <dl class="facts">
        <dt>Name</dt>
        <dd>${s.name}</dd>
        <dt>ID</dt>
        <dd>
          <code id="server-id">${s.id}</code>
          <button type="button" class="secondary" data-copy="server-id" hidden>
            Copy<span class="visually-hidden"> the server's id</span>
          </button>
        </dd>
        <dt>Address</dt>
        <dd><code>${s.host}:${s.port}</code></dd>
        <dt>User</dt>
        <dd><code>${s.user}</code></dd>
        <dt>Host key fingerprint</dt>
        <dd><code class="fingerprint">${s.host_key_fingerprint}</code></dd>
        <dt>Container CLI</dt>
        <dd>${s.container_cli}</dd>
        <dt>Reboot command</dt>
        <dd><code>${s.reboot_command}</code></dd>
        <dt>Added</dt>
        <dd>${when(s.created_at)}</dd>
      </dl>
      ${testForm} ${tested} ${edit} ${repin} ${remove}`,
  });
}

function repinPage(c: DashContext, s: ServerView, fingerprint: string, error?: ServiceError) {
  const same = fingerprint === s.host_key_fingerprint;
  return page(c, {
    title: `Re-pin the host key of ${s.name}`,
    section: "/servers",
    status: error ? statusOf(error) : 200,
    error,
    body: html`<p><a href="${serverPath(s)}">Back to ${s.name}</a></p>
      <p>
        Do this after a connection failed with a host key mismatch because the host was re-installed or its
        key rotated. The server keeps its id; the change is audited with both fingerprints.
      </p>
      <dl class="facts">
        <dt>Pinned now</dt>
        <dd><code class="fingerprint" id="pinned-fingerprint">${s.host_key_fingerprint}</code></dd>
        <dt>Presented by <code>${s.host}:${s.port}</code> now</dt>
        <dd><code class="fingerprint" id="scanned-fingerprint">${fingerprint}</code></dd>
      </dl>
      <p class="${same ? "" : "warning"}">
        ${
          same
            ? "The host presents the key already pinned: nothing would change."
            : "The host presents a different key than the one pinned."
        }
      </p>
      ${compareHint(s.host)}
      <form method="post" action="${serverPath(s)}/host-key" class="stack">
        ${csrfField(c)}
        <input type="hidden" name="host_key_fingerprint" value="${fingerprint}" />
        ${fingerprintConfirm}
        <div><button type="submit">Confirm fingerprint and re-pin</button></div>
      </form>`,
  });
}

/** A page that only says what went wrong (an unknown id: the verb's not_found). */
const errorPage = (c: DashContext, err: ServiceError) =>
  page(c, {
    title: err.code === "not_found" ? "Server not found" : "Servers",
    section: "/servers",
    status: statusOf(err),
    error: err,
    body: html`<p><a href="/servers">All servers</a></p>`,
  });

export function serverPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/servers", async (c) => {
    const listed = await attempt(() => run(c, deps, serversList, {}));
    return "err" in listed ? errorPage(c, listed.err) : listPage(c, listed.ok.items);
  });

  app.get("/servers/new", (c) => {
    const where = whereOf(c.req.query());
    return addStepOne(c, where, refusalOf(c, serversAdd));
  });

  app.post("/servers/new/scan", async (c) => {
    const where = whereOf(await formValues(c));
    const scanned = await attempt(() => run(c, deps, serversScan, { host: where.host, port: where.port }));
    if ("err" in scanned) return addStepOne(c, where, scanned.err);
    const found = { ...where, host: scanned.ok.host, port: String(scanned.ok.port) };
    return addStepTwo(c, found, scanned.ok.host_key_fingerprint);
  });

  app.post("/servers", async (c) => {
    const f = await formValues(c);
    const where = whereOf(f);
    const fingerprint = text(f, "host_key_fingerprint");
    const refused = refusalOf(c, serversAdd);
    if (refused) return addStepOne(c, where, refused);
    if (text(f, "fingerprint_confirmed") === "") return addStepTwo(c, where, fingerprint, notConfirmed());
    const added = await attempt(() =>
      run(c, deps, serversAdd, {
        name: where.name,
        host: where.host,
        port: optionalNumber(f, "port"),
        user: where.user,
        private_key: keyText(f, "private_key"),
        passphrase: text(f, "passphrase") || undefined,
        host_key_fingerprint: fingerprint,
      }),
    );
    if ("err" in added) return addStepTwo(c, where, fingerprint, added.err);
    return redirectWith(c, serverPath(added.ok), "added");
  });

  app.get("/servers/:id", async (c) => {
    const shown = await attempt(() => run(c, deps, serversShow, { id: c.req.param("id") }));
    return "err" in shown ? errorPage(c, shown.err) : serverPage(c, shown.ok);
  });

  /** The server's page again with the outcome of something done on it. */
  const againWith = async (c: DashContext, extra: ServerPageExtra) => {
    const shown = await attempt(() => run(c, deps, serversShow, { id: c.req.param("id") }));
    return "err" in shown ? errorPage(c, shown.err) : serverPage(c, shown.ok, extra);
  };

  app.post("/servers/:id", async (c) => {
    const f = await formValues(c);
    const privateKey = keyText(f, "private_key").trim() ? keyText(f, "private_key") : undefined;
    const updated = await attempt(() =>
      run(c, deps, serversUpdate, {
        id: c.req.param("id"),
        name: optional(f, "name"),
        host: optional(f, "host"),
        port: optionalNumber(f, "port"),
        user: optional(f, "user"),
        container_cli: optional(f, "container_cli"),
        reboot_command: optional(f, "reboot_command"),
        private_key: privateKey,
        passphrase: text(f, "passphrase") || undefined,
      }),
    );
    if ("err" in updated) return againWith(c, { error: updated.err, edit: f });
    return redirectWith(c, serverPath(updated.ok), "updated");
  });

  app.post("/servers/:id/test", async (c) => {
    const tested = await attempt(() => run(c, deps, serversTest, { id: c.req.param("id") }));
    return againWith(c, "err" in tested ? { error: tested.err } : { tested: tested.ok });
  });

  app.post("/servers/:id/host-key/scan", async (c) => {
    const shown = await attempt(() => run(c, deps, serversShow, { id: c.req.param("id") }));
    if ("err" in shown) return errorPage(c, shown.err);
    const s = shown.ok;
    const scanned = await attempt(() => run(c, deps, serversScan, { host: s.host, port: s.port }));
    if ("err" in scanned) return serverPage(c, s, { error: scanned.err });
    return repinPage(c, s, scanned.ok.host_key_fingerprint);
  });

  app.post("/servers/:id/host-key", async (c) => {
    const f = await formValues(c);
    const fingerprint = text(f, "host_key_fingerprint");
    const shown = await attempt(() => run(c, deps, serversShow, { id: c.req.param("id") }));
    if ("err" in shown) return errorPage(c, shown.err);
    const refused = refusalOf(c, serversPin);
    if (refused) return serverPage(c, shown.ok, { error: refused });
    if (text(f, "fingerprint_confirmed") === "") return repinPage(c, shown.ok, fingerprint, notConfirmed());
    const pinned = await attempt(() =>
      run(c, deps, serversPin, { id: shown.ok.id, host_key_fingerprint: fingerprint }),
    );
    if ("err" in pinned) return repinPage(c, shown.ok, fingerprint, pinned.err);
    return redirectWith(c, serverPath(pinned.ok), "repinned");
  });

  app.post("/servers/:id/remove", async (c) => {
    const removed = await attempt(() => run(c, deps, serversRemove, { id: c.req.param("id") }));
    if ("err" in removed) return againWith(c, { error: removed.err });
    return redirectWith(c, "/servers", "removed");
  });
}
