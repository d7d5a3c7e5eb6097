import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { maskText, maskTokens, OutputMasker, StreamMasker, TokenMasker } from "../src/operations/masking";

interface Masker {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}
const feed = (m: Masker, chunks: string[]) =>
  chunks.map((c) => m.push(Buffer.from(c)).toString()).concat(m.end().toString());
const feedBytes = (m: Masker, chunks: Buffer[]) => Buffer.concat([...chunks.map((c) => m.push(c)), m.end()]);

/** A seeded generator (mulberry32): a failing case can be replayed from the seed in its message. */
function seededRandom(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const from = (alphabet: string, len: number) =>
    Array.from({ length: len }, () => pick([...alphabet])).join("");
  return { int, pick, from };
}
/** Random cut points of `length` units, in order, from 0 to `length`. */
const cutsOf = (rand: ReturnType<typeof seededRandom>, length: number) =>
  [0, ...Array.from({ length: rand.int(5) }, () => rand.int(length + 1)), length].sort((a, b) => a - b);

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const alnum = (n: number, seed = n) => seededRandom(seed).from(ALNUM, n);

describe("StreamMasker", () => {
  it("passes a line on at once when its end cannot be the start of a secret", () => {
    const m = new StreamMasker(["/tmp/very-secret-path"]);
    expect(m.push(Buffer.from("first-line\n")).toString()).toBe("first-line\n");
  });

  it("holds back only an end that could start a secret, and releases it when it does not", () => {
    const m = new StreamMasker(["hunter2-extra-long"]);
    expect(m.push(Buffer.from("login hunt")).toString()).toBe("login ");
    expect(m.push(Buffer.from("ing season\n")).toString()).toBe("hunting season\n");
  });

  it("masks a secret split at every possible point", () => {
    const secret = "s3cr3t-" + randomBytes(8).toString("hex");
    const text = `before ${secret} middle ${secret}${secret} after`;
    for (let cut = 0; cut <= text.length; cut++) {
      const out = feed(new StreamMasker([secret, "other-secret-value"]), [
        text.slice(0, cut),
        text.slice(cut),
      ]);
      expect(out.join("")).toBe("before *** middle ****** after");
    }
  });

  it("masks a secret fed one byte at a time", () => {
    const secret = "abcabcabd-token";
    const text = `xx abcabcabcabd-token yy abcab`;
    const out = feed(new StreamMasker([secret]), [...text]);
    expect(out.join("")).toBe("xx abc*** yy abcab");
  });
});

describe("StreamMasker, whatever the chunking", () => {
  // A small alphabet makes overlapping, nested and self-similar secrets common.
  const { int: rand, from } = seededRandom(13_10);
  const word = (len: number) => from("ab", len);

  it("masks chunked output exactly as it masks the whole output at once (5,000 random cases)", () => {
    for (let i = 0; i < 5000; i++) {
      const inner = word(8 + rand(3));
      const secrets = [inner, `url:${inner}@host`, word(8 + rand(4))];
      const pieces = Array.from({ length: 6 }, () => (rand(2) ? secrets[rand(3)]! : word(rand(6))));
      const text = pieces.join("");
      const whole = new StreamMasker(secrets);
      const expected = Buffer.concat([whole.push(Buffer.from(text)), whole.end()]).toString();
      const cuts = [0, ...Array.from({ length: rand(4) }, () => rand(text.length + 1)), text.length].sort(
        (a, b) => a - b,
      );
      const chunks = cuts.slice(1).map((end, k) => text.slice(cuts[k], end));
      const got = feed(new StreamMasker(secrets), chunks).join("");
      expect({ text, chunks, got }).toEqual({ text, chunks, got: expected });
      expect(got).not.toContain(secrets[1]);
    }
  });
});

// Issue 13, items 10 and 11: token-shaped strings and URL passwords, in command text and output.
const ghp = `ghp_${alnum(36)}`;
const ghs = `ghs_${alnum(36, 2)}`;
const pat = `github_pat_${alnum(22, 3)}_${alnum(59, 4)}`;
const rca = `rca_${alnum(36, 5)}`;
const rkt = `rk_t_${alnum(36, 6)}`;

