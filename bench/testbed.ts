import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Client } from "ssh2";
import { testConfig } from "@reoclo/service/testing";
import { createPostgresDatabase } from "@reoclo/testbed/postgres-database";
import { startTestHost, type TestHost } from "@reoclo/testbed/sshd";
import { startTcpProxy, type TcpProxy } from "@reoclo/testbed/tcp-proxy";
import { openDatabase } from "../service/src/db/database";
import { automationKeys } from "../service/src/db/schema";
import { createKey } from "../service/src/keys/keys";
import { SecretBox } from "../service/src/secrets/secret-box";
import { addServer } from "../service/src/servers/servers";

// The test bed shared by the scenarios that run commands on hosts (exec-*, first-output, sse,
// concurrency, run-action, checkout): real OpenSSH sshd hosts on loopback, their client keys in
// files for the OpenSSH reference, and the real service in its own process
// (bench/servers/exec-server.ts) on a fresh PostgreSQL database (or a fresh embedded PGlite
// one in a temporary directory), with the hosts registered and a key whose rate limits no bench
// can reach. On request each host is registered behind a TCP proxy, which can cut the connections.

const REPO = new URL("../", import.meta.url).pathname;
const SERVER = new URL("./servers/exec-server.ts", import.meta.url).pathname;

export interface Service {
  /** The service process, for its memory figures in /proc. */
  pid: number;
  /** Which database the service runs on. */
  driver: "postgres" | "pglite";
  port: number;
  statsPort: number;
  key: string;
  /** One per host, in the order of `TestBed.hosts`. */
  serverIds: string[];
}

export interface TestBed {
  hosts: TestHost[];
  /** The client private key of each host, mode 0600, for `ssh -i`. */
  keyFiles: string[];
  /** With `proxied`, the proxy in front of each host (the service reaches the host through it); else empty. */
  proxies: TcpProxy[];
  service: Service;
  /** Registers a clean-up to run, in reverse order of registration, by `close`. */
  defer(cleanup: () => Promise<unknown>): void;
  /** Runs every clean-up, reporting (not throwing) failures. */
  close(): Promise<void>;
}

export interface TestBedOptions {
  /** Names the bench in messages. */
  name: string;
  hosts: number;
  /** REOCLO_OUTPUT_CAP_BYTES of the service. */
  outputCapBytes: number;
  /** REOCLO_SYNC_WAIT_SECONDS of the service (default 20). */
  syncWaitSeconds?: number;
  /** The service's database: a fresh PostgreSQL database (default) or an embedded PGlite one. */
  driver?: "postgres" | "pglite";
  /** REOCLO_REATTACH_BOUND_SECONDS of the service (default: the service's own; 0 turns reattach off). */
  reattachBoundSeconds?: number;
  /** Registers each host with the port of a TCP proxy in front of it (`TestBed.proxies`), to cut its connections. */
  proxied?: boolean;
  /**
   * Reads the service's log (one JSON line each, info lines included); a line it returns true for
   * is not shown. Without it, only the service's warnings and errors go to the bench's stderr.
   */
  serviceLog?: (line: string) => boolean;
}

