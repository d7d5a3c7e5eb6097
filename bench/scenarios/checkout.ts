import { randomBytes, randomInt } from "node:crypto";
import { access, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  API_BASE_PATH,
  PUBLISHED_CLIENT_POLL_INTERVAL_MS,
  PUBLISHED_USER_AGENTS,
  operationPath,
} from "@reoclo/protocol";
import { startGitServer, type GitServer } from "@reoclo/testbed/git-server";
import { actionDir, Workspace } from "@reoclo/testbed/runner";
import { note, summarise, type Row, type Scenario } from "../lib";
import { startTestBed, type Service } from "../testbed";

// Checkout of a small repository (acme/app from the real `git http-backend` fixture, branch main,
// depth 1) onto a real sshd host through the real service, two ways, alternating, in one run:
//  - ours: the bundled reoclo/checkout action run as the GitHub runner runs it (a node process
//    with INPUT_* and GITHUB_* variables), from process start to exit: one operation running
//    the whole checkout script. This includes Node's start-up and the bundle's load.
//  - the reference: the same checkout done the way the published reoclo/checkout@v1 does it,
//    six `POST /exec` calls one after the other (JSON answers, polling `GET /operations/{id}`
//    when one answers `running`), timed in this process from the first request to the last
//    answer: no process start at all.
// Each round checks out into fresh directories under /tmp (the host's user is a user of this
// machine), removed after the round; the first rounds are a discarded warm-up (page cache, the
// service's JIT, its pooled SSH connection to the host, git's own start-up on the host). Each
// action run is its own workflow run (a distinct GITHUB_RUN_ID), so its Idempotency-Key is new
// and the checkout really runs again.

const ACTION = path.join(actionDir("checkout"), "dist/main/index.js");
const REPOSITORY = "acme/app";
const REF = "main";
const OPERATION_LINE = /\[reoclo\] operation ([0-9a-f-]{36})/;

const ms = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e6;
const tail = (text: string) => JSON.stringify(text.trimEnd().split("\n").slice(-5).join("\n"));
/** POSIX single quotes, as a caller building a command line would. */
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

interface OursRun {
  ms: number;
  failure?: string;
  operationId?: string;
}

/** One step of the bundled action, start to exit; the result is checked after the clock stops. */
async function runOurs(
  svc: Service,
  git: GitServer,
  dir: string,
  runId: number,
  inputs: Record<string, string> = {},
): Promise<OursRun> {
  const w = new Workspace(actionDir("checkout")); // reads action.yml: before the clock starts
  try {
    const started = process.hrtime.bigint();
    const step = w.start(
      "main",
      {
        api_key: svc.key,
        server_id: svc.serverIds[0] ?? "",
        api_url: `http://127.0.0.1:${svc.port}`,
        github_server_url: git.url,
        repository: REPOSITORY,
        token: git.token,
        ref: REF,
        path: dir,
        depth: "1",
        ...inputs,
      },
      { GITHUB_RUN_ID: String(runId) },
    );
    const code = await step.exited;
    const elapsed = ms(started);
    const operationId = OPERATION_LINE.exec(step.log())?.[1];
    if (code !== 0) return { ms: elapsed, failure: `exited with ${code}, log ends ${tail(step.log())}` };
    const outputs = step.outputs();
    if (outputs.commit_sha !== git.repos.app.mainSha) {
      return {
        ms: elapsed,
        failure: `exited 0 but GITHUB_OUTPUT holds commit_sha ${JSON.stringify(outputs.commit_sha)}`,
      };
    }
    if (!operationId) return { ms: elapsed, failure: `exited 0 but logged no operation id` };
    return { ms: elapsed, operationId };
  } finally {
    w.remove();
  }
}

interface V1Answer {
  operation_id?: string;
  status?: string;
  exit_code?: number;
  stdout?: string;
  stderr?: string;
  duration_ms?: number;
  result?: V1Answer;
}

