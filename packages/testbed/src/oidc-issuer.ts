import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from "jose";
import { listenOnLoopback } from "./net";

// An OpenID Connect issuer on loopback, as GitHub Actions' and GitLab's are to the service: it
// serves `/.well-known/openid-configuration` and the JWKS it names, and signs ID tokens with keys
// made by `jose`. Keys can be rotated (the old one leaves the JWKS), and every fetch is counted, so
// a test sees the service's cache at work. Plain http on 127.0.0.1: the service accepts loopback
// issuers without TLS for exactly this.

export type SigningAlg = "RS256" | "ES256";

interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export interface OidcIssuer {
  /** `http://127.0.0.1:<port>`: the `iss` of its tokens. */
  readonly issuer: string;
  /** How many times the discovery document and the JWKS were fetched. */
  readonly fetches: { discovery: number; jwks: number };
  /** The key tokens are signed with now. */
  readonly currentKid: string;
  /** The public keys served now (JWKS `keys`). */
  publicJwks(): JWK[];
  /**
   * A signed ID token. Defaults: `iss` this issuer, `iat`/`nbf` now, `exp` in 5 min, a fresh `jti`,
   * GitHub-shaped claims from `claims`. `header` overrides the protected header (alg, kid…);
   * `key` signs with another key than the current one.
   */
  sign(
    claims: JWTPayload & Record<string, unknown>,
    opts?: { header?: Record<string, unknown>; key?: CryptoKey; kid?: string | null },
  ): Promise<string>;
  /** Makes a new current key; `keepOld` leaves the previous one in the JWKS (a rolling rotation). */
  rotate(opts?: { keepOld?: boolean; alg?: SigningAlg }): Promise<string>;
  /** The private key of a kid still known to the issuer (to sign a token with a rotated-out key). */
  privateKeyOf(kid: string): CryptoKey | undefined;
  close(): Promise<void>;
}

async function newKey(alg: SigningAlg): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk };
}

/** Starts an issuer on a free loopback port with one RS256 key (or `alg`). */
export async function startOidcIssuer(opts: { alg?: SigningAlg } = {}): Promise<OidcIssuer> {
  let current = await newKey(opts.alg ?? "RS256");
  const published: SigningKey[] = [current];
  const known = new Map<string, SigningKey>([[current.kid, current]]);
  const fetches = { discovery: 0, jwks: 0 };
  let issuer = "";

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/.well-known/openid-configuration") {
      fetches.discovery++;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          issuer,
          jwks_uri: `${issuer}/.well-known/jwks`,
          id_token_signing_alg_values_supported: ["RS256", "ES256"],
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
        }),
      );
      return;
    }
    if (path === "/.well-known/jwks") {
      fetches.jwks++;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ keys: published.map((k) => k.publicJwk) }));
      return;
    }
    res.writeHead(404).end();
  });
  const port = await listenOnLoopback(server);
  issuer = `http://127.0.0.1:${port}`;

  return {
    issuer,
    fetches,
    get currentKid() {
      return current.kid;
    },
    publicJwks: () => published.map((k) => k.publicJwk),
    async sign(claims, signOpts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const kid = signOpts.kid === undefined ? current.kid : signOpts.kid;
      const header = { alg: current.alg, typ: "JWT", ...(kid === null ? {} : { kid }), ...signOpts.header };
      const payload: JWTPayload = {
        iss: issuer,
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: randomUUID(),
        ...claims,
      };
      return new SignJWT(payload)
        .setProtectedHeader(header)
        .sign(signOpts.key ?? known.get(kid ?? "")?.privateKey ?? current.privateKey);
    },
    async rotate(rotateOpts = {}) {
      const next = await newKey(rotateOpts.alg ?? current.alg);
      known.set(next.kid, next);
      if (!rotateOpts.keepOld) published.splice(0, published.length);
      published.push(next);
      current = next;
      return next.kid;
    },
    privateKeyOf: (kid) => known.get(kid)?.privateKey,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** GitHub Actions' claims for a run, as its ID tokens carry them (override any). */
export function githubClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const repository = (overrides.repository as string | undefined) ?? "acme/shop";
  const ref = (overrides.ref as string | undefined) ?? "refs/heads/main";
  return {
    sub: `repo:${repository}:ref:${ref}`,
    repository,
    repository_owner: repository.split("/")[0],
    ref,
    ref_type: "branch",
    workflow: "deploy",
    workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    job_workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    event_name: "push",
    run_id: "4242",
    run_attempt: "1",
    actor: "octocat",
    sha: "0123456789abcdef0123456789abcdef01234567",
    ...overrides,
  };
}
