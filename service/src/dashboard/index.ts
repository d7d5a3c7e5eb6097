import { Hono, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie } from "hono/cookie";
import { html } from "hono/html";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { checkSameOrigin, clientAddress, sessionPrincipal } from "../access/management";
import { classifyDatabaseError } from "../db/errors";
import { ServiceError } from "../errors";
import { SESSION_COOKIE } from "../people/sessions";
import { assetRoutes } from "./assets";
import { can, csrfValid, type DashDeps, type DashEnv } from "./kit";
import { NAV, page } from "./layout";
import { accountPages, signInPages } from "./pages/account";
import { applicationPages } from "./pages/applications";
import { auditPages } from "./pages/audit";
import { credentialPages } from "./pages/credentials";
import { keyPages } from "./pages/keys";
import { operationPages } from "./pages/operations";
import { serverPages } from "./pages/servers";
import { userPages } from "./pages/users";

// The dashboard (spec §11): pages served by the service itself at `/`, rendered on the server
// (hono/html, which escapes every value) with one small script for what needs one. Each page calls
// the same verbs as the management API with the signed-in person as the caller, so what a person
// sees and may do is decided by the verbs' own permission checks.

/** Strict: only the service's own files; no inline script or style; no framing; forms post home. */
const CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'"],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
};

export function dashboardRoutes(deps: DashDeps) {
  const app = new Hono<DashEnv>();
  app.route("/", assetRoutes());
  // Mounted at `/`, the pages' middleware must meet only the pages: another path (a wrong base
  // URL of the automation API, say) keeps the service's JSON 404.
  const pagesOnly =
    (mw: MiddlewareHandler<DashEnv>): MiddlewareHandler<DashEnv> =>
    (c, next) =>
      isPagePath(c.req.path) ? mw(c, next) : next();
  app.use(
    pagesOnly(
      secureHeaders({
        contentSecurityPolicy: CSP,
        referrerPolicy: "same-origin",
        // HSTS belongs to whatever terminates TLS in front of the service (it may be plain http here).
        strictTransportSecurity: false,
        xFrameOptions: "DENY",
        crossOriginOpenerPolicy: "same-origin",
        permissionsPolicy: { camera: [], microphone: [], geolocation: [] },
      }),
    ),
  );
  // Pages can hold a one-time secret (a new key, a new person's password): never stored by a cache.
  app.use(
    pagesOnly(async (c, next) => {
      await next();
      c.header("Cache-Control", "no-store");
    }),
  );

  // A refusal that reached no page's own `catch` (a verb's ServiceError, or a value PostgreSQL
  // cannot hold, such as a NUL in an id) is still a page with its sentence, not the APIs' JSON;
  // anything else goes on to the service's handler (logged, 500).
  app.onError((err, c) => {
    if (!isPagePath(c.req.path)) throw err;
    const refused =
      err instanceof ServiceError
        ? err
        : classifyDatabaseError(err) === "bad_value"
          ? new ServiceError(
              "validation",
              "The request holds a value the service cannot store (for example a NUL character or a number out of range).",
            )
          : undefined;
    if (!refused) throw err;
    if (refused.retryAfterSeconds !== undefined) c.header("Retry-After", String(refused.retryAfterSeconds));
    return page(c, {
      title: refused.code === "not_found" ? "Not found" : "Request refused",
      status: refused.status as ContentfulStatusCode,
      error: refused,
      body: html`<p><a href="/">Back to the dashboard</a></p>`,
    });
  });

  signInPages(app, deps);
  app.use(pagesOnly(signedIn(deps)));
  app.use(pagesOnly(formsFromHere(deps)));
  accountPages(app, deps);
  app.get("/", (c) => {
    const first = NAV.find((item) => item.verbs.some((v) => can(c, v)));
    if (first) return c.redirect(first.href, 303);
    return page(c, {
      title: "Nothing to see yet",
      body: html`<p>Your role gives you no page of the dashboard; ask an owner of your organisation.</p>`,
    });
  });
  serverPages(app, deps);
  keyPages(app, deps);
  credentialPages(app, deps);
  applicationPages(app, deps);
  operationPages(app, deps);
  auditPages(app, deps);
  userPages(app, deps);
  // Any other page: an HTML answer that leads back (the APIs' unknown paths keep their JSON 404).
  app.get("*", (c) =>
    !isPagePath(c.req.path)
      ? c.notFound()
      : page(c, {
          title: "Page not found",
          status: 404,
          body: html`<p>
            There is no page at <code>${c.req.path}</code>. <a href="/">Back to the dashboard</a>.
          </p>`,
        }),
  );
  return app;
}

/** Where the pages are (each with what is under it); every other path is not the dashboard's. */
const PAGE_PREFIXES = [
  "/sign-in",
  "/sign-out",
  "/account",
  "/servers",
  "/keys",
  "/credentials",
  "/applications",
  "/operations",
  "/audit",
  "/users",
];
const isPagePath = (path: string) =>
  path === "/" || PAGE_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));

/** The signed-in person, or the sign-in page (coming back here after). */
function signedIn(deps: DashDeps): MiddlewareHandler<DashEnv> {
  return async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE);
    const principal = token === undefined ? undefined : await sessionPrincipal(deps.access, token);
    if (!principal) {
      if (token !== undefined) deleteCookie(c, SESSION_COOKIE, { path: "/" });
      const back = c.req.method === "GET" ? c.req.path + (new URL(c.req.url).search || "") : "/";
      return c.redirect(`/sign-in?next=${encodeURIComponent(back)}`, 303);
    }
    c.set("caller", {
      principal,
      clientIp: clientAddress(c, deps.access).client?.toString(),
      userAgent: c.req.header("user-agent")?.slice(0, 512),
      requestId: c.get("requestId"),
    });
    // A one-time password from an owner is changed before anything else.
    if (principal.mustChangePassword && !c.req.path.startsWith("/account") && c.req.path !== "/sign-out")
      return c.redirect("/account?first=1", 303);
    return next();
  };
}

/**
 * Every write of a signed-in person comes from the dashboard's own pages: the browser's Origin
 * (or Sec-Fetch-Site) says this site, and the form carries the session's form token. A forged
 * post from another site fails both; it is refused with 403, audited, and changes nothing.
 */
function formsFromHere(deps: DashDeps): MiddlewareHandler<DashEnv> {
  return async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    let refused: ServiceError | undefined;
    try {
      checkSameOrigin(c);
      const body = await c.req.parseBody();
      if (!csrfValid(c, body._csrf))
        refused = new ServiceError(
          "forbidden",
          "This form is out of date or did not come from this dashboard; reload the page and try again.",
        );
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      refused = err;
    }
    if (!refused) return next();
    const caller = c.get("caller");
    const principal = caller.principal.kind === "user" ? caller.principal : undefined;
    deps.access.audit.recordDeferred({
      outcome: "denied",
      reason: "cross_site_request",
      method: c.req.method,
      path: c.req.path.slice(0, 2048),
      peerIp: clientAddress(c, deps.access).peer ?? null,
      clientIp: caller.clientIp ?? null,
      userAgent: caller.userAgent ?? null,
      requestId: caller.requestId,
      orgId: principal?.orgId ?? null,
      actor: principal ? `user:${principal.userId}` : null,
    });
    return page(c, {
      title: "Request refused",
      status: 403,
      error: refused,
      body: html`<p><a href="/">Back to the dashboard</a></p>`,
    });
  };
}
