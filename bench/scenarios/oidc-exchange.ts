import { API_BASE_PATH } from "@reoclo/protocol";
import { startExecEnv, type ExecEnv } from "@reoclo/service/testing";
import { githubClaims, startOidcIssuer } from "@reoclo/testbed/oidc-issuer";
import { ADMIN } from "../../service/src/access/principal";
import { trustPoliciesCreate } from "../../service/src/control/trust-policies";
import { invoke } from "../../service/src/control/verb";
import { ms, percentile, summarise, type Row, type Scenario } from "../lib";

// Keyless CI (issue 18): the OIDC exchange (verify the job's ID token against the issuer's keys,
// warm in the cache; spend its jti; mint a key; audit) next to an ordinary key's authenticated
// request (`GET /key`), each one request at a time over keep-alive, on both drivers. The tokens are
// signed before the clock starts: the job's runner makes them, not the service.

const AUDIENCE = "https://reoclo.bench";

async function measure(driver: "postgres" | "pglite", quick: boolean): Promise<Row> {
  const env: ExecEnv = await startExecEnv({ driver });
  const issuer = await startOidcIssuer();
  try {
    await invoke(
      trustPoliciesCreate,
      {
        ctx: env.ctx,
        runner: env.t.runner,
      },
      ADMIN,
      {
        name: "bench",
        issuer: issuer.issuer,
        audience: AUDIENCE,
        conditions: { repository: "acme/shop" },
        operations: ["exec"],
        all_servers: true,
        rate_limit_per_minute: 100_000,
        rate_limit_per_hour: 1_000_000,
      },
    );
    const perRun = quick ? 50 : 200;
    const runs = quick ? 3 : 7;
    const exchange = async (token: string) => {
      const res = await fetch(`${env.base}/oidc/exchange`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
      });
      if (res.status !== 200) throw new Error(`exchange answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    const keyRequest = async () => {
      const res = await fetch(`${env.base}/key`, { headers: { Authorization: `Bearer ${env.key}` } });
      if (res.status !== 200) throw new Error(`GET ${API_BASE_PATH}/key answered ${res.status}`);
      await res.arrayBuffer();
    };
    const ours: number[] = [];
    const reference: number[] = [];
    // The first round warms the issuer's keys into the cache and both paths up; it is not counted.
    for (let round = 0; round <= runs; round++) {
      const tokens = await Promise.all(
        Array.from({ length: perRun }, () => issuer.sign({ aud: AUDIENCE, ...githubClaims() })),
      );
      const ex: number[] = [];
      const key: number[] = [];
      for (const token of tokens) {
        let t = process.hrtime.bigint();
        await exchange(token);
        ex.push(ms(t));
        t = process.hrtime.bigint();
        await keyRequest();
        key.push(ms(t));
      }
      if (round === 0) continue;
      ours.push(percentile(ex, 0.5));
      reference.push(percentile(key, 0.5));
    }
    return {
      scenario: `OIDC exchange, p50, warm JWKS cache, ${driver}`,
      ours: summarise(ours, "ms"),
      reference: summarise(reference, "ms"),
      referenceName: "GET /key with an rca_ key",
      higherIsBetter: false,
    };
  } finally {
    await issuer.close();
    await env.close();
  }
}

export const oidcExchange: Scenario = {
  name: "oidc-exchange",
  async run({ quick }) {
    return [await measure("postgres", quick), await measure("pglite", quick)];
  },
};
