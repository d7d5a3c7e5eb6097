import { html } from "hono/html";
import type { z } from "zod";
import { listApps } from "../control/applications";
import { listAuditVerb } from "../control/audit";
import { keysList } from "../control/automation-keys";
import { listCreds } from "../control/credentials";
import { listIntegrationKeysVerb } from "../control/integration-keys";
import { listOperationsVerb } from "../control/operations";
import { usersAdd } from "../control/people";
import { serversList } from "../control/servers";
import type { Verb } from "../control/verb";
import { assetUrl } from "./assets";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ServiceError } from "../errors";
import { can, csrfField, errorText, person, statusOf, type DashContext, type Markup } from "./kit";

// The frame of every page: a skip link, the main navigation (an item shows when the person may run
// the verb behind its page), who is signed in with a sign-out button, and the page's content under
// one h1. Notices and errors are live regions so a screen reader announces them.

interface NavItem {
  readonly href: string;
  readonly label: string;
  /** The page's first verb: the item shows when the person may run one of them. */
  readonly verbs: readonly Verb<z.ZodType, unknown>[];
}

export const NAV: readonly NavItem[] = [
  { href: "/servers", label: "Servers", verbs: [serversList] },
  { href: "/keys", label: "API Keys", verbs: [keysList, listIntegrationKeysVerb] },
  { href: "/credentials", label: "Registry credentials", verbs: [listCreds] },
  { href: "/applications", label: "Applications", verbs: [listApps] },
  { href: "/operations", label: "Operations", verbs: [listOperationsVerb] },
  { href: "/audit", label: "Audit log", verbs: [listAuditVerb] },
  // Users and roles are the owners' page: adding people is what it is for.
  { href: "/users", label: "Users", verbs: [usersAdd] },
];

export interface PageOptions {
  readonly title: string;
  readonly body: Markup;
  readonly status?: ContentfulStatusCode;
  /** A sentence shown above the content in a live region (what just happened). */
  readonly notice?: string | undefined;
  /** An error shown above the content, announced to screen readers. */
  readonly error?: ServiceError | string | undefined;
  /** The main navigation's current item (its href). */
  readonly section?: string;
}

/** A whole page: the layout around the content, never cached (a page may hold a one-time secret). */
export function page(c: DashContext, opts: PageOptions) {
  return c.html(layout(c, opts), opts.status ?? 200);
}

export function layout(c: DashContext, opts: PageOptions) {
  const signedIn = c.get("caller")?.principal.kind === "user";
  const error =
    opts.error === undefined
      ? undefined
      : typeof opts.error === "string"
        ? { detail: opts.error, fields: undefined }
        : { detail: opts.error.detail, fields: opts.error.fields };
  const current = opts.section ?? "/" + (c.req.path.split("/")[1] ?? "");
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${opts.title} · Reoclo</title>
        <link rel="stylesheet" href="${assetUrl("dashboard.css")}" />
        <link rel="icon" href="${assetUrl("favicon.svg")}" type="image/svg+xml" />
        <script src="${assetUrl("dashboard.js")}" defer></script>
      </head>
      <body>
        <a class="skip-link" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">Reoclo<span class="muted"> automation</span></a>
          ${
            signedIn
              ? html`<nav aria-label="Main">
                    <ul>
                      ${NAV.filter((item) => item.verbs.some((v) => can(c, v))).map(
                        (item) =>
                          html`<li>
                            <a href="${item.href}" ${item.href === current ? html`aria-current="page"` : ""}
                              >${item.label}</a
                            >
                          </li>`,
                      )}
                    </ul>
                  </nav>
                  <div class="who">
                    <a href="/account">${person(c).email}</a> <span class="role">${person(c).role}</span>
                    <form method="post" action="/sign-out" class="inline">
                      ${csrfField(c)}<button type="submit" class="link">Sign out</button>
                    </form>
                  </div>`
              : ""
          }
        </header>
        <main id="main" tabindex="-1">
          <h1>${opts.title}</h1>
          <div role="status" class="notice" ${opts.notice ? "" : html`hidden`}>${opts.notice ?? ""}</div>
          ${
            error
              ? html`<div role="alert" class="error" id="form-error">
                  <p>${error.detail}</p>
                  ${
                    error.fields
                      ? html`<ul>
                          ${Object.entries(error.fields).map(
                            ([field, problems]) =>
                              html`<li data-field="${field}">
                                <code>${field}</code>: ${problems.join("; ")}
                              </li>`,
                          )}
                        </ul>`
                      : ""
                  }
                </div>`
              : ""
          }
          ${opts.body}
        </main>
      </body>
    </html>`;
}

/**
 * A verb's refusal as a whole page (an unknown id, a role without the permission): its sentence
 * and status, above `body` (what to do next, or the form again).
 */
export function failedPage(
  c: DashContext,
  title: string,
  err: unknown,
  body: Markup = html``,
  section?: string,
) {
  const error = errorText(err);
  return page(c, { title, status: statusOf(error), error, body, ...(section ? { section } : {}) });
}
