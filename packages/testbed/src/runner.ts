// Runs the bundled action as the GitHub runner does: a node process with INPUT_* variables
// (action.yml defaults applied), GITHUB_OUTPUT / GITHUB_STATE / GITHUB_STEP_SUMMARY files,
// and for the post step the saved state handed back as STATE_* variables. The bundle by default;
// its source (through tsx) when a test needs the shared packages as they are before a rebuild.
// A job with `permissions: id-token: write` also gets the runner's ID token endpoint
// (startIdTokenService), so the actions can be tested keyless (issue 18).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { listenOnLoopback } from "./net";

/** The repository's root: this workspace is packages/testbed in it. */
const REPO_ROOT = join(fileURLToPath(new URL("..", import.meta.url)), "..", "..", "/");

/** An action of this repository by its folder name (actions/<name>). */
export function actionDir(name: string): string {
  return join(REPO_ROOT, "actions", name, "/");
}

/**
 * How a step runs: `bundle` is what the runner runs (action.yml's dist files); `source` runs the
 * same entry from src/ through tsx, to test changes of the shared packages before the bundles
 * are rebuilt (src/main.ts and src/post.ts are what ncc builds into dist/main and dist/post).
 */
export type ActionBuild = "bundle" | "source";

/** `runs.main` / `runs.post` and the inputs' defaults, read from action.yml itself. */
function readAction(dir: string, build: ActionBuild) {
  const doc = parse(readFileSync(join(dir, "action.yml"), "utf8")) as {
    inputs?: Record<string, { default?: string | number | boolean }>;
    runs: Record<string, string | undefined>;
  };
  const defaults: Record<string, string> = {};
  for (const [name, spec] of Object.entries(doc.inputs ?? {}))
    if (spec.default !== undefined) defaults[name] = String(spec.default);
  const entry = (kind: "main" | "post") => {
    const file = doc.runs[kind];
    if (!file) throw new Error(`${dir}action.yml names no runs.${kind}`);
    return build === "bundle" ? [join(dir, file)] : ["--import", "tsx", join(dir, "src", `${kind}.ts`)];
  };
  return { defaults, entry };
}

/** Parses the `name<<DELIM\nvalue\nDELIM` blocks @actions/core writes to file commands. */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? "");
    if (!m?.[1] || !m[2]) continue;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) value.push(lines[i] ?? "");
    out[m[1]] = value.join("\n");
  }
  return out;
}

/** Makes the ID token the job asked for; `audience` is undefined when the request named none. */
export type MintIdToken = (audience: string | undefined) => Promise<string>;

/**
 * The runner's ID token endpoint, as GitHub serves it to a job with `permissions: id-token:
 * write`: ACTIONS_ID_TOKEN_REQUEST_URL (with a query already, so @actions/core appends
 * `&audience=…`), which answers a GET bearing ACTIONS_ID_TOKEN_REQUEST_TOKEN with
 * `{"value": "<jwt>"}`, and 401 to anything else.
 */
export interface IdTokenService {
  /** ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN, for a step's environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The `audience` of every token handed out, in order (undefined: none asked). */
  readonly audiences: (string | undefined)[];
  /** The tokens handed out, in order (to look for them in a log). */
  readonly issued: string[];
  /** Requests refused for a missing or wrong bearer token. */
  readonly refused: number;
  close(): Promise<void>;
}

