// Runs one command on a host through the fixed wrapper (wrapper.ts) and reports exactly one outcome.
import { constants as osConstants } from "node:os";
import { ENV_NAME_PATTERN, UUID_PATTERN } from "@reoclo/protocol";
import type { ClientChannel } from "ssh2";
import { SshError } from "./connect.js";
import type { PoolTarget, SshPool } from "./pool.js";
import {
  ATTACH_GONE_SIGNAL,
  ATTACH_UNRECORDED_SIGNAL,
  CANCEL_LINE,
  EXEC_REQUEST,
  PING_LINE,
  encodeAttach,
  encodeHeader,
  encodeRelease,
} from "./wrapper.js";

export interface ReattachSettings {
  /**
   * How long after the connection dropped (or, for a takeover, after the host last heard from a
   * service) to keep trying to reach the host again before the operation is lost. The host gives the
   * command up (kills it, removes its directory) a little sooner, so it never outlives the operation.
   */
  boundMs: number;
  /** Bytes of each stream the host keeps for an attach (the stored output's cap). */
  copyCapBytes: number;
}

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
  /**
   * The command outlives a dropped connection: the host keeps its output and exit status, and this
   * reconnects and resumes from the bytes it has. Without it, a drop ends the run `lost` at once.
   */
  reattach?: ReattachSettings | undefined;
}

/** Byte offsets into the raw output of each stream, as the host printed it. */
export interface ByteOffsets {
  stdout: number;
  stderr: number;
}

export type ConnectionEvent =
  | { kind: "dropped"; reason: string }
  /** Attached again: `afterMs` since the drop was noticed; output resumes from `from`. */
  | { kind: "reattached"; afterMs: number; from: ByteOffsets };

export interface RemoteExecHandlers {
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
  /** The connection dropped, or the host was attached to again. */
  onConnection?(event: ConnectionEvent): void;
}

export type RemoteExecOutcome =
  | { kind: "exited"; exitCode: number; durationMs: number; downtimeMs?: number }
  | { kind: "timeout"; durationMs: number }
  | { kind: "cancelled"; durationMs: number }
  | { kind: "failed"; reason: string; code: string }
  | { kind: "lost"; reason: string }
  /** No longer followed here (the instance is stopping): the command runs on, for another instance to attach. */
  | { kind: "detached" };

export interface RemoteExecution {
  /** Never rejects. */
  readonly done: Promise<RemoteExecOutcome>;
  /** Idempotent; kills the whole remote process tree (TERM, grace, KILL). */
  cancel(): void;
  /** Output flow control: maps to the channel's pause/resume, so the host stops sending. `done` waits while paused. */
  pause(): void;
  resume(): void;
  /** Whether another instance can attach to it (it was started with `reattach`). */
  readonly reattachable: boolean;
  /** Raw bytes of each stream received so far (where an attach resumes). */
  readonly received: ByteOffsets;
  /** Stops following it without killing it; `done` resolves `detached`. Only when reattachable. */
  detach(): void;
  /** Its end is stored: the host may remove its directory (sent with the next request to that host). */
  release(): void;
}

const DEFAULT_GRACE_SECONDS = 5;
/** After the exit status, how long trailing output may take to arrive before the outcome is reported. */
const TRAILING_OUTPUT_MS = 2_500;
/** After asking the host to kill, how long beyond the grace to wait for its exit status before giving up. */
const KILL_CONFIRM_MARGIN_MS = 10_000;
/** Reconnect attempts: 250 ms, doubling, at most 5 s apart. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5_000;
/** Releases wait this long for a request to the same host to ride on, then go on their own. */
const RELEASE_FLUSH_MS = 1_000;
/** At most this many releases ride on one request header. */
const RELEASES_PER_REQUEST = 200;

/**
 * Seconds the host keeps a command without hearing from a service: the bound, less the kill grace
 * and a margin, so the host has killed it by the time a service gives up and settles it `lost`.
 */
