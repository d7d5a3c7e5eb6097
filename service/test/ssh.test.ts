// What a user of the SSH layer observes against real test hosts: pinning, trust on first use, auth and reachability.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import net from "node:net";
import ssh2 from "ssh2";
import type { ClientChannel } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  closeSsh,
  connectSsh,
  fetchHostKeyFingerprint,
  SshError,
  testSshConnection,
  type SshErrorCode,
  type SshTarget,
} from "../src/ssh/connect.js";
import { fingerprintOf, fingerprintsEqual, isFingerprint } from "../src/ssh/fingerprint.js";
import { sshImplementation, startTestHost, type SshImplementation, type TestHost } from "./fixtures/sshd.js";
import { generateKeyPair } from "./fixtures/keys";

function targetFor(host: TestHost, overrides: Partial<SshTarget> = {}): SshTarget {
  return {
    host: host.host,
    port: host.port,
    username: host.username,
    privateKey: host.privateKey,
    hostKeyFingerprint: host.hostKeyFingerprint,
    ...overrides,
  };
}

/** The fingerprint OpenSSH itself reports for a public key file. */
function sshKeygenFingerprint(publicKeyFile: string): string {
  return execFileSync("ssh-keygen", ["-lf", publicKeyFile], { encoding: "utf8" }).split(" ")[1] ?? "";
}

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Connects through the pinned choke point and runs one command, as the product will. */
async function runCommand(target: SshTarget, command: string): Promise<CommandResult> {
  const client = await connectSsh(target, { readyTimeoutMs: 10_000 });
  try {
    return await new Promise<CommandResult>((resolve, reject) => {
      client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) return reject(err);
        const result: CommandResult = { code: null, stdout: "", stderr: "" };
        stream.on("data", (d: Buffer) => (result.stdout += d.toString()));
        stream.stderr.on("data", (d: Buffer) => (result.stderr += d.toString()));
        stream.on("exit", (code: number | null) => (result.code = code));
        stream.once("close", () => resolve(result));
      });
    });
  } finally {
    await closeSsh(client);
  }
}

async function sshErrorOf(promise: Promise<unknown>): Promise<SshError> {
  const err: unknown = await promise.then(
    () => new Error("expected the SSH operation to fail"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SshError);
  return err as SshError;
}

async function expectCode(promise: Promise<unknown>, code: SshErrorCode): Promise<SshError> {
  const err = await sshErrorOf(promise);
  expect({ code: err.code, message: err.message }).toMatchObject({ code });
  return err;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("fingerprints", () => {
  it("are printed exactly as ssh-keygen prints them, and only exact matches are equal", () => {
    const pub = generateKeyPair().public;
    const parsed = ssh2.utils.parseKey(pub);
    if (parsed instanceof Error) throw parsed;
    const printed = execFileSync("ssh-keygen", ["-lf", "-"], { input: pub, encoding: "utf8" }).split(" ")[1];
    const ours = fingerprintOf(parsed.getPublicSSH());
    expect(ours).toBe(printed);
    expect(isFingerprint(ours)).toBe(true);
    expect(fingerprintsEqual(ours, ours)).toBe(true);
    expect(fingerprintsEqual(ours, ours.slice("SHA256:".length))).toBe(false);
    expect(fingerprintsEqual(ours, `${ours}=`)).toBe(false);
  });
});

const detected = sshImplementation();
const implementations: { label: string; implementation: SshImplementation }[] = [
  { label: `detected implementation (${detected})`, implementation: detected },
  ...(detected === "ssh2-fallback"
    ? []
    : [{ label: "ssh2-based fallback host", implementation: "ssh2-fallback" as const }]),
];

describe.each(implementations)("SSH to a pinned host: $label", ({ implementation }) => {
  let host: TestHost;
  beforeAll(async () => {
    host = await startTestHost({ implementation });
  });
  afterAll(async () => {
    await host?.close();
  });

  it("a connection test reports the remote user and the host key fingerprint ssh-keygen reports", async () => {
    const result = await testSshConnection(targetFor(host));
    expect(result.remoteUser).toBe(host.username);
    expect(result.hostKeyFingerprint).toBe(sshKeygenFingerprint(host.hostKeyFile));
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    if (host.kind === "openssh" && process.getuid?.() === 0) expect(result.remoteUser).not.toBe("root");
  });

  it("trust on first use reads the same fingerprint the host is pinned by", async () => {
    expect(await fetchHostKeyFingerprint(host.host, host.port)).toBe(host.hostKeyFingerprint);
  });

  it("commands run with their output and exit code", async () => {
    const result = await runCommand(targetFor(host), "echo out; echo err >&2; exit 3");
    expect(result).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
  });

  it("refuses to authenticate with a key the host does not know", async () => {
    const stranger = generateKeyPair().private;
    const err = await expectCode(testSshConnection(targetFor(host, { privateKey: stranger })), "auth_failed");
    expect(err.message).toContain(host.username);
  });

  it("reports a port nothing listens on as unreachable", async () => {
    const port = await closedPort();
    await expectCode(testSshConnection(targetFor(host, { port })), "host_unreachable");
    await expectCode(fetchHostKeyFingerprint("127.0.0.1", port), "host_unreachable");
  });

  it("keeps its host key across a stop and start, and is unreachable while stopped", async () => {
    const before = host.hostKeyFingerprint;
    await host.stop();
    await expectCode(testSshConnection(targetFor(host)), "host_unreachable");
    await host.start();
    expect(host.hostKeyFingerprint).toBe(before);
    const result = await testSshConnection(targetFor(host, { hostKeyFingerprint: before }));
    expect(result.hostKeyFingerprint).toBe(sshKeygenFingerprint(host.hostKeyFile));
  });

  it("after the host key changes, the old pin refuses to connect and runs nothing", async () => {
    const oldPin = host.hostKeyFingerprint;
    const newPin = await host.replaceHostKey();
    expect(newPin).not.toBe(oldPin);
    expect(newPin).toBe(sshKeygenFingerprint(host.hostKeyFile));

    const marker = `/tmp/reoclo-marker-${randomBytes(8).toString("hex")}`;
    try {
      const err = await expectCode(
        runCommand(targetFor(host, { hostKeyFingerprint: oldPin }), `touch ${marker}`),
        "host_key_mismatch",
      );
      expect(err.message).toContain(oldPin);
      expect(err.message).toContain(newPin);
      expect(existsSync(marker)).toBe(false);

      // The same command with the re-pinned fingerprint does create the marker, so its absence above is meaningful.
      expect(
        (await runCommand(targetFor(host, { hostKeyFingerprint: newPin }), `touch ${marker}`)).code,
      ).toBe(0);
      expect(existsSync(marker)).toBe(true);
    } finally {
      rmSync(marker, { force: true });
    }
  });

  it("rejects a malformed pinned fingerprint without connecting", async () => {
    await expectCode(testSshConnection(targetFor(host, { hostKeyFingerprint: "SHA256:short" })), "ssh_error");
  });
});
