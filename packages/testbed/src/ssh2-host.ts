// The ssh2-based stand-in host, in this process, for machines without OpenSSH sshd: public key
// auth for one client key, and exec sessions run by /bin/sh with env and signals passed on.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import ssh2 from "ssh2";
import type { AuthContext, Connection, ParsedKey, ServerChannel } from "ssh2";
import { fingerprintOf, parsePublicKey } from "./host-keys";
import { generateKeyPair } from "./keys";
import { announce, findSshd, liveHosts, LOOPBACK, type TestHost } from "./ssh-host";

const { Server: SshServer } = ssh2;

export class Ssh2Host implements TestHost {
  readonly kind = "ssh2-fallback";
  readonly host = LOOPBACK;
  hostKeyFingerprint = "";
  private listener: net.Server | undefined;
  private server: InstanceType<typeof SshServer> | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly children = new Set<ChildProcess>();
  private currentPort = 0;

  constructor(
    readonly username: string,
    readonly privateKey: string,
    private readonly clientKey: ParsedKey,
    private readonly dir: string,
  ) {
    liveHosts.add(this);
  }

  get port(): number {
    return this.currentPort;
  }

  get hostKeyFile(): string {
    return path.join(this.dir, "ssh_host_ed25519_key.pub");
  }

  async boot(): Promise<void> {
    await this.generateHostKey();
    await this.start();
    const why = findSshd() === undefined ? "sshd not found" : "fallback requested";
    announce("ssh2-fallback", `${why}: using the ssh2-based fallback host`);
  }

  async start(): Promise<void> {
    if (this.listener) return;
    const listener = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      this.server?.injectSocket(socket);
    });
    await new Promise<void>((resolve, reject) =>
      listener.once("error", reject).listen(this.currentPort, LOOPBACK, resolve),
    );
    const address = listener.address();
    if (address !== null && typeof address !== "string") this.currentPort = address.port;
    this.listener = listener;
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    this.listener = undefined;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    this.sockets.forEach((s) => s.destroy());
    this.children.forEach((c) => c.kill("SIGKILL"));
    await closed;
  }

  /**
   * Destroys every connection the host accepted, as a dropped network would; the commands they
   * started keep running (stop() and close() still kill them). Returns how many it destroyed.
   */
  killSessions(): number {
    const sockets = [...this.sockets];
    sockets.forEach((s) => s.destroy());
    return sockets.length;
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

  killNow(): void {
    this.children.forEach((c) => c.kill("SIGKILL"));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async generateHostKey(): Promise<void> {
    const pair = generateKeyPair("reoclo-test-host");
    await writeFile(this.hostKeyFile, pair.public + "\n");
    this.hostKeyFingerprint = fingerprintOf(parsePublicKey(pair.public).getPublicSSH());
    this.server = new SshServer({ hostKeys: [pair.private] }, (conn) => this.serve(conn));
  }

  private serve(conn: Connection): void {
    conn.on("error", () => undefined); // clients hanging up mid-handshake are normal for a test host
    conn.on("authentication", (ctx: AuthContext) => {
      const key = this.clientKey;
      if (ctx.method === "publickey" && ctx.username === this.username && ctx.key.algo === key.type) {
        if (ctx.key.data.equals(key.getPublicSSH())) {
          if (!ctx.signature) return ctx.accept(); // the client only asks whether this key would do
          if (ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
        }
      }
      ctx.reject(["publickey"]);
    });
    conn.on("session", (acceptSession) => {
      const session = acceptSession();
      const env: NodeJS.ProcessEnv = { ...process.env };
      let running: ChildProcess | undefined;
      session.on("env", (accept, _reject, info) => {
        env[info.key] = info.val;
        accept?.();
      });
      session.on("signal", (accept, _reject, info) => {
        accept?.();
        running?.kill(`SIG${info.name.replace(/^SIG/, "")}` as NodeJS.Signals);
      });
      session.on("exec", (accept, _reject, info) =>
        this.exec(accept(), info.command, env, (c) => (running = c)),
      );
    });
  }

  private exec(
    stream: ServerChannel,
    command: string,
    env: NodeJS.ProcessEnv,
    started: (c: ChildProcess) => void,
  ): void {
    const child = spawn("/bin/sh", ["-c", command], { env, stdio: "pipe", cwd: os.homedir() });
    this.children.add(child);
    started(child);
    child.stdin.on("error", () => undefined); // the command may exit without reading its input
    stream.pipe(child.stdin);
    child.stdout.pipe(stream, { end: false });
    child.stderr.pipe(stream.stderr, { end: false });
    child.once("error", (err) => stream.stderr.write(`${err.message}\n`));
    child.once("close", (code, sig) => {
      this.children.delete(child);
      if (sig !== null) stream.exit(sig.replace(/^SIG/, ""), false, "");
      else stream.exit(code ?? 255);
      stream.end();
    });
  }
}
