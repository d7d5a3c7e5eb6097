import {
  InputError,
  readApiUrl,
  readAuthentication,
  runContextFrom,
  stepIdempotencyKey,
  type Authentication,
  type Environment,
  type GetInput,
} from "@reoclo/action-kit";
import { DEFAULT_MAX_TIMEOUT_SECONDS, UUID_PATTERN, type RunContext } from "@reoclo/protocol";
import { parseRef, type RefTarget } from "./refs.js";

export { InputError };

// Every input read, validated and normalised here, once; nothing else reads inputs or the
// environment. Everything is checked before any request, so a bad value never reaches a server.

export interface CheckoutSettings {
  readonly apiUrl: string;
  /** The api_key input, or the audience of an OIDC ID token to exchange for a key. */
  readonly auth: Authentication;
  readonly serverId: string;
  /** owner/name */
  readonly repository: string;
  /** <server>/<owner>/<name>.git, no credentials in it. */
  readonly repositoryUrl: string;
  /** The server's base URL (no trailing slash): the token is sent only to URLs under it. */
  readonly serverUrl: string;
  readonly target: RefTarget;
  /** The `ref` output when the target is the triggering commit (GITHUB_REF). */
  readonly triggerRef: string | undefined;
  readonly path: string;
  readonly token: string;
  readonly clean: boolean;
  /** 0 = whole history. */
  readonly depth: number;
  readonly fetchTags: boolean;
  readonly filter: string;
  readonly sparsePatterns: readonly string[];
  readonly sparseConeMode: boolean;
  readonly submodules: "false" | "true" | "recursive";
  readonly lfs: boolean;
  readonly persistCredentials: boolean;
  readonly timeoutSeconds: number;
  /** Derived from the run, attempt, job and step: a retried request never runs the checkout twice. */
  readonly idempotencyKey: string;
  readonly runId: string | undefined;
  readonly runContext: RunContext;
  readonly stepSummary: boolean;
}

const REPOSITORY = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const FILTER = /^[a-z][a-z0-9:=+.%-]*$/i;
/** Removing or reusing one of these would wreck the server: refused as `path`. */
const SYSTEM_DIRS = new Set(
  "/ /bin /boot /dev /etc /home /lib /lib32 /lib64 /media /mnt /opt /proc /root /run /sbin /srv /sys /tmp /usr /var".split(
    " ",
  ),
);

function boolean(getInput: GetInput, name: string, fallback: boolean): boolean {
  const v = getInput(name).trim().toLowerCase();
  if (v === "") return fallback;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new InputError(`Input "${name}" must be true or false.`);
}

