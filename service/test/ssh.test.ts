// What a user of the SSH layer observes against real test hosts: pinning, trust on first use, auth and reachability.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import net from "node:net";
import ssh2 from "ssh2";
import type { ClientChannel } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair } from "@reoclo/testbed/keys";
import {
  sshImplementation,
  startTestHost,
  type StartTestHostOptions,
  type SshImplementation,
  type TestHost,
} from "@reoclo/testbed/sshd";
import {
  closeSsh,
  connectSsh,
  fetchHostKeyFingerprint,
  SSH_ALGORITHMS,
  SshError,
  testSshConnection,
  type SshErrorCode,
  type SshTarget,
} from "../src/ssh/connect.js";
import { fingerprintOf, fingerprintsEqual, isFingerprint } from "../src/ssh/fingerprint.js";
import { freePort } from "@reoclo/testbed/net";

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

/** A loopback "tarpit": accepts TCP connections and never sends a byte, as a host behind a dropping firewall looks once connected. */
async function tarpit(): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const close = async (): Promise<void> => {
    sockets.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { port, count: () => count, close };
}

/** Whether ssh2 with its own default algorithms (what this service offered before issue 13) gets through key exchange. */
function ssh2DefaultsNegotiate(host: TestHost): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const client = new ssh2.Client();
    let negotiated = false;
    client.on("error", () => undefined);
    client.once("close", () => resolve(negotiated));
    client.connect({
      host: host.host,
      port: host.port,
      username: host.username,
      readyTimeout: 10_000,
      hostVerifier: () => {
        negotiated = true; // called only once the algorithms are agreed and the host key arrived
        return false;
      },
    });
  });
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
    const port = await freePort();
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

describe("a host that does not answer", () => {
  it("fails trust on first use and a connection test after one timeout, naming the address", async () => {
    const pit = await tarpit();
    try {
      const where = `127.0.0.1:${pit.port}`;
      const probe = await expectCode(
        fetchHostKeyFingerprint("127.0.0.1", pit.port, { timeoutMs: 300 }),
        "host_unreachable",
      );
      expect(probe.message).toContain(`The SSH server at ${where} did not answer within 0.3 s`);
      const target: SshTarget = {
        host: "127.0.0.1",
        port: pit.port,
        username: "nobody",
        privateKey: generateKeyPair().private,
        hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      };
      const test = await expectCode(testSshConnection(target, { readyTimeoutMs: 300 }), "host_unreachable");
      expect(test.message).toContain(`The SSH server at ${where} did not answer within 0.3 s`);
      expect(pit.count()).toBe(2);
    } finally {
      await pit.close();
    }
  });
});

describe.runIf(detected === "openssh")("SSH algorithms (OpenSSH hosts)", () => {
  it("offers only names ssh2 supports, and nothing resting on SHA-1, CBC or DSA", () => {
    const all = Object.values(SSH_ALGORITHMS).flat() as string[];
    expect(all.filter((name) => /sha1|cbc|dss|^ssh-rsa$|md5|arcfour|3des/.test(name))).toEqual([]);
  });

  it("accepts an RSA host key through rsa-sha2-512, and pins the fingerprint ssh-keygen prints", async () => {
    const rsa = await startTestHost({ hostKeyType: "rsa" });
    try {
      expect(await fetchHostKeyFingerprint(rsa.host, rsa.port)).toBe(sshKeygenFingerprint(rsa.hostKeyFile));
      expect((await testSshConnection(targetFor(rsa))).remoteUser).toBe(rsa.username);
    } finally {
      await rsa.close();
    }
  });

  // Rows name the rule; each host offers only what the row names, and the message must say so.
  const weakHosts: {
    rule: string;
    options: StartTestHostOptions;
    says: string;
    /** Whether ssh2's default offer, all this service sent before issue 13, got through with it. */
    acceptedByDefaults: boolean;
  }[] = [
    {
      rule: "ssh-rsa (SHA-1) host keys and hmac-sha1 MACs only",
      options: {
        hostKeyType: "rsa",
        sshdConfig: [
          "HostKeyAlgorithms ssh-rsa",
          "PubkeyAcceptedAlgorithms +ssh-rsa",
          "Ciphers aes128-ctr",
          "MACs hmac-sha1",
        ],
      },
      says: "offers only host key algorithms ssh-rsa, which this service does not accept",
      acceptedByDefaults: true,
    },
    {
      rule: "hmac-sha1 MACs only (with CTR ciphers, so a MAC is needed)",
      options: { sshdConfig: ["Ciphers aes128-ctr,aes256-ctr", "MACs hmac-sha1"] },
      says: "offers only MACs hmac-sha1, which this service does not accept",
      acceptedByDefaults: true,
    },
    {
      rule: "a SHA-1 key exchange only",
      options: { sshdConfig: ["KexAlgorithms diffie-hellman-group14-sha1"] },
      says: "offers only key exchange algorithms diffie-hellman-group14-sha1, which this service does not accept",
      acceptedByDefaults: false, // ssh2 supports it but never offered it by default
    },
  ];

  describe.each(weakHosts)("a host that offers $rule", ({ options, says, acceptedByDefaults }) => {
    let weak: TestHost;
    beforeAll(async () => {
      weak = await startTestHost(options);
    });
    afterAll(async () => {
      await weak?.close();
    });

    it(`${acceptedByDefaults ? "was" : "was not"} accepted by ssh2's default offer`, async () => {
      expect(await ssh2DefaultsNegotiate(weak)).toBe(acceptedByDefaults);
    });

    it("cannot be pinned: trust on first use fails with ssh_negotiation_failed and says what it offers", async () => {
      const err = await expectCode(fetchHostKeyFingerprint(weak.host, weak.port), "ssh_negotiation_failed");
      expect(err.message).toContain(`The SSH server at ${weak.host}:${weak.port} ${says}`);
    });

    it("cannot be used: nothing runs, and the error names what this service accepts", async () => {
      const marker = `/tmp/reoclo-marker-${randomBytes(8).toString("hex")}`;
      try {
        const err = await expectCode(
          runCommand(targetFor(weak), `touch ${marker}`),
          "ssh_negotiation_failed",
        );
        expect(err.message).toContain(says);
        expect(err.message).toMatch(
          /it accepts (ssh-ed25519|hmac-sha2-256-etm@openssh.com|curve25519-sha256), /,
        );
        expect(existsSync(marker)).toBe(false);
      } finally {
        rmSync(marker, { force: true });
      }
    });
  });
});
