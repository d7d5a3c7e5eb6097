// A real OpenSSH sshd on loopback, started as its own process with a config of the test's own;
// as root, it logs in a test account it creates.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { descendantsOf, executableOf, killTree, signal } from "./process-tree";
import {
  announce,
  findExecutable,
  isRoot,
  liveHosts,
  LOOPBACK,
  type HostKeyType,
  type TestHost,
} from "./ssh-host";

const execFileAsync = promisify(execFile);
const READY_DEADLINE_MS = 15_000;
/**
 * What sshd's per-connection processes run: before OpenSSH 9.8 a re-executed sshd ("sshd: user [priv]",
 * "sshd: user@notty"); from 9.8 sshd-session, and from 10.0 sshd-auth for the authentication phase.
 */
const SESSION_EXECUTABLES = new Set(["sshd", "sshd-session", "sshd-auth"]);

/** Resolves when something on the port answers with an SSH banner; rejects on error, close or timeout. */
function readBanner(port: number, timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port });
    let received = "";
    const finish = (err: Error | undefined, banner?: string): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve(banner ?? "");
    };
    socket.setTimeout(timeoutMs, () => finish(new Error("no SSH banner in time")));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      const line = received.split("\r\n").find((l) => l.startsWith("SSH-"));
      if (line !== undefined) finish(undefined, line);
    });
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error("closed before the SSH banner")));
  });
}

async function reservePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, LOOPBACK, resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("could not reserve a loopback port");
  return address.port;
}

async function run(cmd: string, args: string[]): Promise<string> {
  return (await execFileAsync(cmd, args, { encoding: "utf8" })).stdout;
}

