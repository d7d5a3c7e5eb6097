// The checkout as one command: a constant script (the stored command text, with no request
// data in it) and its parameters as env values (spec §4: data, never spliced into shell text).
// Parameters are base64 so the service's masking of env values (8+ characters) does not hide
// paths and refs in the log; only the token is passed as is, so it is masked wherever it shows.
import { readFileSync } from "node:fs";
import type { CheckoutSettings } from "./inputs.js";

/** The line the script ends with, read back for the outputs. */
export const RESULT_LINE = /^reoclo-checkout: checked out ([0-9a-f]{40,64}) \((.*)\) at (\/.*)$/m;

/** checkout.sh, without its header comment (for its readers; the command stays well under the size limit). */
export const CHECKOUT_SCRIPT = readFileSync(new URL("./checkout.sh", import.meta.url), "utf8").replace(
  /^(?:#.*\n|\n)*/,
  "",
);

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** The env values of one checkout: every parameter as data, the token on its own. */
export function checkoutEnv(s: CheckoutSettings): Record<string, string> {
  const t = s.target;
  const [kind, ref] =
    t.kind === "sha"
      ? ["sha", t.sha]
      : t.kind === "branch" || t.kind === "tag" || t.kind === "name"
        ? [t.kind, t.name]
        : t.kind === "ref"
          ? ["ref", t.ref]
          : ["default", ""];
  const env: Record<string, string> = {
    REOCLO_CO_URL: b64(s.repositoryUrl),
    REOCLO_CO_SERVER: b64(s.serverUrl),
    REOCLO_CO_PATH: b64(s.path),
    REOCLO_CO_KIND: b64(kind),
    REOCLO_CO_REF: b64(ref),
    REOCLO_CO_DEPTH: b64(String(s.depth)),
    REOCLO_CO_CLEAN: b64(String(s.clean)),
    REOCLO_CO_TAGS: b64(String(s.fetchTags)),
    REOCLO_CO_FILTER: b64(s.filter),
    REOCLO_CO_CONE: b64(String(s.sparseConeMode)),
    REOCLO_CO_SUBMODULES: b64(s.submodules),
    REOCLO_CO_LFS: b64(String(s.lfs)),
    REOCLO_CO_PERSIST: b64(String(s.persistCredentials)),
  };
  if (s.sparsePatterns.length > 0) env.REOCLO_CO_SPARSE = b64(s.sparsePatterns.join("\n") + "\n");
  if (s.token) env.REOCLO_GIT_TOKEN = s.token;
  return env;
}
