import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dumpAllTables } from "./fixtures/db";
import { readEvents, startExecEnv, type ExecEnv, type SseEvent } from "./fixtures/exec-env";

// Issue 13, items 10 and 11: token-shaped strings and URL passwords that a command prints are
// masked in every answer, event and table, even when they reach the service in two chunks.

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const base62 = (n: number) => Array.from({ length: n }, () => ALPHABET[randomInt(62)]).join("");

interface Result {
  operation_id: string;
  status: string;
  exit_code: number;
  stdout: string;
  stderr: string;
}

describe("token-shaped output through the service, against a real sshd host", () => {
  let env: ExecEnv;

  beforeAll(async () => {
    env = await startExecEnv({ driver: "postgres", env: { REOCLO_SYNC_WAIT_SECONDS: "20" } });
  });
  afterAll(async () => {
    await env?.close();
  });

  const ghp = `ghp_${base62(36)}`;
  const rca = `rca_${base62(36)}`;
  const rkt = `rk_t_${base62(36)}`;
  const pat = `github_pat_${base62(22)}_${base62(59)}`;
  const password = "hunter2hunter2";
  const commandPassword = `cmd-pw-${base62(12)}`;
  const secrets = [ghp, rca, rkt, pat, password, commandPassword];

  /** Prints `label` and the first part of `secret`, then the rest 0.2 s later: two chunks. */
  const printSplit = (label: string, secret: string, at: number, redirect = "") =>
    `printf '%s%s' '${label}' '${secret.slice(0, at)}'${redirect}; sleep 0.2; ` +
    `printf '%s\\n' '${secret.slice(at)}'${redirect}`;
  // The shell joins the halves, so the command text never holds a whole token; the URL with a
  // password in the command text itself is a no-op (`:`) whose password must not be stored.
  const command = [
    `: https://deploy:${commandPassword}@git.example.com/r.git`,
    printSplit("ghp=", ghp, 10),
    printSplit("rca=", rca, 20),
    printSplit("rk=", rkt, 3),
    printSplit("url=", `https://user:${password}@example.com`, 20),
    printSplit("pat=", pat, 7, " >&2"),
  ].join("; ");
  const stdout = "ghp=***\nrca=***\nrk=***\nurl=https://user:***@example.com\n";
  const stderr = "pat=***\n";

  const expectClean = (where: string, text: string) => {
    for (const s of secrets) expect(text, `${where} holds ${s}`).not.toContain(s);
  };
  const outputOf = (events: SseEvent[], stream: string) =>
    events
      .filter((e) => e.event === "output")
      .map((e) => JSON.parse(e.data) as { stream: string; data: string })
      .filter((o) => o.stream === stream)
      .map((o) => o.data);

  it("masks tokens and URL passwords printed in halves: answer, events, polling answer, tables", async () => {
    for (const s of [ghp, rca, rkt, pat, password]) expect(command).not.toContain(s);

    // The /exec answer.
    const res = await env.post("/exec", { server_id: env.serverId, command });
    expect(res.status).toBe(200);
    const answerText = await res.text();
    expectClean("the /exec answer", answerText);
    const answer = JSON.parse(answerText) as Result;
    expect(answer).toMatchObject({ status: "completed", exit_code: 0, stdout, stderr });

    // The polling answer.
    const polled = await (await env.get(`/operations/${answer.operation_id}`)).text();
    expectClean("the polling answer", polled);
    expect((JSON.parse(polled) as { result: Result }).result).toMatchObject({ stdout, stderr });

    // The events, replayed from storage.
    const replayed = await readEvents(await env.get(`/operations/${answer.operation_id}/events`));
    expectClean("the replayed events", JSON.stringify(replayed));
    expect(outputOf(replayed, "stdout").join("")).toBe(stdout);

    // The events, live.
    const live = await readEvents(
      await env.post("/exec", { server_id: env.serverId, command }, { Accept: "text/event-stream" }),
      (e) => e.event === "end",
    );
    expectClean("the live events", JSON.stringify(live));
    const liveStdout = outputOf(live, "stdout");
    expect(liveStdout.join("")).toBe(stdout);
    expect(outputOf(live, "stderr").join("")).toBe(stderr);
    // Each first half was held from the token's start on, until the rest came 0.2 s later.
    for (const shown of ["ghp=", "rca=", "rk=", "url=https"])
      expect(
        liveStdout.some((d) => d.endsWith(shown)),
        `an event ends with ${shown}`,
      ).toBe(true);
    expect(JSON.parse(live.find((e) => e.event === "end")!.data)).toMatchObject({ stdout, stderr });

    // Every table: stored output, operation rows (tails, command text), audit.
    const dump = await dumpAllTables(env.db);
    expectClean("the tables", dump.text);
    expect(dump.text).toContain("url=https://user:***@example.com");
    expect(dump.text).toContain(": https://deploy:***@git.example.com/r.git");
  });
});
