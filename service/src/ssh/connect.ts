// The one choke point that opens SSH connections: modern algorithms only, and the pinned host key checked before any authentication.
import ssh2 from "ssh2";
import type {
  Algorithms,
  CipherAlgorithm,
  Client,
  ClientChannel,
  CompressionAlgorithm,
  KexAlgorithm,
  MacAlgorithm,
  ServerHostKeyAlgorithm,
} from "ssh2";
import { fingerprintOf, fingerprintsEqual, isFingerprint } from "./fingerprint.js";

// ssh2 is CommonJS without named ESM exports under plain Node, so take the class from the default export.
const { Client: SshClient } = ssh2;

const KEEPALIVE_INTERVAL_MS = 15_000;
const KEEPALIVE_COUNT_MAX = 3;

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  passphrase?: string | undefined;
  hostKeyFingerprint: string;
}

export type SshErrorCode =
  "host_key_mismatch" | "host_unreachable" | "auth_failed" | "ssh_negotiation_failed" | "ssh_error";

export class SshError extends Error {
  readonly code: SshErrorCode;
  /**
   * The host turned the connection away at once (TCP refusal, or a hang-up before the SSH banner
   * as sshd does past MaxStartups): quick, nothing was sent, so the pool may try again.
   */
  readonly refused: boolean;
  constructor(code: SshErrorCode, message: string, options?: { cause?: unknown; refused?: boolean }) {
    super(message, options);
    this.name = "SshError";
    this.code = code;
    this.refused = options?.refused ?? false;
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

export interface SshAlgorithms {
  readonly kex: readonly KexAlgorithm[];
  readonly serverHostKey: readonly ServerHostKeyAlgorithm[];
  readonly cipher: readonly CipherAlgorithm[];
  readonly hmac: readonly MacAlgorithm[];
  readonly compress: readonly CompressionAlgorithm[];
}

/**
 * Everything this service negotiates, best first, offered by every connection it opens (so a host
 * that offers only weaker ones can be neither pinned nor used): nothing that rests on SHA-1 (the
 * `ssh-rsa` signature, `hmac-sha1*`, the `*-sha1` key exchanges; RFC 8332, RFC 9142), no CBC, no
 * DSA (issue 13, item 12). The order keeps what ssh2 chose by default before: `ssh-ed25519` first,
 * so the key a host presents (and so its pinned fingerprint) is unchanged, and AES-GCM first, the
 * fastest with AES-NI. MACs only matter with the CTR ciphers; the AEAD ones carry their own.
 */
export const SSH_ALGORITHMS: SshAlgorithms = {
  kex: [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
  ],
  serverHostKey: [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
  ],
  cipher: [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
  ],
  hmac: ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"],
  compress: ["none", "zlib@openssh.com", "zlib"],
};

/** Fresh copies for ssh2, which keeps (and may edit) the arrays it is given. */
function algorithms(): Algorithms {
  const a = SSH_ALGORITHMS;
  return {
    kex: [...a.kex],
    serverHostKey: [...a.serverHostKey],
    cipher: [...a.cipher],
    hmac: [...a.hmac],
    compress: [...a.compress],
  };
}

const READY_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 15_000;
const CLOSE_GRACE_MS = 2_000;
/** The host could not be reached at all: no point in asking again at once. */
const NO_ANSWER_CODES = new Set(["ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]);
const NAME_CODES = new Set(["ENOTFOUND", "EAI_AGAIN"]);
/** The host (or something at its address) said no at once. */
const REFUSED_CODES = new Set(["ECONNREFUSED", "ECONNRESET"]);

/** What the server offered for each negotiated item, in the words of its sshd_config keyword. */
const NEGOTIATED: Record<string, { noun: string; accepted: readonly string[]; fix: string }> = {
  "KEX method": {
    noun: "key exchange algorithms",
    accepted: SSH_ALGORITHMS.kex,
    fix: "enable a modern key exchange in its sshd_config (KexAlgorithms) or upgrade its OpenSSH",
  },
  "Host key format": {
    noun: "host key algorithms",
    accepted: SSH_ALGORITHMS.serverHostKey,
    fix: "configure a modern host key on the server (e.g. `ssh-keygen -t ed25519` and a HostKey line for it in sshd_config, or rsa-sha2-512 in HostKeyAlgorithms for its RSA key), then pin its fingerprint",
  },
  cipher: {
    noun: "ciphers",
    accepted: SSH_ALGORITHMS.cipher,
    fix: "enable modern ciphers in its sshd_config (Ciphers) or upgrade its OpenSSH",
  },
  MAC: {
    noun: "MACs",
    accepted: SSH_ALGORITHMS.hmac,
    fix: "enable modern MACs or an AEAD cipher in its sshd_config (MACs, Ciphers) or upgrade its OpenSSH",
  },
  compression: {
    noun: "compression methods",
    accepted: SSH_ALGORITHMS.compress,
    fix: "allow `Compression no` or `delayed` in its sshd_config",
  },
};

/**
 * What a connection attempt showed before it failed, read from ssh2's debug lines
 * (lib/protocol/Protocol.js "Remote ident", lib/protocol/kex.js "Handshake: (remote) …").
 */
class HandshakeTrace {
  /** The server's identification line, once it sent one. */
  banner: string | undefined;
  /** The last list the server offered, the one being matched when negotiation fails. */
  offered: { what: string; names: string[] } | undefined;
  private stopped = false;

  /** For ssh2's `debug` option; ignores everything once stopped, as ssh2 logs every packet. */
  readonly debug = (line: string): void => {
    if (this.stopped) return;
    if (line.startsWith("Remote ident: ")) this.banner = line.slice("Remote ident: ".length);
    const m = /^Handshake: \(remote\) (?:[CS]->[CS] )?([^:]+): (.*)$/.exec(line);
    if (m?.[1] === undefined || m[2] === undefined) return;
    // ext-info-s and kex-strict-s-v00@openssh.com are signals in the KEX list (RFC 8308), not algorithms.
    const names = m[2].split(",").filter((n) => n !== "" && !/^(ext-info-|kex-strict-)/.test(n));
    this.offered = { what: m[1], names };
  };

  stop(): void {
    this.stopped = true;
  }
}

interface AttemptContext {
  timeoutMs: number;
  trace: HandshakeTrace;
}

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

const seconds = (ms: number): string => `${+(ms / 1000).toFixed(2)} s`;

function negotiationFailed(err: unknown, where: string, trace: HandshakeTrace): SshError {
  const offered = trace.offered;
  const kind = offered && NEGOTIATED[offered.what];
  if (offered === undefined || kind === undefined || !/no matching/i.test(describe(err))) {
    const msg = `The SSH handshake with ${where} failed (${describe(err)}); check the server's SSH configuration and logs.`;
    return new SshError("ssh_negotiation_failed", msg, { cause: err });
  }
  const names = offered.names.length > 0 ? offered.names.join(", ") : "(none)";
  const msg = `The SSH server at ${where} offers only ${kind.noun} ${names}, which this service does not accept (it accepts ${kind.accepted.join(", ")}); ${kind.fix}.`;
  return new SshError("ssh_negotiation_failed", msg, { cause: err });
}

function timedOut(err: unknown, where: string, ctx: AttemptContext, connected: boolean): SshError {
  const within = seconds(ctx.timeoutMs);
  const msg =
    ctx.trace.banner !== undefined
      ? `The SSH server at ${where} answered but did not finish the handshake and authentication within ${within}; check the server's load and its sshd logs (slow DNS or PAM lookups can cause this).`
      : `The SSH server at ${where} did not answer within ${within}${connected ? " (the TCP connection was accepted, but no SSH banner came)" : ""}; check that the host is up, the address and port are right and no firewall drops the traffic.`;
  return new SshError("host_unreachable", msg, { cause: err });
}

/** Maps an ssh2 error (emitted before "ready") to the error code callers act on. */
function classify(
  err: unknown,
  target: Pick<SshTarget, "host" | "port" | "username">,
  ctx: AttemptContext,
  connected: boolean,
): SshError {
  const where = `${target.host}:${target.port}`;
  const level = errorField(err, "level");
  const code = errorField(err, "code");
  if (level === "client-timeout") return timedOut(err, where, ctx, connected);
  if (code !== undefined && NO_ANSWER_CODES.has(code)) {
    const msg = `The SSH server at ${where} did not answer (${describe(err)}); check that the host is up, the address and port are right and no firewall drops the traffic.`;
    return new SshError("host_unreachable", msg, { cause: err });
  }
  if (code !== undefined && NAME_CODES.has(code)) {
    const msg = `The SSH server's name ${target.host} could not be resolved (${describe(err)}); check the address.`;
    return new SshError("host_unreachable", msg, { cause: err });
  }
  if (code === "ECONNREFUSED") {
    const msg = `The SSH server at ${where} refused the connection (${describe(err)}); check that sshd is running and listens on port ${target.port}.`;
    return new SshError("host_unreachable", msg, { cause: err, refused: true });
  }
  if (level === "handshake") return negotiationFailed(err, where, ctx.trace);
  if (level === "client-authentication") {
    const msg = `The SSH server at ${where} rejected the private key for user "${target.username}"; check that the matching public key is in that user's authorized_keys.`;
    return new SshError("auth_failed", msg, { cause: err });
  }
  // A reset or hang-up before the banner is how sshd turns connections away past MaxStartups.
  const beforeBanner = ctx.trace.banner === undefined;
  const refused = beforeBanner && (code === undefined || REFUSED_CODES.has(code));
  const msg = beforeBanner
    ? `The SSH server at ${where} closed the connection before the SSH handshake (${describe(err)}); it may be restarting or at its MaxStartups limit: retry, and check its logs if it persists.`
    : `The SSH connection to ${where} failed (${describe(err)}); retry, and check the server's logs if it persists.`;
  return new SshError("ssh_error", msg, { cause: err, refused });
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
  const timeoutMs = opts.readyTimeoutMs ?? READY_TIMEOUT_MS;
  return new Promise<Client>((resolve, reject) => {
    const client = new SshClient();
    const ctx: AttemptContext = { timeoutMs, trace: new HandshakeTrace() };
    let connected = false;
    let rejectedKey: string | undefined;
    let settled = false;
    const fail = (err: SshError): void => {
      if (settled) return;
      settled = true;
      ctx.trace.stop();
      client.destroy();
      reject(err);
    };
    client.on("error", (err: Error) => {
      if (settled) return; // after "ready" the owner watches "close"; an unobserved late error must not crash the service
      fail(rejectedKey !== undefined ? mismatch(target, rejectedKey) : classify(err, target, ctx, connected));
    });
    client.once("close", () =>
      fail(classify(new Error("closed before the session was ready"), target, ctx, connected)),
    );
    client.once("connect", () => {
      connected = true;
      client.setNoDelay(true); // command round-trips are tiny; Nagle would only add delay
    });
    client.once("ready", () => {
      ctx.trace.stop();
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
        readyTimeout: timeoutMs,
        // A connection that went silent (a network partition, a host that froze) is noticed in about
        // 45 s rather than at TCP's pace, so its operations start reattaching (issue 19).
        keepaliveInterval: KEEPALIVE_INTERVAL_MS,
        keepaliveCountMax: KEEPALIVE_COUNT_MAX,
        algorithms: algorithms(),
        debug: ctx.trace.debug,
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
    const ctx: AttemptContext = {
      timeoutMs: opts.timeoutMs ?? READY_TIMEOUT_MS,
      trace: new HandshakeTrace(),
    };
    let connected = false;
    let fingerprint: string | undefined;
    let failure: unknown;
    const probe = { host, port, username: "(none)" };
    client.on("error", (err: Error) => {
      failure ??= err;
      client.destroy();
    });
    client.once("close", () => {
      ctx.trace.stop();
      if (fingerprint !== undefined) resolve(fingerprint);
      else {
        const err = failure ?? new Error("closed before the server presented a host key");
        reject(classify(err, probe, ctx, connected));
      }
    });
    client.once("connect", () => {
      connected = true;
      client.setNoDelay(true);
    });
    try {
      client.connect({
        host,
        port,
        username: "reoclo-host-key-probe", // never sent: the handshake is aborted before authentication
        readyTimeout: ctx.timeoutMs,
        // The same offer as connectSsh: a host this service cannot use must not get pinned either.
        algorithms: algorithms(),
        debug: ctx.trace.debug,
        hostVerifier: (key: Buffer): boolean => {
          fingerprint = fingerprintOf(key);
          return false;
        },
      });
    } catch (err) {
      client.destroy();
      reject(classify(err, probe, ctx, connected));
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