export function checkPath(raw: string): string {
  const path = raw.trim().replace(/\/+$/, "") || "/";
  if (!path.startsWith("/"))
    throw new InputError(`Input "path" must be an absolute directory (starting with /).`);
  // eslint-disable-next-line no-control-regex -- a newline or NUL in a path is refused, not escaped
  if (/[\x00-\x1f\x7f]/.test(path)) throw new InputError(`Input "path" must not contain control characters.`);
  if (/[$`;&|<>()'"\\*?[\]{}!]/.test(path))
    throw new InputError(
      `Input "path" must not contain shell characters ($ \` ; & | < > ( ) ' " \\ * ? [ ] { } !); it reaches the server as data, but no deploy directory needs them.`,
    );
  if (path.split("/").some((part) => part === ".." || part === "."))
    throw new InputError(`Input "path" must not contain "." or ".." components.`);
  if (path.includes("//")) throw new InputError(`Input "path" must not contain "//".`);
  if (SYSTEM_DIRS.has(path))
    throw new InputError(
      `Input "path" is ${path}, a system directory; check out into a directory of its own.`,
    );
  return path;
}

export function readSettings(getInput: GetInput, environment: Environment): CheckoutSettings {
  const g = (name: string) => environment[name] ?? "";
  const required = (name: string) => {
    const v = getInput(name).trim();
    if (!v) throw new InputError(`Input "${name}" is required.`);
    return v;
  };
  const serverId = required("server_id");
  if (!UUID_PATTERN.test(serverId)) throw new InputError(`Input "server_id" must be a server id (a UUID).`);
  const apiUrl = readApiUrl(getInput, environment);
  const auth = readAuthentication(getInput, environment, apiUrl);

  const repository = getInput("repository").trim() || g("GITHUB_REPOSITORY");
  if (
    !REPOSITORY.test(repository) ||
    repository.startsWith("-") ||
    repository.split("/").some((p) => /^\.+$/.test(p))
  )
    throw new InputError(`Input "repository" must be owner/name (letters, digits, ".", "_" and "-").`);
  const serverUrl = (
    getInput("github_server_url").trim() ||
    g("GITHUB_SERVER_URL") ||
    "https://github.com"
  ).replace(/\/+$/, "");
  let parsedServer: URL;
  try {
    parsedServer = new URL(serverUrl);
  } catch {
    throw new InputError(`Input "github_server_url" must be an http(s) URL.`);
  }
  if (
    !/^https?:$/.test(parsedServer.protocol) ||
    parsedServer.username ||
    parsedServer.password ||
    parsedServer.search ||
    parsedServer.hash
  )
    throw new InputError(
      `Input "github_server_url" must be an http(s) URL without credentials, query or fragment.`,
    );

  const refInput = getInput("ref").trim();
  let target = parseRef(refInput);
  if ("problem" in target)
    throw new InputError(
      `Input "ref" ${target.problem}: it must be a branch, tag, refs/… name or a commit SHA.`,
    );
  let triggerRef: string | undefined;
  if (
    target.kind === "default" &&
    repository.toLowerCase() === g("GITHUB_REPOSITORY").toLowerCase() &&
    /^[0-9a-f]{40,64}$/.test(g("GITHUB_SHA"))
  ) {
    // Like actions/checkout: with no ref, the commit that triggered this workflow.
    target = { kind: "sha", sha: g("GITHUB_SHA") };
    triggerRef = g("GITHUB_REF") || undefined;
  }

  const depthText = getInput("depth").trim() || "1";
  if (!/^\d+$/.test(depthText) || Number(depthText) > 1_000_000)
    throw new InputError(`Input "depth" must be a whole number (0 for the whole history).`);
  const filter = getInput("filter").trim();
  if (filter && !FILTER.test(filter))
    throw new InputError(
      `Input "filter" must be a git object filter such as blob:none, tree:0 or blob:limit=1m.`,
    );
  const sparsePatterns = getInput("sparse_checkout")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  if (sparsePatterns.some((p) => p.includes("\0")))
    throw new InputError(`Input "sparse_checkout" must not contain NUL characters.`);
  const submodules = getInput("submodules").trim().toLowerCase() || "false";
  if (submodules !== "false" && submodules !== "true" && submodules !== "recursive")
    throw new InputError(`Input "submodules" must be false, true or recursive.`);
  const timeoutText = getInput("timeout").trim() || "600";
  const timeoutSeconds = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText) || timeoutSeconds < 1 || timeoutSeconds > DEFAULT_MAX_TIMEOUT_SECONDS)
    throw new InputError(
      `Input "timeout" must be a whole number of seconds between 1 and ${DEFAULT_MAX_TIMEOUT_SECONDS}.`,
    );

  return {
    apiUrl,
    auth,
    serverId,
    repository,
    repositoryUrl: `${serverUrl}/${repository}.git`,
    serverUrl,
    target,
    triggerRef,
    path: checkPath(getInput("path") || "/opt/deploy/workspace"),
    token: getInput("token").trim(),
    clean: boolean(getInput, "clean", true),
    depth: Number(depthText),
    fetchTags: boolean(getInput, "fetch_tags", false),
    filter,
    sparsePatterns,
    sparseConeMode: boolean(getInput, "sparse_checkout_cone_mode", true),
    submodules,
    lfs: boolean(getInput, "lfs", false),
    persistCredentials: boolean(getInput, "persist_credentials", false),
    timeoutSeconds,
    idempotencyKey: stepIdempotencyKey("gha-co", environment, serverId),
    runId: g("GITHUB_RUN_ID") || undefined,
    runContext: runContextFrom(environment),
    stepSummary: g("GITHUB_STEP_SUMMARY") !== "",
  };
}
