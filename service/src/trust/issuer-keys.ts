import { createLocalJWKSet, errors, type JSONWebKeySet, type JWSHeaderParameters } from "jose";
import { discoveryUrl, issuerProblem } from "./conditions";

// The signing keys of OIDC issuers (spec §12): found through the issuer's discovery document
// (OpenID Connect Discovery 1.0 §4), cached per issuer, and read again once when a token names a
// `kid` the cached set lacks, so a key rotation is picked up without a restart. Such re-reads are
// spaced by a cooldown, so tokens with made-up kids cannot make the service hammer an issuer.

/** The issuer could not be reached or answered nonsense: a dependency that is down (503). */
export class IssuerUnavailable extends Error {
  constructor(
    readonly issuer: string,
    why: string,
  ) {
    super(`${issuer}: ${why}`);
    this.name = "IssuerUnavailable";
  }
}

export interface IssuerKeysOptions {
  /** How long a fetched key set is used without asking again (default 10 min). */
  readonly ttlMs?: number;
  /** At least this long between two re-reads caused by unknown kids (default 30 s). */
  readonly unknownKidCooldownMs?: number;
  /** Per HTTP request to the issuer (default 5 s). */
  readonly timeoutMs?: number;
}

interface Entry {
  readonly jwksUri: string;
  readonly keys: ReturnType<typeof createLocalJWKSet>;
  readonly fetchedAt: number;
  /** When an unknown kid last caused a re-read (0: never). */
  readonly kidMissAt: number;
}

type KeyResolver = (header: JWSHeaderParameters) => ReturnType<ReturnType<typeof createLocalJWKSet>>;

export class IssuerKeys {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly ttlMs: number;
  private readonly cooldownMs: number;
  private readonly timeoutMs: number;

  constructor(opts: IssuerKeysOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 10 * 60_000;
    this.cooldownMs = opts.unknownKidCooldownMs ?? 30_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
  }

  /** A key resolver for `jwtVerify`: the issuer's key named by the token's header. */
  resolverFor(issuer: string): KeyResolver {
    return async (header) => {
      let entry = await this.entry(issuer);
      try {
        return await entry.keys(header);
      } catch (err) {
        if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
        // A rotation: read the set once more, unless an unknown kid just made us do so.
        if (Date.now() - entry.kidMissAt < this.cooldownMs) throw err;
        entry = await this.reload(issuer, entry.jwksUri, Date.now());
        return entry.keys(header);
      }
    };
  }

  private entry(issuer: string): Promise<Entry> {
    const cached = this.entries.get(issuer);
    if (cached && Date.now() - cached.fetchedAt < this.ttlMs) return Promise.resolve(cached);
    return this.reload(issuer, undefined, cached?.kidMissAt ?? 0);
  }

  /** One load per issuer at a time; concurrent exchanges wait for the same one. */
  private reload(issuer: string, jwksUri: string | undefined, kidMissAt: number): Promise<Entry> {
    const inFlight = this.loading.get(issuer);
    if (inFlight) return inFlight;
    const load = this.load(issuer, jwksUri, kidMissAt).finally(() => this.loading.delete(issuer));
    this.loading.set(issuer, load);
    return load;
  }

  private async load(issuer: string, knownJwksUri: string | undefined, kidMissAt: number): Promise<Entry> {
    const jwksUri = knownJwksUri ?? (await this.discoverJwksUri(issuer));
    const jwks = await this.fetchJson(issuer, jwksUri);
    if (!jwks || typeof jwks !== "object" || !Array.isArray((jwks as { keys?: unknown }).keys))
      throw new IssuerUnavailable(issuer, "its JWKS has no keys array");
    let keys: ReturnType<typeof createLocalJWKSet>;
    try {
      keys = createLocalJWKSet(jwks as JSONWebKeySet);
    } catch {
      throw new IssuerUnavailable(issuer, "its JWKS is not a valid key set");
    }
    const entry: Entry = { jwksUri, keys, fetchedAt: Date.now(), kidMissAt };
    this.entries.set(issuer, entry);
    return entry;
  }

  private async discoverJwksUri(issuer: string): Promise<string> {
    const doc = (await this.fetchJson(issuer, discoveryUrl(issuer))) as {
      issuer?: unknown;
      jwks_uri?: unknown;
    } | null;
    // Discovery §4.3: the document's issuer must be the one asked for.
    if (!doc || doc.issuer !== issuer)
      throw new IssuerUnavailable(issuer, "its discovery document names another issuer");
    if (typeof doc.jwks_uri !== "string" || issuerProblem(doc.jwks_uri) !== undefined)
      throw new IssuerUnavailable(issuer, "its discovery document has no usable jwks_uri");
    return doc.jwks_uri;
  }

  private async fetchJson(issuer: string, url: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { Accept: "application/json" },
        redirect: "error",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch {
      throw new IssuerUnavailable(issuer, `${url} does not answer`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new IssuerUnavailable(issuer, `${url} answered ${res.status}`);
    }
    try {
      return await res.json();
    } catch {
      throw new IssuerUnavailable(issuer, `${url} answered no JSON`);
    }
  }
}