export function hostKeepSeconds(boundMs: number, graceSeconds: number): number {
  return Math.max(2, Math.floor(boundMs / 1000) - graceSeconds - 3);
}

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

/** The signal's name without "SIG" (ssh2 reports sshd's `USR1` as `SIGUSR1`). */
const signalName = (signal: string | undefined): string | undefined => signal?.replace(/^SIG/, "");

/** Bash reports a death by signal N as 128+N; do the same when sshd reports the wrapper itself was signalled. */
function exitCodeOf(code: number | null, signal: string | undefined): number {
  if (code !== null) return code;
  const name = signalName(signal);
  const number = name === undefined ? undefined : osConstants.signals[`SIG${name}` as NodeJS.Signals];
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
  let openedAt = 0;
  const run = new HostExecution(pool, target, req.operationId, grace, handlers, req.reattach, () =>
    Math.round(performance.now() - openedAt),
  );
  const invalid = invalidRequest(req, grace);
  if (invalid !== undefined) {
    run.fail({ kind: "failed", reason: `The request cannot be run: ${invalid}.`, code: "invalid_request" });
    return run;
  }
  const keepSeconds = req.reattach ? hostKeepSeconds(req.reattach.boundMs, grace) : 0;
  run.open("start", () => {
    openedAt = performance.now();
    run.killAfter(req.timeoutSeconds * 1000);
    return encodeHeader({
      ...req,
      graceSeconds: grace,
      keepSeconds,
      copyCapBytes: req.reattach?.copyCapBytes,
      release: keepSeconds > 0 ? takeReleases(pool, target) : [],
    });
  });
  return run;
}

export interface AttachRequest {
  operationId: string;
  /** Where the output resumes: the raw bytes of each stream already accounted for. */
  from: ByteOffsets;
  /** When it was started (wall clock, ms): its duration is measured from there. */
  startedAt: number;
  /** When its timeout passes (wall clock, ms); a kill is asked for at once when that is past. */
  timeoutAt: number;
  /** Since when (wall clock, ms) no service has been heard from on the host: the bound counts from there. */
  silentSince: number;
  killGraceSeconds?: number;
  reattach: ReattachSettings;
  /** It was cancelled meanwhile: the kill is asked for as soon as it is attached. */
  cancelled?: boolean;
}

/** Attaches to an operation another instance started (a takeover): the same outcomes as runRemote. */
export function attachRemote(
  pool: SshPool,
  target: PoolTarget,
  req: AttachRequest,
  handlers: RemoteExecHandlers,
): RemoteExecution {
  const grace = req.killGraceSeconds ?? DEFAULT_GRACE_SECONDS;
  const run = new HostExecution(pool, target, req.operationId, grace, handlers, req.reattach, () =>
    Math.max(0, Date.now() - req.startedAt),
  );
  run.resumeFrom(req.from, req.silentSince);
  if (req.cancelled) run.cancel();
  run.killAfter(Math.max(0, req.timeoutAt - Date.now()));
  return run;
}

type Mode = "start" | "attach";