describe("command text and error messages: one set of rules", () => {
  it.each([
    // [rule, command text, stored as, what must not remain]
    [
      "URL password (git clone)",
      "git clone https://alice:s3cret@example.com/r.git",
      "git clone https://alice:***@example.com/r.git",
      "s3cret",
    ],
    [
      "URL password, percent-encoded",
      "psql postgres://app:p%40ss@db:5432/x",
      "psql postgres://app:***@db:5432/x",
      "p%40ss",
    ],
    [
      "URL password that is a token (checkout v1)",
      `git fetch https://x-access-token:${ghs}@github.com/o/r`,
      "git fetch https://x-access-token:***@github.com/o/r",
      ghs.slice(4),
    ],
    [
      "URL password of any user name",
      "curl ftp://deploy-bot:tr0ub4dor@files/x",
      "curl ftp://deploy-bot:***@files/x",
      "tr0ub4dor",
    ],
    [
      "URL password with an empty user",
      "redis-cli -u redis://:hunter2hunter2@cache:6379",
      "redis-cli -u redis://:***@cache:6379",
      "hunter2",
    ],
    [
      "URL password holding a raw @ (parsers split at the last @)",
      "curl https://bob:p@ss@host/x",
      "curl https://bob:***@host/x",
      "p@ss",
    ],
    ["URL password holding a colon", "curl https://bob:pa:ss@host/x", "curl https://bob:***@host/x", "pa:ss"],
    [
      "URL user holding an @",
      "curl https://bob@corp:pw-123@host/x",
      "curl https://bob@corp:***@host/x",
      "pw-123",
    ],
    [
      "URL password in quotes",
      `git clone "https://alice:s3cret@example.com/r.git"`,
      `git clone "https://alice:***@example.com/r.git"`,
      "s3cret",
    ],
    [
      "git credential outside a URL",
      `git push x-access-token:${ghs}@github.com:o/r`,
      "git push x-access-token:***@github.com:o/r",
      ghs.slice(4),
    ],
    [
      "oauth2 credential",
      "git clone oauth2:glpat-abcdef123456@gitlab.com",
      "git clone oauth2:***@gitlab.com",
      "glpat",
    ],
    ["GitHub classic token", `echo ${ghp}`, "echo ***", ghp],
    ["GitHub server token", `GH_TOKEN=${ghs} gh api /user`, "GH_TOKEN=*** gh api /user", ghs],
    [
      "GitHub OAuth, user and refresh tokens",
      `gho_${alnum(30)} ghu_${alnum(40)} ghr_${alnum(76)}`,
      "*** *** ***",
      "_",
    ],
    [
      "GitHub fine-grained token",
      `curl -H "Authorization: Bearer ${pat}"`,
      `curl -H "Authorization: Bearer ***"`,
      pat,
    ],
    ["automation key", `REOCLO_API_KEY=${rca} ./ci.sh`, "REOCLO_API_KEY=*** ./ci.sh", rca],
    ["integration key", `curl -H "X-API-Key: ${rkt}"`, `curl -H "X-API-Key: ***"`, rkt],
  ])("%s is redacted, in command text and in output", (_rule, command, stored, secret) => {
    const out = maskText(command, []);
    expect(out).toBe(stored);
    expect(out).not.toContain(secret);
    expect(feed(new OutputMasker([]), [command]).join("")).toBe(stored);
  });

  it.each([
    ["URL with a user and no password", "curl https://alice@example.com"],
    ["ssh URL with a user only", "git clone ssh://git@host/r.git"],
    ["scp-style git remote", "git clone git@github.com:o/r.git"],
    ["URL with a port and an @ in its path", "curl https://example.com:8443/a@b"],
    ["token glued to a word (no word boundary)", `echo x${ghp}`],
    ["token glued to a word after it", `echo ${ghp}_x`],
    ["URL user longer than 255 characters", `curl https://${"u".repeat(256)}:pw@host`],
    ["URL password longer than 255 characters", `curl https://u:${"p".repeat(256)}@host`],
    ["GitHub token shorter than 20 characters", `echo ghp_${alnum(19)}`],
    ["GitHub token run longer than 255 characters", `echo ghp_${alnum(256)}`],
    ["automation key of 35 characters", `echo rca_${alnum(35)}`],
    ["automation key of 37 characters", `echo rca_${alnum(37)}`],
    ["integration key of 35 characters", `echo rk_t_${alnum(35)}`],
    ["integration key of 37 characters", `echo rk_t_${alnum(37)}`],
  ])("%s is kept as is, in command text and in output", (_rule, command) => {
    expect(maskText(command, [])).toBe(command);
    expect(feed(new OutputMasker([]), [command]).join("")).toBe(command);
  });

  it("masks env values first, then tokens and URL passwords, in command text and error messages alike", () => {
    const secret = "db-password-1234";
    const text = `pg_dump postgres://app:${secret}@db/x; echo ${ghp}; echo ${secret}; curl https://u:other-pw@h`;
    const expected = "pg_dump postgres://app:***@db/x; echo ***; echo ***; curl https://u:***@h";
    expect(maskText(text, [secret])).toBe(expected);
    expect(maskText(text, [secret])).toBe(expected);
  });

  it("masks overlapping env values as the output stream does: leftmost first", () => {
    const secrets = ["bcdefghij", "abcdefgh"];
    expect(maskText("xabcdefghij", secrets)).toBe(feed(new StreamMasker(secrets), ["xabcdefghij"]).join(""));
  });
});

