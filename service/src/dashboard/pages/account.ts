import type { Hono } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import { checkSameOrigin } from "../../access/management";
import { ANONYMOUS } from "../../access/principal";
import { cookieOptions } from "../../api/management/people";
import { clientFacts } from "../../api/management/router";
import { authChangePassword, authLogin, authLogout } from "../../control/people";
import { invoke } from "../../control/verb";
import { ServiceError } from "../../errors";
import { SESSION_COOKIE } from "../../people/sessions";
import {
  csrfField,
  formValues,
  noticeFrom,
  person,
  run,
  statusOf,
  text,
  type DashContext,
  type DashDeps,
  type DashEnv,
} from "../kit";
import { page } from "../layout";

// Signing in and out, and one's own password (spec §11 "Who"): the same verbs as
// POST /api/auth/login, /logout and /change-password, and the same cookie.

/**
 * Only a path of this dashboard: a `next` of another site would make sign-in an open redirect. It
 * is read as a browser reads a URL (which drops tabs and line breaks, so `/<TAB>/evil.example`
 * is `//evil.example`, and turns `\\` into `/`) and answered re-encoded, so what the Location
 * header says is what the browser follows, and a control character never reaches the header.
 */
function safeNext(next: string | undefined): string {
  if (!next || !next.startsWith("/")) return "/";
  const base = "http://dashboard.invalid";
  let url: URL;
  try {
    url = new URL(next, base);
  } catch {
    return "/";
  }
  return url.origin === base && url.pathname.startsWith("/") && !url.pathname.startsWith("//")
    ? `${url.pathname}${url.search}`
    : "/";
}

function signInForm(c: DashContext, opts: { email?: string; next?: string; error?: ServiceError | string }) {
  return page(c, {
    title: "Sign in",
    status: opts.error instanceof ServiceError ? statusOf(opts.error) : 200,
    error: opts.error,
    body: html`<form method="post" action="/sign-in" class="stack sign-in">
      <input type="hidden" name="next" value="${safeNext(opts.next)}" />
      <div>
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="username"
          required
          value="${opts.email ?? ""}"
          ${opts.email ? "" : html`autofocus`}
        />
      </div>
      <div>
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          ${opts.email ? html`autofocus` : ""}
        />
      </div>
      <div><button type="submit">Sign in</button></div>
      <p class="hint">
        No account yet? The first owner is made on the service's machine with
        <code>reoclo-admin users add --email you@example.com --role owner</code>; owners add everyone else.
      </p>
    </form>`,
  });
}

/** The pages anyone may see: sign-in. */
export function signInPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.get("/sign-in", (c) => signInForm(c, { next: c.req.query("next") }));
  app.post("/sign-in", async (c) => {
    try {
      checkSameOrigin(c);
    } catch (err) {
      // A sign-in posted from another site's page (login CSRF): refused, as a page.
      if (!(err instanceof ServiceError)) throw err;
      return signInForm(c, { error: err });
    }
    const form = await formValues(c);
    const email = text(form, "email");
    try {
      const signed = await invoke(
        authLogin,
        deps.svc,
        ANONYMOUS,
        { email, password: text(form, "password") },
        clientFacts(c, undefined, deps),
      );
      setCookie(c, SESSION_COOKIE, signed.session.token, {
        ...cookieOptions(c, deps),
        maxAge: deps.access.config.sessionMaxHours * 3600,
      });
      return c.redirect(
        signed.user.must_change_password ? "/account?first=1" : safeNext(text(form, "next")),
        303,
      );
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      // The verb's one sentence for a wrong email or password; a 429 when the budget is spent.
      return signInForm(c, { email, next: text(form, "next"), error: err });
    }
  });
}

const ACCOUNT_NOTICES = { password: "Your password is changed; your other sessions have ended." };

/** Signing out and the person's own account page. */
export function accountPages(app: Hono<DashEnv>, deps: DashDeps) {
  app.post("/sign-out", async (c) => {
    await run(c, deps, authLogout, {});
    deleteCookie(c, SESSION_COOKIE, cookieOptions(c, deps));
    return c.redirect("/sign-in", 303);
  });

  const accountPage = (c: DashContext, error?: ServiceError) => {
    const me = person(c);
    const first = c.req.query("first") !== undefined || me.mustChangePassword;
    return page(c, {
      title: "Your account",
      status: error ? statusOf(error) : 200,
      error,
      notice: noticeFrom(c, ACCOUNT_NOTICES),
      body: html`<dl class="facts">
          <dt>Email</dt>
          <dd>${me.email}</dd>
          <dt>Role</dt>
          <dd>${me.role}</dd>
        </dl>
        <h2 id="change-password">Change your password</h2>
        ${
          first
            ? html`<p class="warning">
                You signed in with a one-time password. Choose your own before you go on.
              </p>`
            : ""
        }
        <form method="post" action="/account/password" class="stack" aria-labelledby="change-password">
          ${csrfField(c)}
          <div>
            <label for="current_password">Current password</label>
            <input
              id="current_password"
              name="current_password"
              type="password"
              autocomplete="current-password"
              required
            />
          </div>
          <div>
            <label for="new_password">New password</label>
            <input
              id="new_password"
              name="new_password"
              type="password"
              autocomplete="new-password"
              required
              minlength="12"
              aria-describedby="new-password-hint"
            />
            <p class="hint" id="new-password-hint">
              At least 12 characters. Your other sessions end when it changes.
            </p>
          </div>
          <div><button type="submit">Change password</button></div>
        </form>`,
    });
  };
  app.get("/account", (c) => accountPage(c));
  app.post("/account/password", async (c) => {
    const form = await formValues(c);
    try {
      await run(c, deps, authChangePassword, {
        current_password: text(form, "current_password"),
        new_password: text(form, "new_password"),
      });
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      return accountPage(c, err);
    }
    return c.redirect("/account?done=password", 303);
  });
}
