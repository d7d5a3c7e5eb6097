import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { API_BASE_PATH } from "@reoclo/protocol";
import { listenOnLoopback } from "@reoclo/testbed/net";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { ADMIN } from "../src/access/principal";
import { listAuditVerb } from "../src/control/audit";
import { keysList } from "../src/control/automation-keys";
import { invoke } from "../src/control/verb";
import { resolveOrg } from "../src/orgs/orgs";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { axeViolations, launchChromium, seriousOrWorse, type AxeViolation } from "./fixtures/browser";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { seedPerson, verbServices, type TestPerson } from "./fixtures/people";

// The dashboard end to end (issue 17): Debian's Chromium, headless, drives the real service (on
// PostgreSQL) and a real sshd host, as a person would: sign in, add the server after comparing its
// host key, make an automation key for it, watch the key's command print in the live log, cancel
// it (the process is gone from the host), revoke the key (the next request is refused). A viewer
// sees no buttons that change things, and a form posted from another site's page is refused.
// Every page is checked with axe-core in the same browser.
//
// REOCLO_SCREENSHOTS=<dir> also saves the main pages as PNG files there and measures the
// operations page's first paint (docs/screenshots/ holds the committed ones).

const SCREENSHOTS = process.env.REOCLO_SCREENSHOTS;
const DEADLINE_MS = 20_000;

let db: TestDatabase;
let host: TestHost;
let t: TestApp;
let served: ServedApp;
let origin: string;
let browser: Browser;
let manager: TestPerson;
let viewer: TestPerson;
let owner: TestPerson;
const contexts: BrowserContext[] = [];
/** axe's serious and critical findings, by page, gathered as the tests visit them. */
const accessibility = new Map<string, AxeViolation[]>();

beforeAll(async () => {
  [db, host, browser] = await Promise.all([
    createTestDatabase("postgres"),
    startTestHost(),
    launchChromium(),
  ]);
  t = createTestApp(db, { env: { REOCLO_SYNC_WAIT_SECONDS: "1" } });
  served = await serveTestApp(t);
  origin = new URL(served.base).origin;
  const org = await resolveOrg(verbServices(t).ctx, undefined);
  [manager, viewer, owner] = await Promise.all([
    seedPerson(db.db, { orgId: org.id, role: "manager" }),
    seedPerson(db.db, { orgId: org.id, role: "viewer" }),
    seedPerson(db.db, { orgId: org.id, role: "owner" }),
  ]);
});

afterAll(async () => {
  for (const c of contexts) await c.close();
  await browser?.close();
  await served?.close();
  await t?.close();
  await Promise.all([db?.close(), host?.close()]);
});

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ baseURL: origin, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(DEADLINE_MS);
  return page;
}

async function signIn(page: Page, person: TestPerson): Promise<void> {
  await page.goto("/");
  await page.waitForURL(/\/sign-in/);
  await page.getByLabel("Email").fill(person.email);
  await page.getByLabel("Password").fill(person.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => !url.pathname.startsWith("/sign-in"));
}

/** Runs axe on the page as it is and keeps the serious and critical findings under `name`. */
async function checkAccessibility(page: Page, name: string): Promise<void> {
  accessibility.set(name, seriousOrWorse(await axeViolations(page)));
  if (SCREENSHOTS) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }
}

