// The one choke point that opens SSH connections: the pinned host key is checked before any authentication.
import ssh2 from "ssh2";
import type { Client, ClientChannel } from "ssh2";
import { fingerprintOf, fingerprintsEqual, isFingerprint } from "./fingerprint.js";

// ssh2 is CommonJS without named ESM exports under plain Node, so take the class from the default export.
const { Client: SshClient } = ssh2;

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  passphrase?: string | undefined;
  hostKeyFingerprint: string;
}

export type SshErrorCode = "host_key_mismatch" | "host_unreachable" | "auth_failed" | "ssh_error";

export class SshError extends Error {
  readonly code: SshErrorCode;
  constructor(code: SshErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SshError";
    this.code = code;
  }
}

export interface ConnectOptions {
  readyTimeoutMs?: number;
}

export interface TestConnectionOptions extends ConnectOptions {
  commandTimeoutMs?: number;
}

export interface SshTestResult {
  hostKeyFingerprint: string;
  remoteUser: string;
  latencyMs: number;
}

const READY_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 15_000;
const CLOSE_GRACE_MS = 2_000;
const UNREACHABLE_CODES = new Set(
  "ECONNREFUSED ETIMEDOUT EHOSTUNREACH ENETUNREACH ENOTFOUND EAI_AGAIN".split(" "),
);

/** ssh2 decorates its errors with `level` and socket errors carry a `code`; read them without `any`. */
function errorField(err: unknown, field: "level" | "code"): string | undefined {
  if (typeof err !== "object" || err === null || !(field in err)) return undefined;
  const value: unknown = (err as Record<string, unknown>)[field];
  return typeof value === "string" ? value : undefined;
}

function describe(err: unknown): string {
  const code = errorField(err, "code");
  const message = err instanceof Error ? err.message : String(err);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Maps an ssh2 error (emitted before "ready") to the error code callers act on. */
function classify(err: unknown, target: Pick<SshTarget, "host" | "port" | "username">): SshError {
  const where = `${target.host}:${target.port}`;
  const level = errorField(err, "level");
  const code = errorField(err, "code");
  if (level === "client-timeout" || (code !== undefined && UNREACHABLE_CODES.has(code))) {
    const msg = `Could not reach the SSH server at ${where} (${describe(err)}); check that the host is up, the address and port are right and no firewall blocks it.`;
    return new SshError("host_unreachable", msg, { cause: err });
  }
  if (level === "client-authentication") {
    const msg = `The SSH server at ${where} rejected the private key for user "${target.username}"; check that the matching public key is in that user's authorized_keys.`;
    return new SshError("auth_failed", msg, { cause: err });
  }
  const msg = `The SSH connection to ${where} failed (${describe(err)}); retry, and check the server's logs if it persists.`;
  return new SshError("ssh_error", msg, { cause: err });
}

function mismatch(target: SshTarget, presented: string): SshError {
  const msg = `The SSH server at ${target.host}:${target.port} presented host key ${presented} but ${target.hostKeyFingerprint} is pinned, so the connection was dropped before authenticating and nothing was run; if the host was legitimately reinstalled, re-pin it with the new fingerprint.`;
  return new SshError("host_key_mismatch", msg);
}

/** Opens an authenticated connection after verifying the pinned host key; the caller owns the returned client. */
export function connectSsh(target: SshTarget, opts: ConnectOptions = {}): Promise<Client> {
  if (!isFingerprint(target.hostKeyFingerprint)) {
    const msg = `The pinned host key fingerprint for ${target.host}:${target.port} is not of the form SHA256:<43 base64 characters>; fix the host's configuration before connecting.`;
    return Promise.reject(new SshError("ssh_error", msg));
  }
  return new Promise<Client>((resolve, reject) => {
    const client = new SshClient();
    let rejectedKey: string | undefined;
    let settled = false;
    const fail = (err: SshError): void => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(err);
    };
    client.on("error", (err: Error) => {
      if (settled) return; // after "ready" the owner watches "close"; an unobserved late error must not crash the service
      fail(rejectedKey !== undefined ? mismatch(target, rejectedKey) : classify(err, target));
    });
    client.once("close", () => fail(classify(new Error("closed before the session was ready"), target)));
    client.once("connect", () => client.setNoDelay(true)); // command round-trips are tiny; Nagle would only add delay
    client.once("ready", () => {
      if (settled) return;
      settled = true;
      resolve(client);
    });
    try {
      client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        passphrase: target.passphrase,
        readyTimeout: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
        // Runs during key exchange, before any credential is sent: returning false aborts the handshake.
        hostVerifier: (key: Buffer): boolean => {
          const presented = fingerprintOf(key);
          if (fingerprintsEqual(presented, target.hostKeyFingerprint)) return true;
          rejectedKey = presented;
          return false;
        },
      });
    } catch (err) {
      // ssh2 throws synchronously only when the private key (or its passphrase) cannot be used.
      const msg = `The private key for ${target.host}:${target.port} could not be used (${describe(err)}); check the key and its passphrase.`;
      fail(new SshError("auth_failed", msg, { cause: err }));
    }
  });
}

