// What both test hosts share: their interface, where sshd is, which implementation runs, and
// the hosts still alive when the process exits.
import { accessSync, constants } from "node:fs";
import path from "node:path";

export type SshImplementation = "openssh" | "ssh2-fallback";

export interface TestHost {
  readonly kind: SshImplementation;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly privateKey: string;
  /** Path of the host's public key file, for cross-checking with `ssh-keygen -lf`. */
  readonly hostKeyFile: string;
  hostKeyFingerprint: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  replaceHostKey(): Promise<string>;
  /**
   * Ends every open client connection at once, as a dropped network would, leaving the commands they
   * started running; the host keeps accepting connections. Returns how many processes (OpenSSH: sshd's
   * session processes) or connections (the ssh2 fallback) it ended.
   */
  killSessions(): number;
  close(): Promise<void>;
}

export interface StartTestHostOptions {
  /** Login account when running as root (default `reoclotest`); otherwise the current user is always used. */
  username?: string;
  /** Force an implementation instead of detecting one (the env `REOCLO_TEST_SSH=ssh2` forces the fallback). */
  implementation?: SshImplementation;
  /**
   * Extra sshd_config lines (OpenSSH only), e.g. `MaxSessions 1` or `HostKeyAlgorithms ssh-rsa`.
   * They come before the fixture's own lines, and sshd keeps the first value of a keyword, so they win.
   */
  sshdConfig?: readonly string[];
  /** The host key's type (OpenSSH only; default ed25519). */
  hostKeyType?: HostKeyType;
}

export type HostKeyType = "ed25519" | "rsa";

export const LOOPBACK = "127.0.0.1";
export const isRoot = process.getuid?.() === 0;

export function findExecutable(name: string): string | undefined {
  const dirs = ["/usr/sbin", "/usr/bin", ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const candidate = path.resolve(dir, name); // sshd refuses to re-exec unless started by absolute path
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export const findSshd = (): string | undefined => findExecutable("sshd");

export function sshImplementation(): SshImplementation {
  return process.env.REOCLO_TEST_SSH === "ssh2" || findSshd() === undefined ? "ssh2-fallback" : "openssh";
}

const announced = new Set<SshImplementation>();
export function announce(kind: SshImplementation, detail: string): void {
  if (announced.has(kind)) return;
  announced.add(kind);
  console.info(`[test ssh] ${detail}`);
}

// Hosts still alive when the process exits are killed synchronously so no sshd outlives the test run.
export const liveHosts = new Set<{ killNow(): void }>();
process.once("exit", () => liveHosts.forEach((h) => h.killNow()));
