import { randomInt, randomUUID } from "node:crypto";
import { DRIVERS } from "@reoclo/testbed/postgres-database";
import { pgrep } from "@reoclo/testbed/process-tree";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardSession, type DashboardSession } from "./fixtures/dashboard";
import { outputText, readEvents, startExecEnv, type ExecEnv, type SseEvent } from "./fixtures/exec-env";

// The dashboard's Operations and Audit log pages (spec §11) against the real service, a real sshd
// host and PostgreSQL: what a CI key ran is listed and shown with its output, the live log's stream
// answers the session, a developer cancels a running command from its page and a viewer cannot,
// and the audit log shows the run, filtered.

describe.each(DRIVERS)("the dashboard: operations and the audit log (%s)", (driver) => {
  let env: ExecEnv;
  let origin: string;
  let viewer: DashboardSession;
  let dev: DashboardSession;

  beforeAll(async () => {
    env = await startExecEnv({ driver });
    origin = new URL(env.base).origin;
    [viewer, dev] = await Promise.all([
      dashboardSession(env.t, origin, "viewer"),
      dashboardSession(env.t, origin, "developer"),
    ]);
  });
  afterAll(() => env?.close());

  /** Runs a command with the env's automation key, as a CI job does; waits for its end. */
  async function ciExec(command: string): Promise<string> {
    const res = await env.post("/exec", { server_id: env.serverId, command });
    const body = (await res.json()) as { operation_id: string; status: string };
    expect(body.status).toBe("completed");
    return body.operation_id;
  }

  /** Starts a long command and follows its events (the stream ends with the operation). */
  async function startRunning(command: string): Promise<{ id: string; events: Promise<SseEvent[]> }> {
    const res = await env.post(
      "/exec",
      { server_id: env.serverId, command, timeout_seconds: 600 },
      { Accept: "text/event-stream" },
    );
    expect(res.status).toBe(200);
    const id = res.headers.get("x-operation-id")!;
    return { id, events: readEvents(res) };
  }

  const opLink = (id: string) => `aria-label="Operation ${id}"`;
  const statusOn = (html: string) => /id="op-status" class="status status-([a-z_]+)"/.exec(html)?.[1];

  it("lists a CI command's operation and shows it with its output; the live log's stream answers the session", async () => {
    const id = await ciExec("echo hello; echo oops >&2");

    const list = await viewer.get("/operations");
    expect(list.status).toBe(200);
    expect(list.html).toContain(opLink(id));
    expect(list.html).toMatch(/<form method="get" action="\/operations" class="filters"/);
    for (const label of ["Server", "Application", "Key", "Status", "Run id", "Since"])
      expect(list.html).toMatch(new RegExp(`<label for="[a-z_]+">${label}</label>`));
    // Filters reach the verb: this server's completed ones have it, the running ones do not.
    expect((await viewer.get(`/operations?server=${env.serverId}&status=completed`)).html).toContain(
      opLink(id),
    );
    const running = await viewer.get("/operations?status=running");
    expect(running.html).not.toContain(opLink(id));
    expect(running.html).toContain('<option value="running" selected>');

    const shown = await viewer.get(`/operations/${id}`);
    expect(shown.status).toBe(200);
    expect(statusOn(shown.html)).toBe("completed");
    expect(shown.html).toContain('<span id="op-exit">0</span>');
    expect(shown.html).toContain(`data-events="/api/operations/${id}/events"`);
    // The stored output, without a script: stdout and stderr apart.
    expect(shown.html).toContain('<span class="stdout">hello\n</span>');
    expect(shown.html).toContain('<span class="stderr">oops\n</span>');
    // Finished: no cancel button (and a viewer would not get one anyway).
    expect(shown.html).not.toContain('id="cancel-form"');

    // What the page's script follows: the management API's stream, to the session cookie.
    const res = await fetch(`${origin}/api/operations/${id}/events`, {
      headers: { Cookie: viewer.person.cookie },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await readEvents(res);
    expect(outputText(events, "stdout")).toBe("hello\n");
    expect(outputText(events, "stderr")).toBe("oops\n");
    expect(events.at(-1)?.event).toBe("end");

    // Pages: one at a time, the filters kept in the next page's link.
    const second = await ciExec("echo again");
    const first = await viewer.get(`/operations?server=${env.serverId}&limit=1`);
    expect(first.html).toContain(opLink(second));
    expect(first.html).not.toContain(opLink(id));
    const next = /href="(\/operations\?[^"]+)" rel="next">Next page</
      .exec(first.html)?.[1]
      ?.replaceAll("&amp;", "&");
    expect(next).toContain(`server=${env.serverId}`);
    const after = await viewer.get(next!);
    expect(after.html).toContain(opLink(id));
    expect(after.html).not.toContain(opLink(second));
  });

  it("lets a developer cancel a running command from its page; a viewer gets no button and is refused", async () => {
    const m = `9${randomInt(100_000, 999_999)}`;
    const { id, events } = await startRunning(`sleep ${m}`);
    // The stream answers before the host has started the command: wait for it, so "still running" below means something.
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).not.toBe("");

    const asViewer = await viewer.get(`/operations/${id}`);
    expect(statusOn(asViewer.html)).toBe("running");
    expect(asViewer.html).not.toContain('id="cancel-form"');
    // A viewer's own forged post, and a developer's post from another site: refused, nothing stopped.
    const refused = await viewer.post(`/operations/${id}/cancel`, {});
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('role="alert"');
    const crossSite = await dev.post(`/operations/${id}/cancel`, {}, { origin: "http://evil.example" });
    expect(crossSite.status).toBe(403);
    const still = await dev.get(`/operations/${id}`);
    expect(statusOn(still.html)).toBe("running");
    expect(pgrep(`sleep ${m}`)).not.toBe("");

    expect(still.html).toContain('id="cancel-form"');
    expect(still.html).toContain(`action="/operations/${id}/cancel"`);
    const cancelled = await dev.post(`/operations/${id}/cancel`, {});
    expect(cancelled.status).toBe(303);
    expect(cancelled.location).toBe(`/operations/${id}?done=cancel`);
    await expect
      .poll(async () => statusOn((await dev.get(`/operations/${id}`)).html), { timeout: 10_000 })
      .toBe("cancelled");
    const back = await dev.get(cancelled.location!);
    expect(back.html).toContain("process tree on the host was told to stop.");
    expect(back.html).not.toContain('id="cancel-form"');
    expect(JSON.parse((await events).at(-1)!.data)).toMatchObject({ outcome: "cancelled" });
    await expect.poll(() => pgrep(`sleep ${m}`), { timeout: 10_000 }).toBe("");
  });

  it("shows the audit log, filtered", async () => {
    const id = await ciExec("echo audited");
    await env.t.deps.audit.flush();

    const all = await viewer.get("/audit");
    expect(all.status).toBe(200);
    for (const label of ["Actor", "Key", "Server", "Outcome", "Action", "Since"])
      expect(all.html).toMatch(new RegExp(`<label for="[a-z_]+">${label}</label>`));
    expect(all.html).toContain(opLink(id));
    expect(all.html).toContain("POST /api/automation/v1/exec");
    expect((await viewer.get(`/audit?outcome=allowed&server=${env.serverId}`)).html).toContain(opLink(id));
    const denied = await viewer.get("/audit?outcome=denied");
    expect(denied.status).toBe(200);
    expect(denied.html).not.toContain(opLink(id));
  });

  it("shows a malformed filter as the verb's refusal, and an unknown operation as not found", async () => {
    for (const path of ["/operations?since=yesterday", "/audit?since=yesterday"]) {
      const bad = await viewer.get(path);
      expect(bad.status).toBe(422);
      expect(bad.html).toContain('role="alert"');
      expect(bad.html).toContain("must be an ISO 8601 time");
      // The form again, with what was typed.
      expect(bad.html).toContain('value="yesterday"');
    }
    expect((await viewer.get("/operations?status=sleeping")).status).toBe(422);
    const unknown = await viewer.get(`/operations/${randomUUID()}`);
    expect(unknown.status).toBe(404);
    expect(unknown.html).toContain('role="alert"');
  });
});