export async function startIdTokenService(mint: MintIdToken): Promise<IdTokenService> {
  const requestToken = randomBytes(24).toString("hex");
  const audiences: (string | undefined)[] = [];
  const issued: string[] = [];
  let refused = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://runner");
    if (req.method !== "GET" || url.pathname !== "/_apis/idtoken") return res.writeHead(404).end();
    if (req.headers.authorization !== `Bearer ${requestToken}`) {
      refused++;
      return res.writeHead(401, { "Content-Type": "application/json" }).end('{"message":"Unauthorized"}');
    }
    const audience = url.searchParams.get("audience") ?? undefined;
    audiences.push(audience);
    mint(audience).then(
      (value) => {
        issued.push(value);
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ value }));
      },
      (err: unknown) => {
        res
          .writeHead(500, { "Content-Type": "application/json" })
          .end(JSON.stringify({ message: String(err) }));
      },
    );
  });
  const port = await listenOnLoopback(server);
  return {
    env: {
      ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${port}/_apis/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
    },
    audiences,
    issued,
    get refused() {
      return refused;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface WorkspaceOptions {
  /** The job may request ID tokens (`permissions: id-token: write`): every step gets this endpoint. */
  idTokens?: IdTokenService;
}

export interface ActionRun {
  readonly child: ChildProcess;
  /** Everything the step wrote to its log so far (stdout and stderr, in arrival order). */
  log(): string;
  /** Resolves once the log (from character `from` on) matches. */
  waitForLog(pattern: RegExp, from?: number): Promise<void>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  outputs(): Record<string, string>;
  state(): Record<string, string>;
  summary(): string;
}

export class Workspace {
  readonly #action: ReturnType<typeof readAction>;
  readonly #idTokens: IdTokenService | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), "reoclo-runner-"));
  /** Each workspace is its own workflow run, so its steps get their own idempotency keys. */
  readonly runId = String(Math.floor(Math.random() * 1e12));
  readonly files = {
    output: join(this.dir, "output"),
    state: join(this.dir, "state"),
    summary: join(this.dir, "summary"),
  };

  /** A fresh runner workspace for the action in `dir` (see actionDir), run as `build`. */
  constructor(dir: string, build: ActionBuild = "bundle", opts: WorkspaceOptions = {}) {
    this.#action = readAction(dir, build);
    this.#idTokens = opts.idTokens;
    for (const f of Object.values(this.files)) writeFileSync(f, "");
  }

  /** Starts the main step (or the post step, which gets main's saved state). */
  start(kind: "main" | "post", inputs: Record<string, string>, env: Record<string, string> = {}): ActionRun {
    const all = { ...this.#action.defaults, ...inputs };
    const stateVars =
      kind === "post"
        ? Object.fromEntries(Object.entries(this.state()).map(([k, v]) => [`STATE_${k}`, v]))
        : {};
    const child = spawn(process.execPath, this.#action.entry(kind), {
      // tsx (source builds) is resolved from the repository root, as `npm start` resolves it.
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        GITHUB_ACTIONS: "true",
        GITHUB_RUN_ID: this.runId,
        GITHUB_RUN_ATTEMPT: "1",
        GITHUB_JOB: "deploy",
        GITHUB_ACTION: "__reoclo_run",
        GITHUB_REPOSITORY: "acme/web",
        GITHUB_WORKFLOW: "deploy",
        GITHUB_EVENT_NAME: "push",
        GITHUB_ACTOR: "octocat",
        GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
        GITHUB_REF: "refs/heads/main",
        GITHUB_OUTPUT: this.files.output,
        GITHUB_STATE: this.files.state,
        GITHUB_STEP_SUMMARY: this.files.summary,
        ...Object.fromEntries(Object.entries(all).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
        ...stateVars,
        ...this.#idTokens?.env,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    const waiters: { pattern: RegExp; from: number; resolve: () => void }[] = [];
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      for (const w of [...waiters]) {
        if (w.pattern.test(log.slice(w.from))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    return {
      child,
      log: () => log,
      waitForLog: (pattern, from = 0) =>
        pattern.test(log.slice(from))
          ? Promise.resolve()
          : new Promise<void>((resolve, reject) => {
              waiters.push({ pattern, from, resolve });
              void exited.then(() => reject(new Error(`the step exited before logging ${pattern}:\n${log}`)));
            }),
      exited,
      outputs: () => this.outputs(),
      state: () => this.state(),
      summary: () => readFileSync(this.files.summary, "utf8"),
    };
  }

  outputs(): Record<string, string> {
    return parseFileCommands(readFileSync(this.files.output, "utf8"));
  }

  state(): Record<string, string> {
    return parseFileCommands(readFileSync(this.files.state, "utf8"));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