/** One operation on one host: its channel (or the attempts to get one back), its kill and its one outcome. */
class HostExecution implements RemoteExecution {
  readonly done: Promise<RemoteExecOutcome>;
  readonly received: ByteOffsets = { stdout: 0, stderr: 0 };
  private settle!: (outcome: RemoteExecOutcome) => void;
  private channel: ClientChannel | undefined;
  private everOpened = false;
  private settled = false;
  private killReason: "timeout" | "cancelled" | undefined;
  private exitOutcome: RemoteExecOutcome | undefined;
  private paused = false;
  /** Wall-clock ms since the connection is down (or the host last heard from a service); undefined while attached. */
  private droppedAt: number | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private confirmTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    private readonly pool: SshPool,
    private readonly target: PoolTarget,
    private readonly operationId: string,
    private readonly grace: number,
    private readonly handlers: RemoteExecHandlers,
    private readonly reattach: ReattachSettings | undefined,
    private readonly durationMs: () => number,
  ) {
    this.done = new Promise<RemoteExecOutcome>((resolve) => (this.settle = resolve));
  }

  get reattachable(): boolean {
    return this.reattach !== undefined;
  }

  private later(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms).unref();
    this.timers.add(timer);
    return timer;
  }

  private clear(timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  fail(outcome: RemoteExecOutcome): void {
    this.finish(outcome);
  }

  private finish(outcome: RemoteExecOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.timers.forEach(clearTimeout);
    this.timers.clear();
    clearInterval(this.pingTimer);
    const ch = this.channel;
    if (ch) {
      // Frees the pool slot even if a stray process still holds the host side open; any late output is dropped.
      ch.resume();
      ch.stderr.resume();
      ch.close();
    }
    this.settle(outcome);
  }

  /** Opens a channel and sends the request `header()` builds once the channel is there. */
  open(mode: Mode, header: () => string): void {
    this.pool.exec(this.target, EXEC_REQUEST).then(
      (ch) => {
        if (this.settled) {
          ch.close(); // given up while waiting: the wrapper reads EOF instead of a header and runs nothing
          ch.resume();
          return;
        }
        this.attachChannel(ch, mode, header());
      },
      (err: unknown) => {
        if (mode === "attach") return this.retry();
        const code = err instanceof SshError ? err.code : "ssh_error";
        const reason = err instanceof Error ? err.message : String(err);
        this.finish({ kind: "failed", reason, code });
      },
    );
  }

  /** A takeover: the output so far is accounted for up to `from`; attach now. */
  resumeFrom(from: ByteOffsets, silentSince: number): void {
    this.received.stdout = from.stdout;
    this.received.stderr = from.stderr;
    this.everOpened = true;
    this.droppedAt = silentSince;
    this.attempt(0);
  }

  /** Asks for the kill at the timeout, `ms` from now. */
  killAfter(ms: number): void {
    this.later(ms, () => this.requestKill("timeout"));
  }

  private attachChannel(ch: ClientChannel, mode: Mode, header: string): void {
    this.channel = ch;
    this.everOpened = true;
    if (this.paused) {
      ch.pause();
      ch.stderr.pause();
    }
    ch.on("error", () => undefined); // a dropped connection is reported through "close" without "exit"
    // Once the outcome is out (a detach above all: another instance resumes from `received`), output that
    // was still in flight is dropped, and `received` stays what it was when `done` resolved.
    ch.on("data", (chunk: Buffer) => {
      if (this.settled) return;
      this.received.stdout += chunk.length;
      this.handlers.onStdout(chunk);
    });
    ch.stderr.on("data", (chunk: Buffer) => {
      if (this.settled) return;
      this.received.stderr += chunk.length;
      this.handlers.onStderr(chunk);
    });
    ch.once("exit", (code: number | null, signal?: string) => this.onExit(ch, mode, code, signal));
    ch.once("close", () => this.onClose(ch));
    ch.write(header);
    if (this.killReason !== undefined) this.sendCancel(ch);
    if (this.reattach) {
      const keepMs = hostKeepSeconds(this.reattach.boundMs, this.grace) * 1000;
      this.pingTimer = setInterval(() => ch.write(PING_LINE), Math.min(PING_MAX_MS, keepMs / 3));
      this.pingTimer.unref();
    }
    if (mode === "attach") {
      const afterMs = Date.now() - (this.droppedAt ?? Date.now());
      this.droppedAt = undefined;
      this.handlers.onConnection?.({ kind: "reattached", afterMs, from: { ...this.received } });
    }
  }

  private onExit(ch: ClientChannel, mode: Mode, code: number | null, signal: string | undefined): void {
    if (ch !== this.channel || this.settled) return;
    const where = `${this.target.host}:${this.target.port}`;
    if (mode === "attach" && code === null && signalName(signal) === ATTACH_GONE_SIGNAL)
      return this.finish({
        kind: "lost",
        reason: `${where} has no record of it any more (it never got there, or the host gave it up after hearing from no service for ${this.keepSeconds()} s).`,
      });
    if (mode === "attach" && code === null && signalName(signal) === ATTACH_UNRECORDED_SIGNAL)
      return this.finish({
        kind: "lost",
        reason: `its supervisor on ${where} ended without recording an exit status (the host restarted, or it was killed).`,
      });
    clearInterval(this.pingTimer);
    const durationMs = this.durationMs();
    // An attach says whether the command was killed on request (SIGTERM) or ended on its own (its exit
    // status): a kill asked for after it had already ended leaves its status as it was.
    const killed =
      mode === "attach"
        ? code === null && signalName(signal) === "TERM"
          ? (this.killReason ?? "timeout")
          : undefined
        : this.killReason;
    const outcome: RemoteExecOutcome =
      killed !== undefined
        ? { kind: killed, durationMs }
        : { kind: "exited", exitCode: exitCodeOf(code, signal), durationMs };
    this.exitOutcome = outcome;
    this.timers.forEach(clearTimeout);
    this.timers.clear();
    this.awaitTrailingOutput(outcome);
  }

  private onClose(ch: ClientChannel): void {
    if (ch !== this.channel || this.settled) return;
    clearInterval(this.pingTimer);
    if (this.exitOutcome !== undefined) return this.finish(this.exitOutcome);
    const where = `${this.target.host}:${this.target.port}`;
    if (!this.reattach)
      return this.finish({
        kind: "lost",
        reason: `The SSH connection to ${where} closed before the command reported an exit status; its outcome is unknown.`,
      });
    // The command runs on without us: get back to it.
    this.channel = undefined;
    this.clear(this.confirmTimer);
    this.droppedAt = Date.now();
    this.handlers.onConnection?.({
      kind: "dropped",
      reason: `the SSH connection to ${where} closed before the command reported an exit status`,
    });
    this.attempt(0);
  }

  private keepSeconds(): number {
    return this.reattach ? hostKeepSeconds(this.reattach.boundMs, this.grace) : 0;
  }

  /** The next attach attempt, after a backoff, while the bound allows. */
  private attempt(n: number): void {
    if (this.settled || !this.reattach) return;
    const since = this.droppedAt ?? Date.now();
    const deadline = since + this.reattach.boundMs;
    const wait = n === 0 ? 0 : Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (n - 1));
    if (Date.now() + wait >= deadline) {
      this.later(Math.max(0, deadline - Date.now()), () => this.giveUp(since));
      return;
    }
    this.later(wait, () => {
      this.attempts = n;
      this.open("attach", () => encodeAttach(this.operationId, this.received));
    });
  }

  private attempts = 0;

  private retry(): void {
    this.attempt(this.attempts + 1);
  }

  private giveUp(since: number): void {
    const where = `${this.target.host}:${this.target.port}`;
    const bound = Math.round((this.reattach?.boundMs ?? 0) / 1000);
    this.finish({
      kind: "lost",
      reason: `${where} could not be reached again within ${bound} s of ${new Date(since).toISOString()}; the host stops the command after hearing from no service for about that long.`,
    });
  }

  private awaitTrailingOutput(outcome: RemoteExecOutcome): void {
    // Output held back by pause() is ours to release, not the host's: the bound only runs while output flows.
    this.later(TRAILING_OUTPUT_MS, () => (this.paused ? undefined : this.finish(outcome)));
  }

  private sendCancel(ch: ClientChannel): void {
    ch.write(CANCEL_LINE);
    this.clear(this.confirmTimer);
    this.confirmTimer = this.later(this.grace * 1000 + KILL_CONFIRM_MARGIN_MS, () =>
      this.finish({
        kind: "lost",
        reason: `The host did not confirm that the command was killed within ${this.grace} s plus a margin; its outcome is unknown.`,
      }),
    );
  }

  private requestKill(reason: "timeout" | "cancelled"): void {
    if (this.killReason !== undefined || this.settled) return;
    this.killReason = reason;
    if (!this.everOpened) return this.finish({ kind: reason, durationMs: 0 }); // nothing was started
    if (this.exitOutcome !== undefined) return; // already exited on its own; the exit status stands
    if (this.channel) this.sendCancel(this.channel); // else: sent as soon as it is attached again
  }

  cancel(): void {
    this.requestKill("cancelled");
  }

  pause(): void {
    this.paused = true;
    this.channel?.pause();
    this.channel?.stderr.pause();
  }

  resume(): void {
    this.paused = false;
    this.channel?.resume();
    this.channel?.stderr.resume();
    if (this.exitOutcome !== undefined && !this.settled) this.awaitTrailingOutput(this.exitOutcome);
  }

  detach(): void {
    if (!this.reattach || this.settled) return;
    this.finish({ kind: "detached" });
  }

  release(): void {
    if (!this.reattach || this.released) return;
    this.released = true;
    queueRelease(this.pool, this.target, this.operationId);
  }
}

