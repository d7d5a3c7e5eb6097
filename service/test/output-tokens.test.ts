import { randomInt } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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

  /**
   * Prints `label` and the first part of `secret`, then, once `gate` returns, the rest: two
   * chunks. The gate is a pause, or (live) a file the test creates once it saw the first half.
   */
  const printSplit = (label: string, secret: string, at: number, gate: string, redirect = "") =>
    `printf '%s%s' '${label}' '${secret.slice(0, at)}'${redirect}; ${gate}; ` +
    `printf '%s\\n' '${secret.slice(at)}'${redirect}`;
  const splits = [
    { label: "ghp=", secret: ghp, at: 10 },
    { label: "rca=", secret: rca, at: 20 },
    { label: "rk=", secret: rkt, at: 3 },
    { label: "url=", secret: `https://user:${password}@example.com`, at: 20, shown: "url=https" },
    { label: "pat=", secret: pat, at: 7, redirect: " >&2" },
  ];
  // The shell joins the halves, so the command text never holds a whole token; the URL with a
  // password in the command text itself is a no-op (`:`) whose password must not be stored.
  const commandWith = (gate: (i: number) => string) =>
    [
      `: https://deploy:${commandPassword}@git.example.com/r.git`,
      ...splits.map((s, i) => printSplit(s.label, s.secret, s.at, gate(i), s.redirect)),
    ].join("; ");
  const command = commandWith(() => "sleep 0.2");
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

    // The events, live: each second half is printed only once the test saw an event ending with
    // the first half's label, so the first half was sent on its own, held from the token's start.
    const gates = mkdtempSync(path.join(tmpdir(), "reoclo-gates-"));
    chmodSync(gates, 0o777);
    try {
      const gate = (i: number) => `while [ ! -e ${gates}/${i} ]; do sleep 0.02; done`;
      let next = 0;
      const live = await readEvents(
        await env.post(
          "/exec",
          { server_id: env.serverId, command: commandWith(gate) },
          { Accept: "text/event-stream" },
        ),
        (e) => {
          const split = splits[next];
          if (e.event === "output" && split) {
            const data = (JSON.parse(e.data) as { data: string }).data;
            if (data.endsWith(split.shown ?? split.label))
              writeFileSync(path.join(gates, String(next++)), "");
          }
          return e.event === "end";
        },
      );
      expect(next, "every first half came as an event of its own").toBe(splits.length);
      expectClean("the live events", JSON.stringify(live));
      expect(outputOf(live, "stdout").join("")).toBe(stdout);
      expect(outputOf(live, "stderr").join("")).toBe(stderr);
      expect(JSON.parse(live.find((e) => e.event === "end")!.data)).toMatchObject({ stdout, stderr });
    } finally {
      rmSync(gates, { recursive: true, force: true });
    }

    // Every table: stored output, operation rows (tails, command text), audit.
    const dump = await dumpAllTables(env.db);
    expectClean("the tables", dump.text);
    expect(dump.text).toContain("url=https://user:***@example.com");
    expect(dump.text).toContain(": https://deploy:***@git.example.com/r.git");
  });
});
