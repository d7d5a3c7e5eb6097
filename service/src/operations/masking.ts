import { MASK, MASK_MIN_LENGTH } from "@reoclo/protocol";

// Spec §4: values of `env` of 8 characters or more are replaced by `***` in everything stored,
// streamed or returned, and token-shaped strings never reach the stored command text.

const MASK_BYTES = Buffer.from(MASK);

/** The env values that must be masked, longest first so a value containing another wins. */
export function secretsToMask(
  env: Readonly<Record<string, string>> | undefined,
  also: readonly string[] = [],
): string[] {
  const values = Object.values(env ?? {}).filter((v) => v.length >= MASK_MIN_LENGTH);
  return [...new Set([...values, ...also.filter((v) => v !== "")])].sort((a, b) => b.length - a.length);
}

/**
 * Masks a byte stream that arrives in arbitrary chunks: a secret split across two chunks is
 * still caught, because a chunk's end that could be the start of a secret is held back until
 * more arrives. Only such an end is held, so a line like `ready\n` is passed on at once and
 * live output stays live.
 */
export class StreamMasker {
  private readonly needles: Buffer[];
  private carry = Buffer.alloc(0);

  constructor(secrets: readonly string[]) {
    this.needles = secrets.map((s) => Buffer.from(s, "utf8"));
  }

  push(chunk: Buffer): Buffer {
    if (this.needles.length === 0) return chunk;
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const { out, safeEnd } = this.replace(data, false);
    this.carry = Buffer.from(data.subarray(safeEnd));
    return out;
  }

  /** Whatever was held back, masked; call once the stream ended. */
  end(): Buffer {
    const { out } = this.replace(this.carry, true);
    this.carry = Buffer.alloc(0);
    return out;
  }

  private replace(data: Buffer, final: boolean): { out: Buffer; safeEnd: number } {
    // Not final: from `hold` on, the data may be the start of a secret still arriving; a shorter
    // secret inside it must wait too, or the longer one would leak around its `***`.
    let hold = final ? data.length : data.length - this.possibleStart(data, 0);
    const parts: Buffer[] = [];
    let pos = 0;
    while (pos < hold) {
      const hit = this.nextMatch(data, pos);
      if (!hit || hit.at >= hold) break;
      if (hit.at + hit.length > hold) {
        hold = hit.at; // the match runs into the held part: keep it whole for the next chunk
        break;
      }
      parts.push(data.subarray(pos, hit.at), MASK_BYTES);
      pos = hit.at + hit.length;
    }
    if (hold > pos) parts.push(data.subarray(pos, hold));
    return { out: Buffer.concat(parts), safeEnd: Math.max(pos, hold) };
  }

  /** Length of the longest end of `data` (after `from`) that is a proper prefix of a secret. */
  private possibleStart(data: Buffer, from: number): number {
    let longest = 0;
    for (const n of this.needles) {
      for (let at = Math.max(from, data.length - n.length + 1); at < data.length; at++) {
        const k = data.length - at;
        if (k <= longest) break;
        if (data[at] === n[0] && data.compare(n, 0, k, at) === 0) {
          longest = k; // the earliest start that fits is the longest for this secret
          break;
        }
      }
    }
    return longest;
  }

  private nextMatch(data: Buffer, from: number): { at: number; length: number } | undefined {
    let best: { at: number; length: number } | undefined;
    for (const n of this.needles) {
      const at = data.indexOf(n, from);
      if (at !== -1 && (!best || at < best.at)) best = { at, length: n.length };
    }
    return best;
  }
}

/** Masks a complete string (command text, error messages). */
export function maskText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join(MASK);
  return out;
}

// Credentials that published v1 clients put inside command text (spec §7), and our own keys.
const TOKEN_PATTERNS: RegExp[] = [
  /(x-access-token|oauth2|x-oauth-basic):[^@\s'"]+@/g,
  /\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,255}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,255}\b/g,
  /\brca_[0-9A-Za-z]{36}\b/g,
];

/** The command text as stored: env values and token-shaped strings replaced. */
export function redactCommandText(command: string, secrets: readonly string[]): string {
  let out = maskText(command, secrets);
  for (const re of TOKEN_PATTERNS) {
    out = out.replace(re, (m: string, prefix?: string) =>
      m.endsWith("@") && prefix ? `${prefix}:${MASK}@` : MASK,
    );
  }
  return out;
}