describe("TokenMasker and OutputMasker, live", () => {
  it("passes a line on at once when its end cannot be the start of a token", () => {
    const m = new OutputMasker(["/tmp/very-secret-path"]);
    expect(m.push(Buffer.from("deploying web-1\n")).toString()).toBe("deploying web-1\n");
    expect(m.push(Buffer.from("ready\n")).toString()).toBe("ready\n");
    expect(new TokenMasker().push(Buffer.from("done\n")).toString()).toBe("done\n");
  });

  it("holds back only from a token prefix on, and masks the token once it is whole", () => {
    const m = new OutputMasker([]);
    expect(m.push(Buffer.from("deploying ghp_")).toString()).toBe("deploying ");
    expect(m.push(Buffer.from(`${ghp.slice(4, 20)}`)).toString()).toBe("");
    expect(m.push(Buffer.from(`${ghp.slice(20)} done\n`)).toString()).toBe("*** done\n");
    expect(m.end().toString()).toBe("");
  });

  it("releases a held prefix as soon as it cannot become a token", () => {
    const m = new TokenMasker();
    expect(m.push(Buffer.from("deploying ghp_")).toString()).toBe("deploying ");
    expect(m.push(Buffer.from("done\n")).toString()).toBe("ghp_done\n");
  });

  it("holds a URL until its password is decided, and keeps the user", () => {
    const m = new TokenMasker();
    expect(m.push(Buffer.from("DATABASE_URL=postgres://app:hunt")).toString()).toBe("DATABASE_URL=postgres");
    expect(m.push(Buffer.from("er2hunter2@db:5432/x\n")).toString()).toBe("://app:***@db:5432/x\n");
  });

  it("sees word boundaries across chunks: a prefix right after a letter is no token start", () => {
    const m = new TokenMasker();
    const out = [m.push(Buffer.from("x")), m.push(Buffer.from(`${ghp}\n`)), m.end()];
    expect(Buffer.concat(out).toString()).toBe(`x${ghp}\n`);
  });

  it("gives up holding once a run is longer than any token: the holdback is bounded", () => {
    const m = new TokenMasker();
    const run = `ghp_${alnum(255)}`;
    expect(m.push(Buffer.from(run)).toString()).toBe("");
    expect(m.push(Buffer.from("A")).toString()).toBe(`${run}A`);
    const url = `https://${"u".repeat(255)}:${"p".repeat(255)}`;
    expect(m.push(Buffer.from(url)).toString()).toBe("https"); // the longest wait: 514 bytes
    expect(m.push(Buffer.from("p")).toString()).toBe(`${url.slice(5)}p`);
  });

  it.each([
    ["a GitHub token", ghp],
    ["a GitHub fine-grained token", pat],
    ["an automation key", rca],
    ["an integration key", rkt],
    ["a URL password", "https://user:hunter2hunter2@example.com"],
    ["a git credential", `x-access-token:${ghs}@github.com`],
    ["a GitHub token of the longest kind", `ghp_${alnum(255)}`],
    ["a URL password of the longest kind", `https://user:${"p".repeat(255)}@example.com`],
    ["a URL password after the longest user", `https://${"u".repeat(255)}:hunter2hunter2@example.com`],
  ])("masks %s split at every position, next to env values", (_rule, token) => {
    const secret = "env-secret-value";
    const text = `a ${token} ${secret}${token}\n${token}`;
    const expected = maskText(text, [secret]);
    expect(expected).not.toContain(token.split("@")[0]!.slice(-12)); // the token's (password's) end
    for (let cut = 0; cut <= text.length; cut++) {
      for (const second of [cut, Math.min(text.length, cut + 7)]) {
        const chunks = [text.slice(0, cut), text.slice(cut, second), text.slice(second)];
        expect(feed(new OutputMasker([secret]), chunks).join(""), `cut at ${cut}, ${second}`).toBe(expected);
      }
    }
    expect(feed(new OutputMasker([secret]), [...text]).join("")).toBe(expected);
  });
});

