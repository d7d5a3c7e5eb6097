// The dashboard's Servers pages (spec §11) over real HTTP, a real PostgreSQL and a real sshd: a
// manager adds a host in two steps, seeing its host key before anything is pinned; the key file
// never comes back in a page; test, edit, re-pin after a mismatch and remove work; a viewer and a
// forged form change nothing.
import { randomBytes } from "node:crypto";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN } from "../src/access/principal";
import { runAdmin } from "../src/admin/cli";
import { serversList, serversPin, serversShow } from "../src/control/servers";
import { invoke } from "../src/control/verb";
import { auditEvents } from "../src/db/schema";
import { createTestApp, serveTestApp, type ServedApp, type TestApp } from "./fixtures/app";
import { dashboardSession, type DashboardSession } from "./fixtures/dashboard";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";
import { addTestHost } from "./fixtures/entities";
import { verbServices } from "./fixtures/people";

const scannedIn = (html: string) => /id="scanned-fingerprint">([^<]+)</.exec(html)?.[1];
/** A well-formed fingerprint no host presents. */
const madeUpFingerprint = () => `SHA256:${randomBytes(32).toString("base64").replace(/=+$/, "")}`;

describe("the dashboard's servers pages", () => {
  let db: TestDatabase;
  let host: TestHost;
  let t: TestApp;
  let served: ServedApp;
  let manager: DashboardSession;
  let viewer: DashboardSession;
  /** Every page a test saw, to check that the private key never came back. */
  const seen: string[] = [];
  const saw = <P extends { html: string }>(p: P) => (seen.push(p.html), p);

  const servers = async () => (await invoke(serversList, verbServices(t), ADMIN, {})).items;
  const show = (id: string) => invoke(serversShow, verbServices(t), ADMIN, { id });

  beforeAll(async () => {
    [db, host] = await Promise.all([createTestDatabase("postgres"), startTestHost()]);
    t = createTestApp(db);
    served = await serveTestApp(t);
    const origin = new URL(served.base).origin;
    [manager, viewer] = await Promise.all([
      dashboardSession(t, origin, "manager"),
      dashboardSession(t, origin, "viewer"),
    ]);
  });
  afterAll(async () => {
    await served?.close();
    await t?.close();
    await Promise.all([db?.close(), host?.close()]);
  });

  it("adds a server in two steps, showing the host's real fingerprint before pinning it", async () => {
    const empty = saw(await manager.get("/servers"));
    expect(empty.html).toContain("No servers yet");
    expect(empty.html).toContain('href="/servers/new"');

    const stepOne = saw(await manager.get("/servers/new"));
    expect(stepOne.status).toBe(200);
    for (const label of ["Name", "Host", "Port", "User"]) expect(stepOne.html).toMatch(`>${label}</label>`);
    expect(stepOne.html).toContain("Read the host key");

    const where = { name: "web-1", host: host.host, port: String(host.port), user: host.username };
    const stepTwo = saw(await manager.post("/servers/new/scan", where));
    expect(stepTwo.status).toBe(200);
    expect(scannedIn(stepTwo.html)).toBe(host.hostKeyFingerprint);
    expect(stepTwo.html).toContain("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    expect(stepTwo.html).toContain("Confirm fingerprint and add server");
    expect(await servers()).toEqual([]); // reading the key stored nothing

    // As a browser sends a textarea: CRLF line ends.
    const form = {
      ...where,
      host_key_fingerprint: scannedIn(stepTwo.html)!,
      private_key: host.privateKey.replace(/\n/g, "\r\n"),
      passphrase: "",
    };
    const unticked = saw(await manager.post("/servers", form));
    expect(unticked.status).toBe(422);
    expect(await servers()).toEqual([]);

    const added = saw(await manager.post("/servers", { ...form, fingerprint_confirmed: "yes" }));
    expect(added.status).toBe(303);
    const [server] = await servers();
    expect(server).toMatchObject({ name: "web-1", host_key_fingerprint: host.hostKeyFingerprint });
    expect(added.location).toBe(`/servers/${server!.id}?done=added`);
    const shown = saw(await manager.get(added.location!));
    expect(shown.html).toContain("The server is added and its host key pinned.");
    expect(shown.html).toContain(host.hostKeyFingerprint);
    const listed = saw(await manager.get("/servers"));
    expect(listed.html).toContain(`href="/servers/${server!.id}"`);
    expect(listed.html).toContain(`${host.username}@${host.host}:${host.port}`);

    // Taken name: step 2 again with the verb's sentence, the key not rendered back.
    const taken = saw(await manager.post("/servers", { ...form, fingerprint_confirmed: "yes" }));
    expect(taken.status).toBe(409);
    expect(taken.html).toContain("already exists");
    expect(await servers()).toHaveLength(1);
  });

  it("tests the connection and shows who it ran as", async () => {
    const [server] = await servers();
    const page = saw(await manager.post(`/servers/${server!.id}/test`, {}));
    expect(page.status).toBe(200);
    expect(page.html).toContain(`Connected as <code>${host.username}</code>`);
  });

  it("edits a server in place: the same id, the new name", async () => {
    const [server] = await servers();
    const res = saw(
      await manager.post(`/servers/${server!.id}`, {
        name: "web-renamed",
        host: server!.host,
        port: String(server!.port),
        user: server!.user,
        container_cli: "podman",
        reboot_command: server!.reboot_command,
        private_key: "",
        passphrase: "",
      }),
    );
    expect(res.status).toBe(303);
    expect(res.location).toBe(`/servers/${server!.id}?done=updated`);
    expect(await show(server!.id)).toMatchObject({ name: "web-renamed", container_cli: "podman" });
  });

  it("re-pins after a host key mismatch, showing the pinned and the presented key first", async () => {
    const [server] = await servers();
    const wrong = madeUpFingerprint();
    await invoke(serversPin, verbServices(t), ADMIN, {
      id: server!.id,
      host_key_fingerprint: wrong,
      skip_host_key_check: true,
    });
    const mismatch = saw(await manager.post(`/servers/${server!.id}/test`, {}));
    expect(mismatch.status).toBeGreaterThanOrEqual(400);
    expect(mismatch.html).toContain('role="alert"');
    expect(mismatch.html).toContain("Re-pin host key");

    const scan = saw(await manager.post(`/servers/${server!.id}/host-key/scan`, {}));
    expect(scan.status).toBe(200);
    expect(scan.html).toContain(wrong);
    expect(scannedIn(scan.html)).toBe(host.hostKeyFingerprint);
    expect(scan.html).toContain("host key mismatch");
    expect((await show(server!.id)).host_key_fingerprint).toBe(wrong); // nothing pinned yet

    const pinned = saw(
      await manager.post(`/servers/${server!.id}/host-key`, {
        host_key_fingerprint: scannedIn(scan.html)!,
        fingerprint_confirmed: "yes",
      }),
    );
    expect(pinned.status).toBe(303);
    expect(pinned.location).toBe(`/servers/${server!.id}?done=repinned`);
    expect((await show(server!.id)).host_key_fingerprint).toBe(host.hostKeyFingerprint);
    const [row] = await t.deps.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "server.host_key.pin"), eq(auditEvents.serverId, server!.id)))
      .orderBy(auditEvents.id)
      .then((rows) => rows.slice(-1));
    expect(row?.details).toMatchObject({
      host_key_fingerprint: host.hostKeyFingerprint,
      previous_fingerprint: wrong,
    });
    const tested = saw(await manager.post(`/servers/${server!.id}/test`, {}));
    expect(tested.html).toContain(`Connected as <code>${host.username}</code>`);
  });

  it("shows a viewer the list without Add a server, and refuses their add with 403", async () => {
    const list = saw(await viewer.get("/servers"));
    expect(list.status).toBe(200);
    expect(list.html).toContain("web-renamed");
    expect(list.html).not.toContain("Add a server");
    const detail = saw(await viewer.get(`/servers/${(await servers())[0]!.id}`));
    for (const button of ["Test connection", "Save changes", "Re-pin host key", "Remove server"])
      expect(detail.html).not.toContain(button);

    const refused = saw(
      await viewer.post("/servers", {
        name: "viewer-added",
        host: host.host,
        port: String(host.port),
        user: host.username,
        host_key_fingerprint: host.hostKeyFingerprint,
        private_key: host.privateKey,
        fingerprint_confirmed: "yes",
      }),
    );
    expect(refused.status).toBe(403);
    expect((await servers()).map((s) => s.name)).toEqual(["web-renamed"]);
  });

  it("refuses a forged form (another Origin, or no form token) with 403 and adds nothing", async () => {
    const fields = {
      name: "forged",
      host: host.host,
      port: String(host.port),
      user: host.username,
      host_key_fingerprint: host.hostKeyFingerprint,
      private_key: host.privateKey,
      fingerprint_confirmed: "yes",
    };
    for (const opts of [{ origin: "http://evil.example" }, { csrf: null }]) {
      const res = saw(await manager.post("/servers", fields, opts));
      expect(res.status).toBe(403);
    }
    expect((await servers()).map((s) => s.name)).toEqual(["web-renamed"]);
  });

  it("removes a server, and an unknown id is a 404 page", async () => {
    const other = await addTestHost(verbServices(t).ctx, host);
    const removed = saw(await manager.post(`/servers/${other.id}/remove`, {}));
    expect(removed.status).toBe(303);
    expect(removed.location).toBe("/servers?done=removed");
    expect((await servers()).map((s) => s.id)).not.toContain(other.id);
    const gone = saw(await manager.get(`/servers/${other.id}`));
    expect(gone.status).toBe(404);
    expect(gone.html).toContain("not found");
  });

  it("reads a host key from reoclo-admin too (servers scan), storing nothing", async () => {
    let stdout = "";
    const code = await runAdmin(
      ["servers", "scan", "--host", host.host, "--port", String(host.port), "--json"],
      {
        env: { DATABASE_URL: db.url!, REOCLO_MASTER_KEY: randomBytes(32).toString("hex") },
        stdout: (s) => void (stdout += s),
        stderr: () => undefined,
        readStdin: () => Promise.resolve(""),
      },
    );
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      host: host.host,
      port: host.port,
      host_key_fingerprint: host.hostKeyFingerprint,
    });
    expect(await servers()).toHaveLength(1);
  });

  it("never renders the private key back into a page", () => {
    const body = host.privateKey.split("\n").filter((line) => line && !line.startsWith("-----"));
    expect(body.length).toBeGreaterThan(0);
    for (const html of seen) for (const line of body) expect(html).not.toContain(line);
  });
});
