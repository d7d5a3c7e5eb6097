// The rules of a trust policy's text fields (spec §12): which issuers may be trusted, and the claim
// conditions a token must meet (exact values or `*` globs).

/** Hosts an issuer may be served from over plain http: loopback only, for tests and local issuers. */
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]"]);

/** Why `issuer` cannot be trusted, or undefined: an https URL, or http on a loopback address. */
export function issuerProblem(issuer: string): string | undefined {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return "must be a URL such as https://token.actions.githubusercontent.com";
  }
  if (url.username || url.password) return "must not hold a user name or password";
  if (url.search || url.hash) return "must not have a query or a fragment";
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  return "must be an https:// URL (plain http is accepted only on 127.0.0.1 or [::1])";
}

/** Where an issuer publishes its OpenID configuration (OpenID Connect Discovery 1.0 §4). */
export const discoveryUrl = (issuer: string) =>
  `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;

/**
 * A condition as a RegExp: `*` matches any run of characters (`/` included, so `refs/heads/*`
 * matches `refs/heads/feature/x`); everything else is literal.
 */
export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&"))
    .join("[\\s\\S]*");
  return new RegExp(`^${body}$`, "u");
}

/** True when the claim's value meets the condition; only string claims can. */
export function claimMatches(value: unknown, condition: string): boolean {
  if (typeof value !== "string") return false;
  return condition.includes("*") ? globToRegExp(condition).test(value) : value === condition;
}

/** The first condition the claims fail (its claim's name), or undefined when all hold. */
export function failingClaim(
  claims: Record<string, unknown>,
  conditions: Readonly<Record<string, string>>,
): string | undefined {
  for (const [claim, condition] of Object.entries(conditions).sort(([a], [b]) => a.localeCompare(b)))
    if (!claimMatches(claims[claim], condition)) return claim;
  return undefined;
}