/** Trust on first use: reads the host key fingerprint and hangs up before authenticating; resolves once the socket is closed. */
export function fetchHostKeyFingerprint(
  host: string,
  port: number,
  opts: { timeoutMs?: number } = {},
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const client = new SshClient();
    let fingerprint: string | undefined;
    let failure: unknown;
    const probe = { host, port, username: "(none)" };
    client.on("error", (err: Error) => {
      failure ??= err;
      client.destroy();
    });
    client.once("close", () => {
      if (fingerprint !== undefined) resolve(fingerprint);
      else reject(classify(failure ?? new Error("closed before the server presented a host key"), probe));
    });
    client.once("connect", () => client.setNoDelay(true));
    try {
      client.connect({
        host,
        port,
        username: "reoclo-host-key-probe", // never sent: the handshake is aborted before authentication
        readyTimeout: opts.timeoutMs ?? READY_TIMEOUT_MS,
        hostVerifier: (key: Buffer): boolean => {
          fingerprint = fingerprintOf(key);
          return false;
        },
      });
    } catch (err) {
      client.destroy();
      reject(classify(err, probe));
    }
  });
}

/** Ends the connection politely and resolves when it is closed (or after a short grace period, destroying it). */
export function closeSsh(client: Client): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      client.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
    client.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    client.end();
  });
}

/** Runs one command and resolves its trimmed stdout; a non-zero exit or a timeout is an ssh_error. */
function execForStdout(
  client: Client,
  target: SshTarget,
  command: string,
  timeoutMs: number,
): Promise<string> {
  const where = `${target.host}:${target.port}`;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.destroy(); // the whole test connection is disposable; this also unblocks the exec callback
      const msg = `\`${command}\` on ${where} did not finish within ${timeoutMs} ms; check that the host is not overloaded.`;
      reject(new SshError("ssh_error", msg));
    }, timeoutMs);
    client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
      if (err) {
        clearTimeout(timer);
        const msg = `Could not start \`${command}\` on ${where} (${err.message}); check the server's logs.`;
        return reject(new SshError("ssh_error", msg, { cause: err }));
      }
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let exitCode: number | null = null;
      stream.on("data", (chunk: Buffer) => out.push(chunk));
      stream.stderr.on("data", (chunk: Buffer) => errOut.push(chunk));
      stream.on("exit", (code: number | null) => (exitCode = code));
      stream.once("close", () => {
        clearTimeout(timer);
        if (exitCode === 0) return resolve(Buffer.concat(out).toString("utf8").trim());
        const stderr = Buffer.concat(errOut).toString("utf8").trim();
        const msg = `\`${command}\` on ${where} exited with ${exitCode ?? "a signal"}${stderr ? ` (${stderr})` : ""}; check the account's shell.`;
        reject(new SshError("ssh_error", msg));
      });
    });
  });
}

/** Connects with pinning, runs `id -un` and disconnects; latencyMs covers connect, handshake, auth and the command. */
export async function testSshConnection(
  target: SshTarget,
  opts: TestConnectionOptions = {},
): Promise<SshTestResult> {
  const started = performance.now();
  const client = await connectSsh(target, opts);
  try {
    const limitMs = opts.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
    const remoteUser = await execForStdout(client, target, "id -un", limitMs);
    const latencyMs = Math.round(performance.now() - started);
    // connectSsh only resolves when the presented key equals the pin, so the pin is the presented fingerprint.
    return { hostKeyFingerprint: target.hostKeyFingerprint, remoteUser, latencyMs };
  } finally {
    await closeSsh(client);
  }
}
