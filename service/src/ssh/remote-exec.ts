// Runs one command on a host through the fixed wrapper (wrapper.ts) and reports exactly one outcome.
import { constants as osConstants } from "node:os";
import { ENV_NAME_PATTERN, UUID_PATTERN } from "@reoclo/protocol";
import type { ClientChannel } from "ssh2";
import { SshError } from "./connect.js";
import type { PoolTarget, SshPool } from "./pool.js";
import { CANCEL_LINE, EXEC_REQUEST, encodeHeader } from "./wrapper.js";

export interface RemoteExecRequest {
  /** Shell text, run by bash (fallback sh) on the host from a private temp file; may contain secrets. */
  command: string;
  /** Values are secrets: they reach the host on stdin, never in argv or in the exec request string. */
  env: Readonly<Record<string, string>>;
  /** Data, never spliced into shell text; a directory that cannot be entered ends the run with exit code 1. */
  workingDirectory?: string | undefined;
  timeoutSeconds: number;
  /** Seconds between TERM and KILL on timeout or cancel (default 5). */
  killGraceSeconds?: number;
  /** A uuid; it names the host-side temp dir, so `pgrep -f <id>` finds the running command. */
  operationId: string;
}

export interface RemoteExecHandlers {
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
}

export type RemoteExecOutcome =
  | { kind: "exited"; exitCode: number; durationMs: number; downtimeMs?: number }
  | { kind: "timeout"; durationMs: number }
  | { kind: "cancelled"; durationMs: number }
  | { kind: "failed"; reason: string; code: string }
  | { kind: "lost"; reason: string };

export interface RemoteExecution {
  /** Never rejects. */
  readonly done: Promise<RemoteExecOutcome>;
  /** Idempotent; kills the whole remote process tree (TERM, grace, KILL). */
  cancel(): void;
  /** Output flow control: maps to the channel's pause/resume, so the host stops sending. `done` waits while paused. */
  pause(): void;
  resume(): void;
}

const DEFAULT_GRACE_SECONDS = 5;
/** After the exit status, how long trailing output may take to arrive before the outcome is reported. */
const TRAILING_OUTPUT_MS = 2_500;
/** After asking the host to kill, how long beyond the grace to wait for its exit status before giving up. */
const KILL_CONFIRM_MARGIN_MS = 10_000;

/** Rejects requests the wrapper could not carry safely; undefined when the request is fine. */
function invalidRequest(req: RemoteExecRequest, grace: number): string | undefined {
  if (!UUID_PATTERN.test(req.operationId) || req.operationId !== req.operationId.toLowerCase())
    return "operationId must be a lower-case uuid";
  if (!Number.isInteger(req.timeoutSeconds) || req.timeoutSeconds < 1)
    return "timeoutSeconds must be a positive integer";
  if (!Number.isInteger(grace) || grace < 0) return "killGraceSeconds must be a non-negative integer";
  const badName = Object.keys(req.env).find((name) => !ENV_NAME_PATTERN.test(name));
  if (badName !== undefined) return `env name ${JSON.stringify(badName)} is not a valid shell identifier`;
  const withNul = [req.command, req.workingDirectory ?? "", ...Object.values(req.env)].some((v) =>
    v.includes("\0"),
  );
  if (withNul) return "command, working directory and env values cannot contain NUL characters";
  return undefined;
}

/** Bash reports a death by signal N as 128+N; do the same when sshd reports the wrapper itself was signalled. */
function exitCodeOf(code: number | null, signal: string | undefined): number {
  if (code !== null) return code;
  const number = signal === undefined ? undefined : osConstants.signals[`SIG${signal}` as NodeJS.Signals];
  return 128 + (number ?? 0);
}

