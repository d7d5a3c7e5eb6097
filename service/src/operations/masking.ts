import {
  INTEGRATION_KEY_PREFIX,
  KEY_CHECKSUM_LENGTH,
  KEY_PREFIX,
  KEY_RANDOM_LENGTH,
  MASK,
  MASK_MIN_LENGTH,
} from "@reoclo/protocol";

// Spec §4: values of `env` of 8 characters or more are replaced by `***` in everything stored,
// streamed or returned; so are token-shaped strings and URL passwords (issue 13, items 10 and 11),
// in the output as in the stored command text and error messages.

const MASK_BYTES = Buffer.from(MASK);
const EMPTY = Buffer.alloc(0);

/** The env values that must be masked, longest first so a value containing another wins. */
export function valuesToMask(
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

  constructor(maskValues: readonly string[]) {
    this.needles = maskValues.map((s) => Buffer.from(s, "utf8"));
  }

  /** Raw bytes held back: pushed, not yet returned. */
  get held(): number {
    return this.carry.length;
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

/** Env values in a complete text, masked as `StreamMasker` does: leftmost first, ties to the first listed. */
export function maskSecrets(text: string, maskValues: readonly string[]): string {
  const needles = maskValues.filter((s) => s !== "");
  let out = "";
  let pos = 0;
  for (;;) {
    let at = -1;
    let length = 0;
    for (const s of needles) {
      const i = text.indexOf(s, pos);
      if (i !== -1 && (at === -1 || i < at)) [at, length] = [i, s.length];
    }
    if (at === -1) return out + text.slice(pos);
    out += text.slice(pos, at) + MASK;
    pos = at + length;
  }
}

// Token-shaped strings and URL passwords. Each rule is written once, as data; a regex built from
// the rules masks complete texts (the reference), and a byte matcher built from the same rules
// masks the stream, where it also tells which end of a chunk is still undecided. The property
// tests in masking.test.ts hold the two to the same result.

/** GitHub tokens are at most 255 characters; userinfo parts are bounded alike, which bounds the holdback. */
const PART_MAX_CHARS = 255;
const KEY_BODY_CHARS = KEY_RANDOM_LENGTH + KEY_CHECKSUM_LENGTH;

// ASCII classes spelled out (no \s, \w or \b): matched on the text as a string or on its bytes as
// latin1, a non-ASCII character is in no class either way, so both ways agree.
const WORD = "A-Za-z0-9_";
const ALNUM = "A-Za-z0-9";
const SCHEME = "A-Za-z0-9+.\\-";
/** RFC 3986 userinfo characters but ":" and the quote, plus "@": URL parsers split at the last "@". */
const USER = "A-Za-z0-9\\-._~%!$&()*+,;=@";
const PASSWORD = `${USER}:`;

type TokenRule =
  /** `prefix` + `min`..`max` characters of `body`, a whole word: `***`. */
  | { kind: "token"; name: string; prefixes: readonly string[]; body: string; min: number; max: number }
  /** `prefix` [+ user + `:`] + password + `@`, after a character of `after`: the password becomes `***`. */
  | { kind: "password"; name: string; prefixes: readonly string[]; after?: string; user: boolean };

const TOKEN_RULES: readonly TokenRule[] = [
  {
    kind: "token",
    name: "GitHub token",
    prefixes: ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
    body: ALNUM,
    min: 20,
    max: PART_MAX_CHARS,
  },
  {
    kind: "token",
    name: "GitHub fine-grained token",
    prefixes: ["github_pat_"],
    body: WORD,
    min: 20,
    max: PART_MAX_CHARS,
  },
  {
    kind: "token",
    name: "automation key",
    prefixes: [KEY_PREFIX],
    body: ALNUM,
    min: KEY_BODY_CHARS,
    max: KEY_BODY_CHARS,
  },
  {
    kind: "token",
    name: "integration key",
    prefixes: [INTEGRATION_KEY_PREFIX],
    body: ALNUM,
    min: KEY_BODY_CHARS,
    max: KEY_BODY_CHARS,
  },
  // Credentials that published v1 clients put inside command text (spec §7), with or without a URL.
  {
    kind: "password",
    name: "git credential",
    prefixes: ["x-access-token:", "oauth2:", "x-oauth-basic:"],
    user: false,
  },
  { kind: "password", name: "URL password", prefixes: ["://"], after: SCHEME, user: true },
];

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

function ruleSource(rule: TokenRule): string {
  const prefix = `(?:${rule.prefixes.map(escapeRegExp).join("|")})`;
  if (rule.kind === "token")
    return `(?<![${WORD}])${prefix}[${rule.body}]{${rule.min},${rule.max}}(?![${WORD}])`;
  const after = rule.after ? `(?<=[${rule.after}])` : "";
  const user = rule.user ? `[${USER}]{0,${PART_MAX_CHARS}}:` : "";
  // The one capture group is what is kept before the `***`.
  return `${after}(${prefix}${user})[${PASSWORD}]{1,${PART_MAX_CHARS}}@`;
}

const TOKEN_RE = new RegExp(TOKEN_RULES.map(ruleSource).join("|"), "g");

/** `***` for a token; for a password, what comes before it is kept: `https://alice:***@`. */
function replacement(m: RegExpExecArray): string {
  const kept = m.slice(1).find((g) => g !== undefined);
  return kept === undefined ? MASK : `${kept}${MASK}@`;
}

/** Token-shaped strings and URL passwords in a complete text, masked. */
export function maskTokens(text: string): string {
  let out = "";
  let pos = 0;
  TOKEN_RE.lastIndex = 0;
  for (let m; (m = TOKEN_RE.exec(text)); pos = TOKEN_RE.lastIndex)
    out += text.slice(pos, m.index) + replacement(m);
  return out + text.slice(pos);
}

/** Masks a complete text (error messages): env values, then token-shaped strings and URL passwords. */
export function maskText(text: string, maskValues: readonly string[]): string {
  return maskTokens(maskSecrets(text, maskValues));
}

// The byte side of the rules, for the stream.

const byteClass = (cls: string) => {
  const re = new RegExp(`[${cls}]`);
  return Uint8Array.from({ length: 256 }, (_, b) => (b < 0x80 && re.test(String.fromCharCode(b)) ? 1 : 0));
};
const WORD_BYTES = byteClass(WORD);
const USER_BYTES = byteClass(USER);
const PASSWORD_BYTES = byteClass(PASSWORD);
const COLON = 0x3a;
const AT = 0x40;
const MASK_AT = Buffer.from(`${MASK}@`);

type ByteRule = {
  prefixes: Buffer[];
  /** Password rules: the byte before the prefix must be in this class. */
  after?: Uint8Array;
  token?: { body: Uint8Array; min: number; max: number };
  user: boolean;
};
const BYTE_RULES: ByteRule[] = TOKEN_RULES.map((r) => ({
  prefixes: r.prefixes.map((p) => Buffer.from(p, "latin1")),
  after: r.kind === "password" && r.after ? byteClass(r.after) : undefined,
  token: r.kind === "token" ? { body: byteClass(r.body), min: r.min, max: r.max } : undefined,
  user: r.kind === "password" && r.user,
}));
const PREFIXES = BYTE_RULES.flatMap((r) => r.prefixes);
const FIRST_BYTES = Uint8Array.from({ length: 256 }, (_, b) => (PREFIXES.some((p) => p[0] === b) ? 1 : 0));
const LONGEST_PREFIX = Math.max(...PREFIXES.map((p) => p.length));

// Each prefix is looked for from its first "_" or ":", bytes far rarer in output than letters, and
// a look at the anchor's neighbours rules out most of those (timestamps, `snake_case`).
const ANCHOR_BYTES = [0x5f, 0x3a];
const anchorOf = (p: Buffer) => p.find((b) => ANCHOR_BYTES.includes(b)) ?? p[0]!;
const ANCHORS = [...new Set(PREFIXES.map(anchorOf))].map((byte) => {
  const prefixes = PREFIXES.filter((p) => anchorOf(p) === byte).map((bytes) => ({
    bytes,
    offset: bytes.indexOf(byte),
  }));
  const near = (pick: (p: { bytes: Buffer; offset: number }) => number | undefined) =>
    Uint8Array.from({ length: 256 }, (_, b) => (prefixes.some((p) => pick(p) === b) ? 1 : 0));
  return {
    byte,
    prefixes,
    before: near((p) => (p.offset > 0 ? p.bytes[p.offset - 1] : undefined)),
    after: near((p) => (p.offset === 0 ? p.bytes[1] : undefined)),
  };
});

/** Do the first `length` bytes of `prefix` lie in `data` at `at`? (A loop: a few bytes, very often.) */
function startsWith(data: Buffer, at: number, prefix: Buffer, length = prefix.length): boolean {
  if (at < 0 || at + length > data.length) return false;
  for (let i = 0; i < length; i++) if (data[at + i] !== prefix[i]) return false;
  return true;
}

/** Where whole prefixes start in `data`, in order; most output has none, found by two `indexOf`. */
function prefixStarts(data: Buffer): number[] {
  const starts: number[] = [];
  for (const { byte, prefixes, before, after } of ANCHORS) {
    for (let i = data.indexOf(byte); i !== -1; i = data.indexOf(byte, i + 1)) {
      if (!((i > 0 && before[data[i - 1]!]) || (i + 1 < data.length && after[data[i + 1]!]))) continue;
      for (const p of prefixes) if (startsWith(data, i - p.offset, p.bytes)) starts.push(i - p.offset);
    }
  }
  return starts;
}

/** Bytes of `cls` in a row from `q`, counted up to `limit`. */
function runLength(data: Buffer, q: number, cls: Uint8Array, limit: number): number {
  const end = Math.min(data.length, q + limit);
  let i = q;
  while (i < end && cls[data[i]!]) i++;
  return i - q;
}

/** A match: where it ends, and how many of its first bytes are kept (`https://alice:`) before `***@`. */
type Match = { end: number; keep: number };
const NONE = "none";
const UNDECIDED = "undecided";
type MatchAt = Match | typeof NONE | typeof UNDECIDED;

/**
 * What `TOKEN_RE` matches at `p` in `data` (after the byte `prev`, -1 at the start), or UNDECIDED
 * when bytes after `data` could change that (`final`: none will come). An undecided span is at
 * most a prefix and its parts without the closing `@`, 514 bytes for a URL (`://`, a user of 255,
 * `:`, a password of 255): that bounds what the stream holds back.
 */
function matchAt(data: Buffer, p: number, prev: number, final: boolean): MatchAt {
  for (const rule of BYTE_RULES) {
    if (rule.token ? prev >= 0 && WORD_BYTES[prev] : rule.after && !(prev >= 0 && rule.after[prev])) continue;
    for (const prefix of rule.prefixes) {
      const k = Math.min(prefix.length, data.length - p);
      if (!startsWith(data, p, prefix, k)) continue;
      // No prefix begins another, so the first whole one is the only one here.
      if (k < prefix.length) return final ? NONE : UNDECIDED;
      return rule.token
        ? tokenAt(rule.token, data, p + k, final)
        : passwordAt(rule.user, data, p, p + k, final);
    }
  }
  return NONE;
}

/** `[body]{min,max}(?![WORD])` from `q`. */
function tokenAt(token: NonNullable<ByteRule["token"]>, data: Buffer, q: number, final: boolean): MatchAt {
  const len = runLength(data, q, token.body, token.max + 1);
  const next = q + len;
  if (next === data.length && len <= token.max && !final) return UNDECIDED;
  if (len < token.min || len > token.max || (next < data.length && WORD_BYTES[data[next]!])) return NONE;
  return { end: next, keep: 0 };
}

/** `([USER]{0,255}:)?[PASSWORD]{1,255}@` from `q`, the password up to the last "@" in reach. */
function passwordAt(user: boolean, data: Buffer, p: number, q: number, final: boolean): MatchAt {
  const n = data.length;
  if (user) {
    const len = runLength(data, q, USER_BYTES, PART_MAX_CHARS + 1);
    if (q + len === n) return len <= PART_MAX_CHARS && !final ? UNDECIDED : NONE;
    if (len > PART_MAX_CHARS || data[q + len] !== COLON) return NONE;
    q += len + 1;
  }
  const len = runLength(data, q, PASSWORD_BYTES, PART_MAX_CHARS + 1);
  if (q + len === n && len <= PART_MAX_CHARS && !final) return UNDECIDED;
  for (let k = len - 1; k >= 1; k--) if (data[q + k] === AT) return { end: q + k + 1, keep: q - p };
  return NONE;
}

/**
 * Masks token-shaped strings and URL passwords in a byte stream, exactly as `maskTokens` masks the
 * whole of it. Only an end that could still begin or lengthen a match is held back (see
 * `matchAt`), so output ending in a newline or a space is passed on at once.
 */
export class TokenMasker {
  private pending = EMPTY;
  /** The stream's byte before `pending` (word boundaries see across chunks), or -1 at its start. */
  private before = -1;

  /** Bytes held back: pushed, not yet returned. */
  get held(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): Buffer {
    return this.mask(this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk, false);
  }

  /** Whatever was held back, masked; call once the stream ended. */
  end(): Buffer {
    return this.mask(this.pending, true);
  }

  private mask(data: Buffer, final: boolean): Buffer {
    const n = data.length;
    const starts = prefixStarts(data);
    // A prefix cut by the end of `data` may wait for its rest.
    if (!final)
      for (let p = Math.max(0, n - LONGEST_PREFIX + 1); p < n; p++) if (FIRST_BYTES[data[p]!]) starts.push(p);
    if (starts.length === 0) return this.keep(data, n, [data]);
    starts.sort((a, b) => a - b);
    const parts: Buffer[] = [];
    let pos = 0;
    let hold = n;
    for (const p of starts) {
      if (p < pos) continue; // inside the last match, or seen
      const m = matchAt(data, p, p > 0 ? data[p - 1]! : this.before, final);
      if (m === UNDECIDED) {
        hold = p;
        break;
      }
      if (m === NONE) continue;
      parts.push(data.subarray(pos, p));
      parts.push(...(m.keep ? [data.subarray(p, p + m.keep), MASK_AT] : [MASK_BYTES]));
      pos = m.end;
    }
    if (hold > pos) parts.push(data.subarray(pos, hold));
    return this.keep(data, hold, parts);
  }

  /** Keeps `data` from `hold` on for the next chunk; returns `parts`, the masked bytes before it. */
  private keep(data: Buffer, hold: number, parts: Buffer[]): Buffer {
    if (hold > 0) this.before = data[hold - 1]!;
    this.pending = hold < data.length ? Buffer.from(data.subarray(hold)) : EMPTY;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

/**
 * What `OutputRecorder` masks each stream with: env values (as the `StreamMasker` it is), then
 * token-shaped strings and URL passwords in what that lets through.
 */
export class OutputMasker extends StreamMasker {
  private readonly tokens = new TokenMasker();
  override push(chunk: Buffer): Buffer {
    return this.tokens.push(super.push(chunk));
  }

  /**
   * Raw bytes pushed and not yet returned, or undefined while the token masker holds any. Where
   * another instance resumes the stream: from the raw bytes pushed less these, a fresh masker sees
   * exactly what this one has not returned yet.
   */
  heldRaw(): number | undefined {
    // What the token masker holds carries context a fresh one would not have (the byte before it, a URL's
    // scheme): no resume point inside it, or a password could come out unmasked after a takeover.
    return this.tokens.held > 0 ? undefined : this.held;
  }

  override end(): Buffer {
    const last = this.tokens.push(super.end());
    const rest = this.tokens.end();
    return rest.length ? Buffer.concat([last, rest]) : last;
  }
}