export async function startTestBed(opts: TestBedOptions): Promise<TestBed> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    // In reverse: whatever the scenario added, the service, the database, the key files, the hosts.
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) =>
        process.stderr.write(`bench: ${opts.name}: cleanup failed: ${String(err)}\n`),
      );
    }
  };
  try {
    const hosts: TestHost[] = [];
    const started = await Promise.allSettled(Array.from({ length: opts.hosts }, () => startTestHost()));
    for (const s of started) if (s.status === "fulfilled") hosts.push(s.value);
    cleanups.push(() => Promise.all(hosts.map((h) => h.close())));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    if (hosts.some((h) => h.kind !== "openssh")) throw new Error(`the ${opts.name} bench needs OpenSSH sshd`);

    const keyDir = await mkdtemp(path.join(os.tmpdir(), "reoclo-bench-keys-"));
    cleanups.push(() => rm(keyDir, { recursive: true, force: true }));
    const keyFiles = await Promise.all(
      hosts.map(async (h, i) => {
        const file = path.join(keyDir, `id_${i}`);
        await writeFile(file, h.privateKey, { mode: 0o600 });
        return file;
      }),
    );

    const proxies: TcpProxy[] = [];
    if (opts.proxied) {
      // Closed after the service (clean-ups run in reverse), so it never sees its hosts vanish.
      cleanups.push(() => Promise.all(proxies.map((p) => p.close())));
      for (const h of hosts) proxies.push(await startTcpProxy(h.host, h.port));
    }

    const driver = opts.driver ?? "postgres";
    let db: { url?: string; pgliteDir?: string };
    if (driver === "postgres") {
      const pg = await createPostgresDatabase();
      cleanups.push(() => pg.drop());
      db = { url: pg.url };
    } else {
      const pgliteDir = await mkdtemp(path.join(os.tmpdir(), "reoclo-bench-pglite-"));
      cleanups.push(() => rm(pgliteDir, { recursive: true, force: true }));
      db = { pgliteDir };
    }
    const masterKey = randomBytes(32);
    const { key, serverIds } = await register(
      db,
      masterKey,
      hosts.map((h, i) => ({ host: h, port: proxies[i]?.port ?? h.port })),
    );
    const { child, port, statsPort } = await startService(db, masterKey, opts);
    cleanups.push(() => stopService(child));
    return {
      hosts,
      keyFiles,
      proxies,
      service: { pid: child.pid ?? 0, driver, port, statsPort, key, serverIds },
      defer: (cleanup) => cleanups.push(cleanup),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Migrates the fresh database and registers the hosts (each at `port`) and a key under `masterKey`. */
async function register(
  db: { url?: string; pgliteDir?: string },
  masterKey: Buffer,
  hosts: { host: TestHost; port: number }[],
) {
  const database = await openDatabase({ databaseUrl: db.url, pgliteDir: db.pgliteDir, maxConnections: 2 });
  try {
    await database.migrate();
    const ctx = {
      config: testConfig(),
      db: database.db,
      secrets: new SecretBox(masterKey),
      now: () => new Date(),
    };
    const serverIds: string[] = [];
    for (const [i, { host, port }] of hosts.entries()) {
      const srv = await addServer(ctx, {
        name: `bench-host-${i}`,
        host: host.host,
        port,
        user: host.username,
        private_key: host.privateKey,
        host_key_fingerprint: host.hostKeyFingerprint,
      });
      serverIds.push(srv.id);
    }
    const { key } = await createKey(ctx, {
      name: "bench",
      operations: ["exec"],
      all_servers: true,
      rate_limit_per_minute: 100_000,
      rate_limit_per_hour: 1_000_000,
    });
    // Far above what the bench sends, so no request is ever rate limited.
    await database.db.update(automationKeys).set({ rateLimitPerMinute: 1e9, rateLimitPerHour: 1e9 });
    return { key, serverIds };
  } finally {
    await database.close();
  }
}

async function startService(
  db: { url?: string; pgliteDir?: string },
  masterKey: Buffer,
  opts: TestBedOptions,
): Promise<{ child: ChildProcess; port: number; statsPort: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", SERVER], {
    cwd: REPO,
    stdio: ["ignore", "pipe", opts.serviceLog ? "pipe" : "inherit"],
    env: {
      ...process.env,
      DATABASE_URL: db.url ?? "",
      REOCLO_BENCH_PGLITE_DIR: db.pgliteDir ?? "",
      REOCLO_MASTER_KEY: masterKey.toString("hex"),
      REOCLO_OUTPUT_CAP_BYTES: String(opts.outputCapBytes),
      REOCLO_SYNC_WAIT_SECONDS: String(opts.syncWaitSeconds ?? 20),
      ...(opts.reattachBoundSeconds === undefined
        ? {}
        : { REOCLO_REATTACH_BOUND_SECONDS: String(opts.reattachBoundSeconds) }),
      ...(opts.serviceLog ? { REOCLO_BENCH_LOG_INFO: "1" } : {}),
    },
  });
  const serviceLog = opts.serviceLog;
  if (serviceLog && child.stderr) {
    createInterface({ input: child.stderr }).on("line", (line) => {
      if (!serviceLog(line)) process.stderr.write(line + "\n");
    });
  }
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`bench exec server exited with ${code}`)));
      child.once("error", reject);
    });
    const { port, statsPort } = JSON.parse(line) as { port: number; statsPort: number };
    return { child, port, statsPort };
  } catch (err) {
    await stopService(child);
    throw err;
  }
}

async function stopService(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

// ---- the OpenSSH reference -------------------------------------------------------------------

/** Arguments of a cold OpenSSH client process: new TCP connection, key exchange, authentication, session. */
export function opensshArgs(host: TestHost, keyFile: string, command: string): string[] {
  return [
    "-i",
    keyFile,
    "-p",
    String(host.port),
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "LogLevel=ERROR",
    `${host.username}@127.0.0.1`,
    command,
  ];
}

/** Runs `command` with a fresh `ssh` process; resolves with its stdout, rejects unless it exits 0. */
export function openssh(host: TestHost, keyFile: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("ssh", opensshArgs(host, keyFile, command), { encoding: "utf8" }, (err, stdout, stderr) =>
      err ? reject(new Error(`ssh ${command}: ${err.message} ${stderr}`)) : resolve(stdout),
    );
  });
}

// ---- the raw ssh2 reference --------------------------------------------------------------------

/**
 * Runs `command` on an open ssh2 connection, reading its stdout in Node; `input`, when given, is
 * written to its stdin, which is then closed. Resolves with the exit code and stdout byte count.
 */
export function rawExec(
  client: Client,
  command: string,
  opts: { input?: string; onData?: (chunk: Buffer) => void } = {},
): Promise<{ code: number | null; bytes: number }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let bytes = 0;
      let code: number | null = null;
      ch.on("data", (b: Buffer) => {
        bytes += b.length;
        opts.onData?.(b);
      });
      ch.stderr.resume();
      ch.once("exit", (c: number | null) => (code = c));
      ch.once("close", () => resolve({ code, bytes }));
      if (opts.input !== undefined) ch.end(opts.input);
    });
  });
}