/** Polls `check` until it holds, within the deadline (the thing waited for is outside the browser). */
async function eventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const exec = (key: string, body: unknown) =>
  fetch(`${origin}${API_BASE_PATH}/exec`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

describe("the dashboard in Chromium, against the real service and an sshd host", () => {
  let serverId: string;
  let key: string;
  const keyName = `ci-${randomBytes(3).toString("hex")}`;

  it("signs in and adds a server after showing its host key's fingerprint", async () => {
    const page = await newPage();
    await page.goto("/sign-in");
    await checkAccessibility(page, "sign-in");
    await signIn(page, manager);
    expect(new URL(page.url()).pathname).toBe("/servers");
    await checkAccessibility(page, "servers-empty");

    await page.getByRole("link", { name: "Add a server" }).first().click();
    await page.getByLabel("Name", { exact: true }).fill("web-1");
    await page.getByLabel("Host").fill(host.host);
    await page.getByLabel("Port").fill(String(host.port));
    await page.getByLabel("User").fill(host.username);
    await checkAccessibility(page, "server-new");
    await page.getByRole("button", { name: "Read the host key" }).click();
    // The fingerprint shown is the host's own, before anything is pinned.
    await expect(page.locator("#scanned-fingerprint").textContent()).resolves.toBe(host.hostKeyFingerprint);
    await checkAccessibility(page, "server-confirm-fingerprint");
    await page.getByLabel("Private key").fill(host.privateKey);
    await page.getByLabel("The fingerprint matches the host's own").check();
    await page.getByRole("button", { name: "Confirm fingerprint and add server" }).click();
    await page.waitForURL(/\/servers\/[0-9a-f-]{36}/);
    serverId = /\/servers\/([0-9a-f-]{36})/.exec(page.url())![1]!;
    expect(await page.content()).toContain(host.hostKeyFingerprint);
    expect(await page.content()).not.toContain("PRIVATE KEY");
    await checkAccessibility(page, "server");
  });

  it("creates an automation key scoped to the server, shows it once and copies it", async () => {
    const page = await newPage();
    await signIn(page, manager);
    await page.goto("/keys");
    await checkAccessibility(page, "keys-empty");
    await page.getByRole("link", { name: "Create an automation key" }).click();
    await page.getByLabel("Name", { exact: true }).fill(keyName);
    await page.getByRole("checkbox", { name: "web-1" }).check();
    await page.getByRole("checkbox", { name: "exec", exact: true }).check();
    await checkAccessibility(page, "key-new");
    await page.getByRole("button", { name: "Create key" }).click();
    key = await page.locator("#new-key").inputValue();
    expect(key).toMatch(/^rca_/);
    // The YAML to paste names the server the key is for.
    expect(await page.locator("pre.yaml").first().textContent()).toContain(serverId);
    await page.getByRole("button", { name: "Copy" }).click();
    await expect(page.evaluate("navigator.clipboard.readText()")).resolves.toBe(key);
    await checkAccessibility(page, "key-created");
    // Shown once: the list never holds it.
    await page.goto("/keys");
    expect(await page.content()).not.toContain(key);
    expect(await page.getByRole("row", { name: new RegExp(keyName) }).textContent()).toMatch(/active/);
    await checkAccessibility(page, "keys");
  });

  it("follows the key's command in the live log while it runs, cancels it and the host's process is gone", async () => {
    const pidFile = `/tmp/reoclo-e2e-${randomBytes(4).toString("hex")}.pid`;
    const res = await exec(key, {
      server_id: serverId,
      command: `sleep 300 & echo $! > ${pidFile}; echo first-line; echo to-stderr >&2; wait`,
    });
    expect(res.status).toBe(200);
    const started = (await res.json()) as { operation_id: string; status: string };
    expect(started.status).toBe("running");

    const page = await newPage();
    await signIn(page, manager);
    await page.goto("/operations");
    await page.getByRole("link", { name: `Operation ${started.operation_id}` }).click();
    await page.waitForURL(`**/operations/${started.operation_id}`);
    // A line printed by a command that is still running.
    await page.locator("#live-log .stdout", { hasText: "first-line" }).waitFor();
    await page.locator("#live-log .stderr", { hasText: "to-stderr" }).waitFor();
    expect(await page.locator("#op-status").textContent()).toBe("running");
    expect(await page.locator("code.command").textContent()).toContain("echo first-line");
    await checkAccessibility(page, "operation-running");

    await eventually(() => existsSync(pidFile), "the command's pid file");
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    expect(alive(pid)).toBe(true);
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.locator("#op-status", { hasText: /^cancelled$/ }).waitFor();
    await eventually(() => !alive(pid), `process ${pid} on the host to be gone`);

    await page.goto("/operations");
    await checkAccessibility(page, "operations");
  });

  it("revokes the key from its row, and the next request with it is refused", async () => {
    const page = await newPage();
    await signIn(page, manager);
    await page.goto("/keys");
    const row = page.getByRole("row", { name: new RegExp(keyName) });
    page.once("dialog", (d) => void d.accept());
    await row.getByRole("button", { name: "Revoke" }).click();
    await page.waitForURL(/\/keys/);
    expect(await page.getByRole("row", { name: new RegExp(keyName) }).textContent()).toMatch(/revoked/);
    const refused = await exec(key, { server_id: serverId, command: "true" });
    expect(refused.status).toBe(401);
  });

  it("shows a viewer no button that creates or revokes, and refuses a form posted from another site", async () => {
    // An active key the viewer could revoke if the page offered it.
    const other = await newPage();
    await signIn(other, manager);
    await other.goto("/keys/automation/new");
    await other.getByLabel("Name", { exact: true }).fill(`${keyName}-2`);
    await other.getByRole("checkbox", { name: "web-1" }).check();
    await other.getByRole("checkbox", { name: "exec", exact: true }).check();
    await other.getByRole("button", { name: "Create key" }).click();
    await other.locator("#new-key").waitFor();

    const page = await newPage();
    await signIn(page, viewer);
    await page.goto("/keys");
    await page.getByRole("row", { name: new RegExp(`${keyName}-2`) }).waitFor();
    expect(await page.getByRole("link", { name: "Create an automation key" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Revoke" }).count()).toBe(0);
    await page.goto("/servers");
    expect(await page.getByRole("link", { name: "Add a server" }).count()).toBe(0);

    // Another site's page posts a form to the dashboard in the manager's browser.
    const listKeys = async () =>
      (await invoke(keysList, verbServices(t), ADMIN, {})) as { items: unknown[] } | unknown[];
    const count = async () => {
      const keys = await listKeys();
      return (Array.isArray(keys) ? keys : keys.items).length;
    };
    const before = await count();
    const attacker = await servePage(`<!doctype html><title>win a prize</title>
      <form method="post" action="${origin}/keys/automation">
        <input name="name" value="planted"><input name="operations" value="exec"><input name="all_servers" value="on">
      </form><script>document.forms[0].submit()</script>`);
    try {
      const victim = await newPage();
      await signIn(victim, manager);
      const answered = victim.waitForResponse(`${origin}/keys/automation`);
      await victim.goto(attacker.url);
      expect((await answered).status()).toBe(403);
    } finally {
      await attacker.close();
    }
    expect(await count()).toBe(before);
    await t.deps.audit.flush();
    const audit = (await invoke(listAuditVerb, verbServices(t), ADMIN, { outcome: "denied" })) as {
      items: { reason?: string | null; details?: unknown }[];
    };
    expect(JSON.stringify(audit.items)).toContain("cross_site_request");
  });

  it("adds a credential and an application, deploys it and sets its env, as an owner", async () => {
    const page = await newPage();
    await signIn(page, owner);
    await page.goto("/credentials");
    await checkAccessibility(page, "credentials-empty");
    await page.getByLabel("Name", { exact: true }).fill("ghcr-bot");
    await page.getByLabel("Registry", { exact: true }).fill("ghcr.io");
    await page.getByLabel("Username").fill("deploy-bot");
    await page.getByLabel("Password").fill("registry-password-not-shown");
    await page.getByRole("button", { name: "Add credential" }).click();
    await page.getByRole("row", { name: /ghcr-bot/ }).waitFor();
    expect(await page.content()).not.toContain("registry-password-not-shown");
    await checkAccessibility(page, "credentials");

    await page.goto("/applications/new");
    await page.getByLabel("Name", { exact: true }).fill("shop");
    const web1 = await page.getByRole("option", { name: /^web-1 / }).getAttribute("value");
    expect(web1).toMatch(/^[0-9a-f-]{36}$/);
    await page.getByLabel("Server").selectOption(String(web1));
    await page.getByLabel("Working directory").fill("/tmp");
    await page.getByLabel("Deploy script").fill('echo "deploying $REOCLO_COMMIT_REF"');
    await checkAccessibility(page, "application-new");
    await page.getByRole("button", { name: "Add application" }).click();
    await page.waitForURL(/\/applications\/[0-9a-f-]{36}/);
    const application = page.url();
    await page.getByLabel("Ref").fill("main");
    await page.getByRole("button", { name: "Deploy" }).click();
    await page.waitForURL(/\/operations\/[0-9a-f-]{36}/);
    await page.locator("#live-log .stdout", { hasText: "deploying main" }).waitFor();
    await page.locator("#op-status", { hasText: /^completed$/ }).waitFor();
    await checkAccessibility(page, "operation-deploy");
    await page.goto(application);
    await page.getByLabel("Name", { exact: true }).last().fill("API_TOKEN");
    await page.getByLabel("Value").fill("env-value-not-shown");
    await page.getByRole("button", { name: "Save variable" }).click();
    await page.getByText("API_TOKEN").first().waitFor();
    expect(await page.content()).not.toContain("env-value-not-shown");
    await checkAccessibility(page, "application");
    await page.goto("/applications");
    await checkAccessibility(page, "applications");
  });

  it("has no serious or critical accessibility violation on any page", async () => {
    const page = await newPage();
    await signIn(page, owner);
    for (const [name, url] of [
      ["servers", "/servers"],
      ["keys-integration", "/keys?tab=integration"],
      ["trust-policies-empty", "/keys?tab=trust"],
      ["trust-policy-new", "/keys/trust/new"],
      ["integration-key-new", "/keys/integration/new"],
      ["audit", "/audit"],
      ["users", "/users"],
      ["account", "/account"],
      ["not-found", "/servers/00000000-0000-4000-8000-000000000000"],
    ] as const) {
      await page.goto(url);
      await checkAccessibility(page, name);
    }
    // The pages behind buttons and links: a server's test and re-pin, a key's, a credential's and an application's edit pages.
    await page.goto("/servers");
    await page.getByRole("link", { name: "web-1" }).click();
    await page.getByRole("button", { name: "Test connection" }).click();
    await page.getByText(host.username).first().waitFor();
    await checkAccessibility(page, "server-tested");
    await page.getByRole("button", { name: "Re-pin host key" }).click();
    await page.getByRole("button", { name: "Confirm fingerprint and re-pin" }).waitFor();
    await checkAccessibility(page, "server-repin");
    await page.goto("/keys");
    await page.getByRole("link", { name: keyName, exact: true }).click();
    await checkAccessibility(page, "key");
    await page.goto("/credentials");
    await page.getByRole("link", { name: /^Edit ghcr-bot/ }).click();
    await checkAccessibility(page, "credential");
    await page.goto("/applications");
    await page.getByRole("link", { name: "shop", exact: true }).click();
    await page.getByRole("link", { name: "Edit application" }).click();
    await checkAccessibility(page, "application-edit");

    await page.goto("/users");
    await page.getByLabel("Email").fill(`new-${randomBytes(3).toString("hex")}@example.com`);
    await page.getByLabel("Role").last().selectOption("developer");
    await page.getByRole("button", { name: "Add person" }).click();
    await page.locator("#new-password").waitFor();
    await checkAccessibility(page, "user-added");
    if (SCREENSHOTS) await measureFirstPaint(page);
    const found = [...accessibility].filter(([, v]) => v.length > 0);
    expect(found, JSON.stringify(found, null, 2)).toEqual([]);
    expect(accessibility.size).toBeGreaterThanOrEqual(32);
  });
});

/** A page of another site (another port on loopback is another origin). */
async function servePage(body: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(body);
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * The operations page's first contentful paint and the first byte of its answer (10 loads, in ms
 * from the navigation's start), written next to the screenshots. Read from the browser's own
 * paint timing, observed with `buffered` so an entry recorded before the script asks is seen.
 */
async function measureFirstPaint(page: Page): Promise<void> {
  const paint: number[] = [];
  const firstByte: number[] = [];
  for (let i = 0; i < 10; i++) {
    await page.goto("/operations");
    const [fcp, ttfb] = await page.evaluate<[number, number]>(`new Promise((resolve) => {
      const nav = performance.getEntriesByType("navigation")[0];
      new PerformanceObserver((list) => {
        const fcp = list.getEntries().find((e) => e.name === "first-contentful-paint");
        if (fcp) resolve([fcp.startTime, nav ? nav.responseStart : -1]);
      }).observe({ type: "paint", buffered: true });
    })`);
    paint.push(Math.round(fcp * 10) / 10);
    firstByte.push(Math.round(ttfb * 10) / 10);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  writeFileSync(
    path.join(SCREENSHOTS!, "first-paint.json"),
    JSON.stringify(
      {
        page: "/operations",
        first_contentful_paint_ms: paint,
        first_byte_ms: firstByte,
        median_first_contentful_paint_ms: median(paint),
        median_first_byte_ms: median(firstByte),
      },
      null,
      2,
    ),
  );
}