function passwordField(username: string): string | undefined {
  const line = readFileSync("/etc/shadow", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${username}:`));
  return line?.split(":")[1];
}

/** Creates the login account when missing; concurrent workers race on /etc/passwd locks, so re-check and retry. */
export async function ensureAccount(username: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const field = passwordField(username);
    if (field !== undefined && !field.startsWith("!")) return;
    try {
      if (field === undefined) await run("useradd", ["-m", "-s", "/bin/bash", username]);
      // useradd leaves the account locked ("!"), which sshd refuses even for key logins; "*" means "no password".
      await run("usermod", ["-p", "*", username]);
    } catch (err) {
      if (attempt >= 40) throw new Error(`could not create the test account ${username}`, { cause: err });
      await delay(25 + Math.random() * 50);
    }
  }
}

let sshdVersion: Promise<[number, number]> | undefined;
function opensshVersion(sshd: string): Promise<[number, number]> {
  sshdVersion ??= execFileAsync(sshd, ["-V"], { encoding: "utf8" })
    .then(
      (r) => r.stderr + r.stdout,
      (err: { stderr?: string }) => err.stderr ?? "",
    )
    .then((text) => {
      const m = /OpenSSH_(\d+)\.(\d+)/.exec(text);
      return [Number(m?.[1] ?? 0), Number(m?.[2] ?? 0)];
    });
  return sshdVersion;
}

export class OpenSshHost implements TestHost {
  readonly kind = "openssh";
  readonly host = LOOPBACK;
  hostKeyFingerprint = "";
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stderrTail = "";
  private currentPort = 0;

  constructor(
    readonly username: string,
    readonly privateKey: string,
    private readonly dir: string,
    private readonly sshd: string,
    private readonly extraConfig: readonly string[] = [],
    private readonly hostKeyType: HostKeyType = "ed25519",
  ) {
    liveHosts.add(this);
  }

  get port(): number {
    return this.currentPort;
  }

  get hostKeyFile(): string {
    return `${this.hostKeyPath}.pub`;
  }

  private get hostKeyPath(): string {
    return path.join(this.dir, `ssh_host_${this.hostKeyType}_key`);
  }

  /** First start: pick a free port, and pick again if another process grabbed it between reserve and bind. */
  async boot(): Promise<void> {
    await this.generateHostKey();
    for (let attempt = 1; ; attempt++) {
      this.currentPort = await reservePort();
      try {
        return await this.start();
      } catch (err) {
        if (attempt >= 5 || !this.stderrTail.includes("Address already in use")) throw err;
      }
    }
  }

  async start(): Promise<void> {
    if (this.child) return;
    if (isRoot) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // privilege separation chroot
    const [major, minor] = await opensshVersion(this.sshd);
    const config = [
      ...this.extraConfig,
      `Port ${this.port}`,
      `ListenAddress ${LOOPBACK}`,
      `HostKey ${this.hostKeyPath}`,
      `PidFile ${path.join(this.dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${path.join(this.dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PubkeyAuthentication yes",
      `AllowUsers ${this.username}`,
      "MaxStartups 100:30:200",
      "LogLevel VERBOSE",
      // OpenSSH 9.8+ throttles sources that fail auth; tests fail auth on purpose from 127.0.0.1.
      ...(major > 9 || (major === 9 && minor >= 8) ? ["PerSourcePenalties no"] : []),
    ];
    const configPath = path.join(this.dir, "sshd_config");
    await writeFile(configPath, config.join("\n") + "\n");
    const argv = [this.sshd, "-D", "-e", "-f", configPath];
    // setpriv execs sshd with a parent-death signal, so a test worker killed before close() leaves no sshd behind.
    const setpriv = findExecutable("setpriv");
    if (setpriv !== undefined) argv.unshift(setpriv, "--pdeathsig", "TERM", "--");
    const child = spawn(argv[0] ?? this.sshd, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    this.stderrTail = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-8_000);
    });
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", (err) => {
        this.stderrTail += `\nspawn failed: ${err.message}`; // "exit" may never follow a spawn error
        resolve();
      });
    });
    const deadline = Date.now() + READY_DEADLINE_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) break;
      try {
        const banner = await readBanner(this.port, 1_000);
        announce("openssh", `using OpenSSH sshd (${banner.replace(/^SSH-2\.0-/, "").split(" ")[0]})`);
        return;
      } catch {
        if (Date.now() > deadline) break;
        await delay(20); // retry interval of the readiness poll
      }
    }
    await this.stop();
    throw new Error(
      `sshd did not start answering on ${LOOPBACK}:${this.port}; its output:\n${this.stderrTail}`,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await killTree(child, this.exited);
  }

  async replaceHostKey(): Promise<string> {
    await this.stop();
    await this.generateHostKey();
    await this.start();
    return this.hostKeyFingerprint;
  }

  async close(): Promise<void> {
    await this.stop();
    liveHosts.delete(this);
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * Kills sshd's per-connection processes with SIGKILL (the listener's descendants whose executable
   * is sshd, sshd-session or sshd-auth), as when the network drops and a session dies: every client
   * connection ends, while the commands the sessions started (shells and their children) go on
   * running, orphaned. The listener stays up and accepts new connections. Returns how many
   * processes it killed.
   */
  killSessions(): number {
    const child = this.child;
    const pid = child?.pid;
    if (child === undefined || pid === undefined || child.exitCode !== null || child.signalCode !== null)
      return 0;
    signal(pid, "SIGSTOP"); // freeze accept() so no session is forked while we collect them
    try {
      // Each session is stopped as it is found, so none forks a child after the next look.
      const sessions = new Set<number>();
      for (;;) {
        const found = descendantsOf(pid).filter(
          (p) => !sessions.has(p) && SESSION_EXECUTABLES.has(executableOf(p) ?? ""),
        );
        if (found.length === 0) break;
        for (const p of found) {
          sessions.add(p);
          signal(p, "SIGSTOP");
        }
      }
      sessions.forEach((p) => signal(p, "SIGKILL"));
      return sessions.size;
    } finally {
      signal(pid, "SIGCONT");
    }
  }

  killNow(): void {
    if (this.child?.pid !== undefined)
      [...descendantsOf(this.child.pid), this.child.pid].forEach((p) => signal(p, "SIGKILL"));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async generateHostKey(): Promise<void> {
    await rm(this.hostKeyPath, { force: true }); // ssh-keygen would otherwise ask whether to overwrite
    await rm(this.hostKeyFile, { force: true });
    await run("ssh-keygen", [
      "-q",
      "-t",
      this.hostKeyType,
      "-N",
      "",
      "-C",
      "reoclo-test-host",
      "-f",
      this.hostKeyPath,
    ]);
    // `ssh-keygen -lf` prints "256 SHA256:… comment (ED25519)" (or "3072 … (RSA)"): the pinned form is its second field.
    this.hostKeyFingerprint = (await run("ssh-keygen", ["-lf", this.hostKeyFile])).split(" ")[1] ?? "";
  }
}
