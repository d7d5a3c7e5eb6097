// What PostgreSQL cannot hold, made storable: `text` and `jsonb` refuse the NUL character, and
// `jsonb` refuses lone UTF-16 surrogates and very deep nesting. Values a client sent that are kept
// only as a record (the audit log's path, run id, claimed run context) go through here, so a
// hostile byte changes what is written, never whether it is written.

/** NUL shown as the six characters `\u0000`; lone surrogates as U+FFFD. */
export function storableText(value: string): string {
  const text = value.includes("\u0000") ? value.replaceAll("\u0000", "\\u0000") : value;
  return text.isWellFormed() ? text : text.toWellFormed();
}

export function storableTextOrNull(value: string | null | undefined, maxChars?: number): string | null {
  if (value === null || value === undefined) return null;
  const cut = maxChars !== undefined && value.length > maxChars ? `${value.slice(0, maxChars)}…` : value;
  return storableText(cut);
}

export interface JsonLimits {
  /** Objects and arrays deeper than this are replaced by a marker string. */
  maxDepth: number;
  /** Serialised size; past it the whole value is replaced by `{ "truncated": true }`. */
  maxChars: number;
}

const DEFAULT_LIMITS: JsonLimits = { maxDepth: 8, maxChars: 8192 };
export const TOO_DEEP = "[nested too deeply]";

/**
 * A copy of a JSON value that `jsonb` accepts: strings and keys made storable, nesting cut at
 * `maxDepth` (iteratively bounded, so no input can exhaust the stack), size bounded.
 */
export function storableJson(value: unknown, limits: Partial<JsonLimits> = {}): unknown {
  const { maxDepth, maxChars } = { ...DEFAULT_LIMITS, ...limits };
  const copy = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return storableText(v);
    if (v === null || typeof v === "number" || typeof v === "boolean") return v;
    if (typeof v !== "object") return null;
    if (depth >= maxDepth) return TOO_DEEP;
    if (Array.isArray(v)) return v.map((item) => copy(item, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) out[storableText(k)] = copy(item, depth + 1);
    return out;
  };
  const result = copy(value, 0);
  return JSON.stringify(result).length > maxChars ? { truncated: true } : result;
}