/** The published v1 client: JSON in and out, poll while `running`; rejects unless the command exits 0. */
async function v1Exec(svc: Service, command: string): Promise<V1Answer> {
  const base = `http://127.0.0.1:${svc.port}`;
  const headers = {
    Authorization: `Bearer ${svc.key}`,
    Accept: "application/json",
    "User-Agent": PUBLISHED_USER_AGENTS.checkout,
  };
  const res = await fetch(`${base}${API_BASE_PATH}/exec`, {
    method: "POST",
    headers: { ...headers, "Content-Type": "application/json" },
    body: JSON.stringify({ server_id: svc.serverIds[0], command }),
  });
  let answer = (await res.json()) as V1Answer;
  if (res.status !== 200) throw new Error(`POST /exec answered ${res.status}: ${JSON.stringify(answer)}`);
  while (answer.status === "running") {
    await delay(PUBLISHED_CLIENT_POLL_INTERVAL_MS);
    const poll = await fetch(`${base}${operationPath(answer.operation_id ?? "")}`, { headers });
    const op = (await poll.json()) as V1Answer;
    if (poll.status !== 200) throw new Error(`GET operation answered ${poll.status}: ${JSON.stringify(op)}`);
    answer =
      op.status === "running" ? op : { ...op.result, operation_id: op.operation_id, status: op.status };
  }
  if (answer.status !== "completed" || answer.exit_code !== 0) {
    throw new Error(
      `${JSON.stringify(command)} ended ${answer.status} with exit code ${answer.exit_code}: ${tail(answer.stderr ?? "")}`,
    );
  }
  return answer;
}

/** The six calls of reoclo/checkout@v1 (clean checkout, depth 1, token in the fetch URL). */
async function runReference(svc: Service, git: GitServer, dir: string) {
  const url = `${git.url}/${REPOSITORY}.git`;
  const withToken = url.replace("://", `://x-access-token:${git.token}@`);
  const q = sh(dir);
  const started = process.hrtime.bigint();
  const answers: V1Answer[] = [];
  answers.push(await v1Exec(svc, `rm -rf ${q}`));
  answers.push(await v1Exec(svc, `test -d ${q}/.git && echo yes || echo no`));
  answers.push(
    await v1Exec(svc, `mkdir -p ${q} && cd ${q} && git init -q && git remote add origin ${sh(url)}`),
  );
  answers.push(await v1Exec(svc, `cd ${q} && git fetch --depth 1 ${sh(withToken)} ${REF}`));
  answers.push(await v1Exec(svc, `cd ${q} && git checkout -q FETCH_HEAD`));
  const head = await v1Exec(svc, `cd ${q} && git rev-parse HEAD`);
  answers.push(head);
  const elapsed = ms(started);
  if (answers[1]?.stdout?.trim() !== "no") {
    throw new Error(`v1 reference: the fresh ${dir} already held a repository`);
  }
  if (head.stdout?.trim() !== git.repos.app.mainSha) {
    throw new Error(`v1 reference: HEAD is ${JSON.stringify(head.stdout)}, not ${git.repos.app.mainSha}`);
  }
  return { ms: elapsed, hostMs: answers.reduce((sum, a) => sum + (a.duration_ms ?? 0), 0) };
}