describe("OutputMasker, whatever the chunking", () => {
  // Small alphabets make tokens run into each other, into env values and into near misses.
  const pieces = (rand: ReturnType<typeof seededRandom>, secrets: string[]): string[] => {
    const body = (n: number) => rand.from("abAB01", n);
    const generators: (() => string)[] = [
      () => rand.pick(secrets),
      () =>
        `${rand.pick(["ghp", "gho", "ghu", "ghs", "ghr"])}_${body(rand.pick([3, 19, 20, 21, 36, 254, 255, 256]))}`,
      () => `github_pat_${rand.from("ab_1", rand.pick([19, 20, 40, 256]))}`,
      () => `${rand.pick(["rca_", "rk_t_"])}${body(rand.pick([35, 36, 37]))}`,
      () => `${rand.pick(["https", "postgres", "x", ""])}://${rand.pick(["", "u", "a@b", body(4)])}`,
      () =>
        `https://${rand.pick(["", "u", "a@b"])}:${rand.from("ab:@", rand.int(8))}${rand.pick(["@", "@h", ""])}`,
      () => rand.pick([":", "@", "/", "_", " ", "\n", "é", "€", "x", "ab", ":/", "gh", "rk_", "github_"]),
      () => `${rand.pick(["x-access-token:", "oauth2:", "x-oauth-basic:"])}${body(rand.int(6))}`,
      () => rand.from("ab:@_", rand.int(8)),
      () => rand.pick(["p".repeat(254), "p".repeat(256)]),
    ];
    return Array.from({ length: 1 + rand.int(8) }, () => rand.pick(generators)());
  };

  it("masks chunked output exactly as maskText masks the whole output at once (5,000 random cases)", () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const rand = seededRandom(seed);
      const secrets = [rand.from("ab", 8 + rand.int(3)), rand.from("abAB01", 8 + rand.int(4))];
      const text = pieces(rand, secrets).join("");
      const bytes = Buffer.from(text);
      const cuts = cutsOf(rand, bytes.length); // byte cuts: UTF-8 characters get split too
      const chunks = cuts.slice(1).map((end, k) => bytes.subarray(cuts[k], end));
      const got = feedBytes(new OutputMasker(secrets), chunks).toString();
      expect({ seed, got }).toEqual({ seed, got: maskText(text, secrets) });
    }
  });

  it("masks any bytes, chunked, exactly as maskTokens masks their latin1 text (5,000 random cases)", () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const rand = seededRandom(-seed);
      const parts = pieces(rand, ["unused-secret"]).map((p) => Buffer.from(p));
      parts.splice(
        rand.int(parts.length + 1),
        0,
        Buffer.from(Array.from({ length: rand.int(6) }, () => rand.int(256))),
      );
      const bytes = Buffer.concat(parts);
      const cuts = cutsOf(rand, bytes.length);
      const got = feedBytes(
        new TokenMasker(),
        cuts.slice(1).map((end, k) => bytes.subarray(cuts[k], end)),
      );
      expect({ seed, got: got.toString("latin1") }).toEqual({
        seed,
        got: maskTokens(bytes.toString("latin1")),
      });
    }
  });
});
