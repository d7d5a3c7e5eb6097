import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { StreamMasker } from "../src/operations/masking";

const feed = (m: StreamMasker, chunks: string[]) =>
  chunks.map((c) => m.push(Buffer.from(c)).toString()).concat(m.end().toString());

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
  const rand = (n: number) => Math.floor(Math.random() * n);
  const word = (len: number) => Array.from({ length: len }, () => "ab"[rand(2)]).join("");

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