/** Starts the command through the pool; `done` settles exactly once, on the exit status or on what went wrong. */
export function runRemote(
  pool: SshPool,
  target: PoolTarget,
  req: RemoteExecRequest,
  handlers: RemoteExecHandlers,
): RemoteExecution {
  const grace = req.killGraceSeconds ?? DEFAULT_GRACE_SECONDS;
  let settle!: (outcome: RemoteExecOutcome) => void;
  const done = new Promise<RemoteExecOutcome>((resolve) => (settle = resolve));
  let channel: ClientChannel | undefined;
  let settled = false;
  let killReason: "timeout" | "cancelled" | undefined;
  let openedAt = 0;
  let exitedAt: number | undefined;
  let exitOutcome: RemoteExecOutcome | undefined;
  let paused = false;
  const timers: NodeJS.Timeout[] = [];

  const later = (ms: number, fn: () => void): void => {
    timers.push(setTimeout(fn, ms).unref());
  };
  const finish = (outcome: RemoteExecOutcome): void => {
    if (settled) return;
    settled = true;
    timers.forEach(clearTimeout);
    if (channel) {
      // Frees the pool slot even if a stray process still holds the host side open; any late output is dropped.
      channel.resume();
      channel.stderr.resume();
      channel.close();
    }
    settle(outcome);
  };
  // Output held back by pause() is ours to release, not the host's: the bound only runs while output flows.
  const awaitTrailingOutput = (outcome: RemoteExecOutcome): void =>
    later(TRAILING_OUTPUT_MS, () => (paused ? undefined : finish(outcome)));

  const requestKill = (reason: "timeout" | "cancelled"): void => {
    if (killReason !== undefined || settled) return;
    killReason = reason;
    if (!channel) return finish({ kind: reason, durationMs: 0 }); // nothing was started
    if (exitedAt !== undefined) return; // already exited on its own; the exit status stands
    channel.write(CANCEL_LINE);
    later(grace * 1000 + KILL_CONFIRM_MARGIN_MS, () =>
      finish({
        kind: "lost",
        reason: `The host did not confirm that the command was killed within ${grace} s plus a margin; its outcome is unknown.`,
      }),
    );
  };

  const attach = (ch: ClientChannel): void => {
    channel = ch;
    openedAt = performance.now();
    if (paused) {
      ch.pause();
      ch.stderr.pause();
    }
    ch.on("error", () => undefined); // a dropped connection is reported through "close" without "exit"
    ch.on("data", (chunk: Buffer) => handlers.onStdout(chunk));
    ch.stderr.on("data", (chunk: Buffer) => handlers.onStderr(chunk));
    ch.once("exit", (code: number | null, signal?: string) => {
      exitedAt = performance.now();
      const durationMs = Math.round(exitedAt - openedAt);
      const outcome: RemoteExecOutcome =
        killReason !== undefined
          ? { kind: killReason, durationMs }
          : { kind: "exited", exitCode: exitCodeOf(code, signal), durationMs };
      exitOutcome = outcome;
      timers.forEach(clearTimeout);
      ch.once("close", () => finish(outcome));
      awaitTrailingOutput(outcome);
    });
    ch.once("close", () => {
      if (exitedAt !== undefined) return;
      const where = `${target.host}:${target.port}`;
      finish({
        kind: "lost",
        reason: `The SSH connection to ${where} closed before the command reported an exit status; its outcome is unknown.`,
      });
    });
    ch.write(encodeHeader({ ...req, graceSeconds: grace }));
    later(req.timeoutSeconds * 1000, () => requestKill("timeout"));
  };

  const invalid = invalidRequest(req, grace);
  if (invalid !== undefined) {
    finish({ kind: "failed", reason: `The request cannot be run: ${invalid}.`, code: "invalid_request" });
  } else {
    pool.exec(target, EXEC_REQUEST).then(
      (ch) => {
        if (settled) {
          ch.close(); // cancelled while queued: the wrapper reads EOF instead of a header and runs nothing
          ch.resume();
          return;
        }
        attach(ch);
      },
      (err: unknown) => {
        const code = err instanceof SshError ? err.code : "ssh_error";
        const reason = err instanceof Error ? err.message : String(err);
        finish({ kind: "failed", reason, code });
      },
    );
  }

  return {
    done,
    cancel: () => requestKill("cancelled"),
    pause: () => {
      paused = true;
      channel?.pause();
      channel?.stderr.pause();
    },
    resume: () => {
      paused = false;
      channel?.resume();
      channel?.stderr.resume();
      if (exitOutcome !== undefined && !settled) awaitTrailingOutput(exitOutcome);
    },
  };
}