/** How often an attached service tells the host's keeper it is there (more often for short bounds). */
const PING_MAX_MS = 15_000;

interface PendingReleases {
  target: PoolTarget;
  ids: Set<string>;
  timer: NodeJS.Timeout | undefined;
}

/** Per pool and server: operations whose host directories can go, waiting for a request to ride on. */
const releases = new WeakMap<SshPool, Map<string, PendingReleases>>();

function pendingFor(pool: SshPool, target: PoolTarget): PendingReleases {
  let byServer = releases.get(pool);
  if (!byServer) releases.set(pool, (byServer = new Map<string, PendingReleases>()));
  let entry = byServer.get(target.serverId);
  if (!entry) byServer.set(target.serverId, (entry = { target, ids: new Set(), timer: undefined }));
  entry.target = target;
  return entry;
}

function queueRelease(pool: SshPool, target: PoolTarget, id: string): void {
  const entry = pendingFor(pool, target);
  entry.ids.add(id);
  entry.timer ??= setTimeout(() => void flushReleases(pool, entry), RELEASE_FLUSH_MS).unref();
}

/** Releases for the next start request to this server to carry. */
function takeReleases(pool: SshPool, target: PoolTarget): string[] {
  const entry = releases.get(pool)?.get(target.serverId);
  if (!entry) return [];
  const ids = [...entry.ids].slice(0, RELEASES_PER_REQUEST);
  ids.forEach((id) => entry.ids.delete(id));
  if (entry.ids.size === 0) {
    clearTimeout(entry.timer);
    entry.timer = undefined;
  }
  return ids;
}

/** Sends every release still waiting (the service is stopping), before the pool closes. */
export async function flushAllReleases(pool: SshPool): Promise<void> {
  const byServer = releases.get(pool);
  if (!byServer) return;
  await Promise.all(
    [...byServer.values()].map((entry) => {
      clearTimeout(entry.timer);
      return flushReleases(pool, entry);
    }),
  );
}

/** Sends what no start request took; a failure only leaves the directories to their keepers' bound. */
async function flushReleases(pool: SshPool, entry: PendingReleases): Promise<void> {
  entry.timer = undefined;
  while (entry.ids.size > 0) {
    const ids = takeReleases(pool, entry.target);
    try {
      const ch = await pool.exec(entry.target, EXEC_REQUEST);
      ch.on("error", () => undefined);
      ch.resume();
      ch.stderr.resume();
      const closed = new Promise<void>((resolve) => {
        ch.once("close", resolve);
        setTimeout(resolve, RELEASE_FLUSH_MS * 2).unref();
      });
      ch.end(encodeRelease(ids));
      await closed;
    } catch {
      return;
    }
  }
}