/** The duration_ms the service recorded for one operation (read after the clock stopped). */
async function durationOf(svc: Service, operationId: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${svc.port}${operationPath(operationId)}`, {
    headers: { Authorization: `Bearer ${svc.key}`, Accept: "application/json" },
  });
  const op = (await res.json()) as V1Answer;
  const d = op.result?.duration_ms;
  if (res.status !== 200 || typeof d !== "number") {
    throw new Error(`GET operation ${operationId}: ${res.status} ${JSON.stringify(op)}`);
  }
  return d;
}

export const checkout: Scenario = {
  name: "checkout",
  async run({ quick }) {
    try {
      await access(ACTION);
    } catch {
      throw new Error(`${ACTION} is missing: build it with \`npm run build -w actions/checkout\``);
    }
    const bed = await startTestBed({ name: "checkout", hosts: 1, outputCapBytes: 1024 * 1024 });
    try {
      const svc = bed.service;
      const git = await startGitServer();
      bed.defer(() => git.close());
      // Top-level directories the host's user creates in /tmp; this process removes them (it is
      // that user or root), after each round and, whatever happens, at the end.
      const prefix = `/tmp/reoclo-bench-checkout-${randomBytes(4).toString("hex")}`;
      const made = new Set<string>();
      const cleanUp = () => Promise.all([...made].map((d) => rm(d, { recursive: true, force: true })));
      bed.defer(cleanUp);
      const dirFor = (kind: string, i: number) => {
        const top = `${prefix}-${kind}-${i}`;
        made.add(top);
        return `${top}/ws`;
      };

      const warmUp = quick ? 1 : 3;
      const runs = quick ? 3 : 20;
      const firstRunId = randomInt(1e9, 2e9);
      const ours: number[] = [];
      const ref: number[] = [];
      const oursHost: number[] = [];
      const refHost: number[] = [];
      const floor: number[] = [];
      const failures: string[] = [];
      const operationIds = new Set<string>();

      const began = performance.now();
      for (let i = 0; i < warmUp + runs; i++) {
        const measured = i >= warmUp;
        const doOurs = async () => {
          const o = await runOurs(svc, git, dirFor("ours", i), firstRunId + i);
          if (o.failure === undefined && o.operationId !== undefined && operationIds.has(o.operationId)) {
            // A replay (a repeated Idempotency-Key) answers an earlier operation: nothing ran.
            o.failure = `exited 0 but reports operation ${o.operationId}, not a new one`;
          }
          if (o.failure !== undefined) {
            // A warm-up that fails means the set-up is broken: no figure would mean anything.
            if (!measured) throw new Error(`the checkout action's warm-up run ${i} failed: ${o.failure}`);
            failures.push(`round ${i} (${o.ms.toFixed(0)} ms) ${o.failure}`);
            return;
          }
          operationIds.add(o.operationId ?? "");
          if (!measured) return;
          ours.push(o.ms);
          oursHost.push(await durationOf(svc, o.operationId ?? ""));
        };
        const doRef = async () => {
          const r = await runReference(svc, git, dirFor("v1", i));
          if (!measured) return;
          ref.push(r.ms);
          refHost.push(r.hostMs);
        };
        // Alternate which goes first, so neither always runs right after the other.
        if (i % 2 === 0) {
          await doOurs();
          await doRef();
        } else {
          await doRef();
          await doOurs();
        }
        // For scale: the same action failing on its inputs before any request (Node start-up,
        // bundle load, exit), the part of ours the in-process reference does not pay.
        const f = await runOurs(svc, git, dirFor("floor", i), firstRunId + i, { api_key: "" });
        if (f.failure === undefined) throw new Error("the checkout action ran without an api_key");
        if (measured) floor.push(f.ms);
        await cleanUp();
        made.clear();
      }

      const seconds = ((performance.now() - began) / 1000).toFixed(1);
      if (failures.length > 0) {
        note("checkout", `${failures.length} of ${runs} action runs failed: ${failures.join("; ")}`);
      }
      if (ours.length === 0) throw new Error(`every one of the ${runs} checkout action runs failed`);
      const median = (xs: number[]) => summarise(xs, "ms").median.toFixed(0);
      note(
        "checkout",
        `${warmUp} + ${runs} rounds in ${seconds} s; medians: duration_ms the service ` +
          `reports for our one operation ${median(oursHost)} ms, summed over v1's six ${median(refHost)} ms; ` +
          `the action exiting on a missing input (process start + bundle load) ${median(floor)} ms`,
      );
      return [
        {
          scenario: `checkout ${REPOSITORY}@${REF} depth 1: our action, 1 operation, process start (Node + bundle load) to exit (${failures.length} of ${runs} failed)`,
          ours: summarise(ours, "ms"),
          reference: summarise(ref, "ms"),
          referenceName: "v1: 6 sequential /exec calls, in-process, no process start",
          higherIsBetter: false,
        } satisfies Row,
      ];
    } finally {
      await bed.close();
    }
  },
};
