import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseFileCommands } from "@reoclo/testbed/runner";
import type { TestHost } from "@reoclo/testbed/sshd";
import { note, summarise, type Row, type Scenario } from "../lib";
import { opensshArgs, startTestBed } from "../testbed";

// Wall time of one step of the bundled reoclo/run action, from process start to exit, run as
// the GitHub runner runs it (`node actions/run/dist/main/index.js` with INPUT_* and GITHUB_*
// variables and empty file-command files), against the real service and a real sshd host,
// next to the same command run with a fresh OpenSSH `ssh` process, in the same run. The two
// alternate, one of each per round; the first rounds are a discarded warm-up (page cache, the
// service's JIT and its pooled SSH connection to the host). Each step is its own workflow run
// (a distinct GITHUB_RUN_ID), so its Idempotency-Key is new and the command really runs again.

const REPO = new URL("../../", import.meta.url).pathname;
const ACTION = "actions/run/dist/main/index.js";
const COMMAND = "echo hi";

interface Exit {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, in arrival order. */
  log: string;
  stdout: string;
}

/** Spawns a process and resolves once it has exited and its output is read. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => ((stdout += s), (log += s)));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (log += s));
    child.once("error", reject);
    child.once("close", (code, signal) =>
      resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, code, signal, log, stdout }),
    );
  });
}

const tail = (text: string) => JSON.stringify(text.trimEnd().split("\n").slice(-5).join("\n"));

export const runAction: Scenario = {
  name: "run-action",
  async run({ quick }) {
    try {
      await access(path.join(REPO, ACTION));
    } catch {
      throw new Error(`${ACTION} is missing: build it with \`npm run build -w actions/run\``);
    }
    const bed = await startTestBed({ name: "run-action", hosts: 1, outputCapBytes: 1024 * 1024 });
    try {
      const host = bed.hosts[0] as TestHost;
      const keyFile = bed.keyFiles[0] ?? "";
      const svc = bed.service;
      const dir = await mkdtemp(path.join(os.tmpdir(), "reoclo-bench-runner-"));
      bed.defer(() => rm(dir, { recursive: true, force: true }));

      const warmUp = quick ? 1 : 3;
      const runs = quick ? 5 : 30;
      // Every step its own workflow run: a GitHub-like numeric run id, new for each step.
      const firstRunId = randomInt(1e9, 2e9);
      const ours: number[] = [];
      const ref: number[] = [];
      const nodeAlone: number[] = [];
      const hostSide: number[] = [];
      const failures: string[] = [];
      const operationIds = new Set<string>();

      const step = async (i: number): Promise<Exit & { failure?: string }> => {
        const files = {
          GITHUB_OUTPUT: path.join(dir, `output-${i}`),
          GITHUB_STATE: path.join(dir, `state-${i}`),
          GITHUB_STEP_SUMMARY: path.join(dir, `summary-${i}`),
        };
        for (const f of Object.values(files)) await writeFile(f, "");
        const exit = await timed(process.execPath, [ACTION], {
          PATH: process.env.PATH ?? "",
          GITHUB_ACTIONS: "true",
          GITHUB_RUN_ID: String(firstRunId + i),
          GITHUB_RUN_ATTEMPT: "1",
          GITHUB_JOB: "deploy",
          GITHUB_ACTION: "__reoclo_run",
          GITHUB_REPOSITORY: "acme/web",
          GITHUB_WORKFLOW: "bench",
          GITHUB_EVENT_NAME: "push",
          GITHUB_ACTOR: "octocat",
          GITHUB_SHA: "0123456789abcdef0123456789abcdef01234567",
          GITHUB_REF: "refs/heads/main",
          ...files,
          INPUT_API_KEY: svc.key,
          INPUT_SERVER_ID: svc.serverIds[0] ?? "",
          INPUT_COMMAND: COMMAND,
          INPUT_TIMEOUT: "60",
          INPUT_API_URL: `http://127.0.0.1:${svc.port}`,
        });
        const raw = await readFile(files.GITHUB_OUTPUT, "utf8");
        const outputs = parseFileCommands(raw);
        let failure: string | undefined;
        if (exit.code !== 0) {
          failure = `exited with ${exit.code ?? exit.signal}, log ends ${tail(exit.log)}`;
        } else if (!/^stdout<</m.test(raw) || outputs.stdout?.trim() !== "hi" || outputs.exit_code !== "0") {
          failure = `exited 0 but GITHUB_OUTPUT holds stdout ${JSON.stringify(outputs.stdout)}, exit_code ${JSON.stringify(outputs.exit_code)}`;
        } else if (!outputs.operation_id || operationIds.has(outputs.operation_id)) {
          // A replay (a repeated Idempotency-Key) answers an earlier operation: nothing ran.
          failure = `exited 0 but reports operation ${JSON.stringify(outputs.operation_id)}, not a new one`;
        } else {
          operationIds.add(outputs.operation_id);
          hostSide.push(Number(outputs.duration_ms));
        }
        return { ...exit, ...(failure === undefined ? {} : { failure }) };
      };

      const began = performance.now();
      for (let i = 0; i < warmUp + runs; i++) {
        const measured = i >= warmUp;
        const o = await step(i);
        if (o.failure !== undefined) {
          // A warm-up that fails means the set-up is broken: no figure would mean anything.
          if (!measured) throw new Error(`the run action's warm-up step ${i} failed: ${o.failure}`);
          failures.push(`step ${i} (${o.ms.toFixed(0)} ms) ${o.failure}`);
        } else if (measured) {
          ours.push(o.ms);
        }

        const r = await timed("ssh", opensshArgs(host, keyFile, COMMAND), process.env);
        if (r.code !== 0 || r.stdout !== "hi\n") {
          throw new Error(`ssh ${COMMAND} exited with ${r.code ?? r.signal}, printed ${tail(r.log)}`);
        }
        // Node's own start-up and exit, for scale: the floor of any JavaScript action.
        const n = await timed(process.execPath, ["-e", ""], { PATH: process.env.PATH ?? "" });
        if (!measured) continue;
        ref.push(r.ms);
        nodeAlone.push(n.ms);
      }

      const seconds = ((performance.now() - began) / 1000).toFixed(1);
      if (failures.length > 0) {
        note("run-action", `${failures.length} of ${runs} action steps failed: ${failures.join("; ")}`);
      }
      if (ours.length === 0) throw new Error(`every one of the ${runs} run action steps failed`);
      const median = (xs: number[]) => summarise(xs, "ms").median.toFixed(0);
      note(
        "run-action",
        `${warmUp} + ${runs} rounds in ${seconds} s; for scale: node -e "" ${median(nodeAlone)} ms, ` +
          `the command on the host (duration_ms) ${median(hostSide)} ms (medians)`,
      );
      return [
        {
          scenario: `run action step, ${COMMAND}, start to exit (${failures.length} of ${runs} failed)`,
          ours: summarise(ours, "ms"),
          reference: summarise(ref, "ms"),
          referenceName: `cold OpenSSH ssh host ${COMMAND}`,
          higherIsBetter: false,
        } satisfies Row,
      ];
    } finally {
      await bed.close();
    }
  },
};
