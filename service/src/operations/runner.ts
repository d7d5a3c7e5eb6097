import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { EXIT_CODE_CANCELLED, EXIT_CODE_FAILED, EXIT_CODE_TIMEOUT } from "@reoclo/protocol";
import type { Database } from "../db/database";
import type { Logger } from "../logger";
import type { SshPool, PoolTarget } from "../ssh/pool";
import {
  runRemote,
  type RemoteExecHandlers,
  type RemoteExecOutcome,
  type RemoteExecution,
} from "../ssh/remote-exec";
import { redactCommandText, secretsToMask, maskText } from "./masking";
import { OutputRecorder, type OutputEvent } from "./output";
import { describeDatabaseError } from "../db/errors";
import { retryDelayMs, sleep } from "./retry";
import {
  cancelRequested,
  createOperation,
  deployQueueHead,
  finalizeOperation,
  getOperation,
  heartbeat,
  leaveDeployQueue,
  pruneDeployQueue,
  requestCancel,
  settleStale,
  type Created,
  type FinalState,
  type IdempotencyClaim,
  type NewOperation,
  type OperationRow,
} from "./store";

// Runs operations of this instance: one row each, output recorded as it arrives, exactly one
// final status. A heartbeat carries cancel requests from other instances; a reconciler settles
// operations whose instance vanished.

export interface RunnerOptions {
  outputCapBytes: number;
  heartbeatMs?: number;
  /** An operation whose heartbeat is older than this is settled `lost` by any instance. */
  staleAfterMs?: number;
}

export interface StartRequest {
  row: Omit<NewOperation, "id" | "status" | "command" | "runnerId" | "heartbeatAt" | "startedAt">;
  target: PoolTarget;
  command: string;
  /** Secrets: values of 8+ characters are masked in everything stored, streamed or returned. */
  env: Readonly<Record<string, string>>;
  /** Masked in output whatever their length (a registry username). */
  maskAlso?: readonly string[];
  /** Not secrets (REOCLO_COMMIT_REF…): passed the same way, never masked. */
  publicEnv?: Readonly<Record<string, string>>;
  /** Deploys: wait for the application's earlier deploys, on any instance, before running. */
  queue?: { applicationId: string; wait: boolean };
  /** Something other than running `command` once (a reboot); default runRemote. */
  execute?: (handlers: RemoteExecHandlers, operationId: string) => RemoteExecution;
  /** The request's Idempotency-Key: created with the operation, in one transaction. */
  claim?: IdempotencyClaim | undefined;
  /** The audit row that allowed the request; it is linked to the operation as it is created. */
  auditId?: number | undefined;
}

interface Running {
  /** Undefined while the operation waits for its turn. */
  execution: RemoteExecution | undefined;
  recorder: OutputRecorder;
  cancelled: boolean;
  /** Who or what cancelled it, for its reason: `automation key "deploy" (rca_3kTm9x)`, a shutdown. */
  cancelledBy?: string;
  /** Set when it ended before running for another reason than a cancel (it left the deploy queue). */
  neverRan?: string;
  /** The final row as it will be stored, once the outcome is known (stored or not yet). */
  outcome?: OperationRow;
}

/** How often a waiting deploy looks whether its turn has come (or a cancel from another instance). */
const QUEUE_POLL_MS = 250;

export class OperationRunner {
  readonly instanceId = randomUUID();
  private readonly running = new Map<string, Running>();
  private readonly finals = new EventEmitter();
  /** Emits an operation's id once its outcome is known here, before it is stored. */
  private readonly known = new EventEmitter();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly settling = new Set<Promise<void>>();
  /** Set when stopping with ends that could not be stored: retries stop. */
  private giveUp = false;

  constructor(
    private readonly db: Database,
    readonly pool: SshPool,
    private readonly logger: Logger,
    private readonly opts: RunnerOptions,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.finals.setMaxListeners(0);
    this.known.setMaxListeners(0);
    const beat = setInterval(() => void this.beat(), opts.heartbeatMs ?? 5_000);
    const reconcile = setInterval(() => void this.reconcile(), (opts.staleAfterMs ?? 60_000) / 2);
    beat.unref();
    reconcile.unref();
    this.timers.push(beat, reconcile);
  }

  /**
   * Creates the operation row and starts it on the host (a deploy once its turn comes); returns
   * the row as created.
   */
  async start(req: StartRequest): Promise<Created> {
    const secrets = secretsToMask(req.env, req.maskAlso);
    const now = this.now();
    const op = {
      ...req.row,
      id: randomUUID(),
      status: "running",
      command: redactCommandText(req.command, secrets),
      runnerId: this.instanceId,
      heartbeatAt: now,
      startedAt: now,
    };
    const queued = await createOperation(this.db, op, {
      claim: req.claim,
      queue: req.queue,
      auditId: req.auditId,
      now,
    });
    if (queued.kind === "replay") return queued;
    const row = queued.row;
    // The recorder pauses the channel when storage falls behind; the channel exists only later.
    const recorder = new OutputRecorder(this.db, row.id, secrets, this.opts.outputCapBytes, this.logger, {
      pause: () => this.running.get(row.id)?.execution?.pause(),
      resume: () => this.running.get(row.id)?.execution?.resume(),
    });
    const entry: Running = { execution: undefined, recorder, cancelled: false };
    this.running.set(row.id, entry);
    const handlers: RemoteExecHandlers = {
      onStdout: (b) => entry.recorder.write("stdout", b),
      onStderr: (b) => entry.recorder.write("stderr", b),
    };
    const run = async (): Promise<RemoteExecOutcome> => {
      if (req.queue && !(await this.waitForTurn(row.id, req.queue.applicationId, queued.ahead, entry))) {
        if (entry.neverRan) return { kind: "failed", code: "left_deploy_queue", reason: entry.neverRan };
        return { kind: "cancelled", durationMs: 0 };
      }
      entry.execution =
        req.execute?.(handlers, row.id) ??
        runRemote(
          this.pool,
          req.target,
          {
            command: req.command,
            env: { ...req.publicEnv, ...req.env },
            workingDirectory: req.row.workingDirectory ?? undefined,
            timeoutSeconds: req.row.timeoutSeconds,
            operationId: row.id,
          },
          handlers,
        );
      if (entry.cancelled) entry.execution.cancel();
      return entry.execution.done;
    };
    const settled = run()
      .then((outcome) => this.settle(row, entry, outcome, secrets))
      .catch((err: unknown) => {
        // Stop heart-beating it: the reconciler settles it (lost) instead of it staying running forever.
        this.running.delete(row.id);
        this.finals.emit(row.id);
        this.logger.error("settling operation failed", { operation_id: row.id, error: String(err) });
      })
      .finally(() => {
        this.settling.delete(settled);
        if (req.queue) void leaveDeployQueue(this.db, row.id).catch(() => undefined);
      });
    this.settling.add(settled);
    return queued;
  }

  /** True once it is this deploy's turn; false when it was cancelled while waiting. */
  private async waitForTurn(
    id: string,
    applicationId: string,
    ahead: number,
    entry: Running,
  ): Promise<boolean> {
    let said = false;
    for (;;) {
      const requestedBy = entry.cancelled ? undefined : await cancelRequested(this.db, id);
      if (entry.cancelled || requestedBy !== undefined) {
        entry.cancelled = true;
        entry.cancelledBy ??= requestedBy ?? undefined;
        return false;
      }
      const [head, own] = await Promise.all([
        deployQueueHead(this.db, applicationId),
        getOperation(this.db, id),
      ]);
      // Settled meanwhile (the reconciler called it lost) or its application was removed: it
      // never runs, so it can never overlap a later deploy.
      if (own?.status !== "running" || head === undefined) {
        entry.neverRan =
          own?.status !== "running"
            ? "It left the deploy queue without running: it was settled while it waited."
            : "It left the deploy queue without running: its application was removed while it waited.";
        return false;
      }
      if (head === id) {
        if (said) entry.recorder.write("stderr", Buffer.from("reoclo: its turn came; deploying\n"));
        return true;
      }
      if (!said && ahead > 0) {
        said = true;
        entry.recorder.write(
          "stderr",
          Buffer.from(`reoclo: waiting for ${ahead} earlier deploy(s) of this application (now ${head})\n`),
        );
      }
      await sleep(QUEUE_POLL_MS);
    }
  }

  /**
   * Live output of an operation running on this instance, or undefined. Every event up to
   * `lastSeq` is stored once `stored()` resolves; later ones arrive through `fn`.
   */
  subscribe(
    id: string,
    fn: (e: OutputEvent) => void,
  ): { unsubscribe: () => void; lastSeq: number; stored: () => Promise<void> } | undefined {
    const entry = this.running.get(id);
    if (!entry) return undefined;
    const recorder = entry.recorder;
    return {
      unsubscribe: recorder.subscribe(fn),
      lastSeq: recorder.lastSeq,
      stored: () => recorder.stored(),
    };
  }

  /**
   * Resolves with the final row, or undefined when it is still running after `ms`. A local
   * operation answers from memory: its stored final row, or, while the database cannot take it
   * yet, the outcome this instance knows. One running on another instance is watched in the database.
   */
  async waitForFinal(id: string, ms: number): Promise<OperationRow | undefined> {
    const deadline = Date.now() + ms;
    const local = this.running.get(id);
    if (local) {
      const stored = await new Promise<OperationRow | undefined>((resolve) => {
        const timer = setTimeout(() => done(undefined), ms);
        let grace: NodeJS.Timeout | undefined;
        const done = (row: OperationRow | undefined) => {
          clearTimeout(timer);
          clearTimeout(grace);
          off();
          this.known.off(id, onKnown);
          resolve(row);
        };
        // Known but not stored within a moment: the database is slow or away; answer what is known.
        const onKnown = () => {
          grace ??= setTimeout(() => done(undefined), Math.min(STORE_GRACE_MS, deadline - Date.now()));
        };
        const off = this.onFinal(id, done);
        this.known.on(id, onKnown);
        if (local.outcome) onKnown();
      });
      if (stored) return stored;
      if (local.outcome) return local.outcome;
      if (this.running.has(id)) return undefined;
    }
    for (;;) {
      const row = await getOperation(this.db, id);
      if (!row || row.status !== "running") return row;
      if (this.running.has(id) || Date.now() >= deadline) return undefined;
      await sleep(Math.min(REMOTE_POLL_MS, Math.max(0, deadline - Date.now())));
    }
  }

  /** Called once the operation's final row is stored (with it), or when it was given up. */
  onFinal(id: string, fn: (row: OperationRow | undefined) => void): () => void {
    this.finals.on(id, fn);
    return () => this.finals.off(id, fn);
  }

  isLocal(id: string): boolean {
    return this.running.has(id);
  }

  /**
   * Cancels wherever it runs: at once here, or at the next heartbeat of its instance. `by` names
   * who asked (a key, a person), for the operation's reason.
   */
  async cancel(id: string, by: string): Promise<void> {
    const entry = this.running.get(id);
    if (entry) {
      this.cancelEntry(entry, by);
      return;
    }
    await requestCancel(this.db, id, this.now(), by);
  }

  private cancelEntry(entry: Running, by: string): void {
    if (entry.cancelled) return;
    entry.cancelled = true;
    entry.cancelledBy = by;
    entry.execution?.cancel();
  }

  /**
   * Stops taking work: waits for running operations up to `graceMs`, then cancels the rest; what
   * still cannot be stored after SETTLE_AFTER_CANCEL_MS (the database is down) is given up, and
   * the reconciler of another instance (or of the next start) settles it.
   */
  async shutdown(graceMs: number): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    const all = Promise.all([...this.settling]);
    const timedOut = await Promise.race([all.then(() => false), sleep(graceMs).then(() => true)]);
    if (!timedOut) return;
    const by = `the service instance stopping (SIGTERM) after its shutdown grace of ${Math.round(graceMs / 1000)} s`;
    for (const entry of this.running.values()) this.cancelEntry(entry, by);
    const stuck = await Promise.race([all.then(() => false), sleep(SETTLE_AFTER_CANCEL_MS).then(() => true)]);
    if (!stuck) return;
    this.giveUp = true;
    for (const entry of this.running.values()) entry.recorder.abandon();
    this.logger.error("stopping with operations whose end could not be stored", {
      operations: [...this.running.keys()],
    });
    await all;
  }

  private async settle(row: OperationRow, entry: Running, outcome: RemoteExecOutcome, secrets: string[]) {
    const final = mapOutcome(outcome, {
      neverStarted: entry.execution === undefined,
      cancelledBy: entry.cancelledBy ?? "a cancel request",
      timeoutSeconds: row.timeoutSeconds,
    });
    if (final.message)
      entry.recorder.write("stderr", Buffer.from(`reoclo: ${maskText(final.message, secrets)}\n`));
    const totals = entry.recorder.finish();
    const state: FinalState = {
      status: final.status,
      exitCode: final.exitCode,
      durationMs: final.durationMs,
      error: final.message ? maskText(final.message, secrets) : null,
      downtimeMs: outcome.kind === "exited" ? (outcome.downtimeMs ?? null) : null,
      ...totals,
    };
    entry.outcome = { ...row, ...state, completedAt: this.now(), settledBy: "runner" };
    this.known.emit(row.id);
    // The end is stored after the output, so whoever sees a final row finds all of its output.
    await entry.recorder.stored();
    const stored = await this.store(row.id, state);
    this.running.delete(row.id);
    this.finals.emit(row.id, stored);
  }

  /**
   * Stores the final state, retrying while the database does not answer: the outcome is known
   * here and must not become `lost` because of a restart (issue 13, item 2).
   */
  private async store(id: string, state: FinalState): Promise<OperationRow | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        const row = await finalizeOperation(this.db, id, this.instanceId, state, this.now());
        if (attempt > 0) this.logger.info("stored an operation's end after retrying", { operation_id: id });
        return row;
      } catch (err) {
        if (this.giveUp) throw err;
        if (attempt === 0)
          this.logger.warn("storing an operation's end failed; retrying until the database answers", {
            operation_id: id,
            error: describeDatabaseError(err),
          });
        await sleep(retryDelayMs(attempt));
      }
    }
  }

  private async beat() {
    try {
      const cancel = await heartbeat(this.db, [...this.running.keys()], this.now());
      for (const { id, by } of cancel) {
        const entry = this.running.get(id);
        if (entry) this.cancelEntry(entry, by ?? "a cancel request made on another instance");
      }
    } catch (err) {
      this.logger.warn("operation heartbeat failed", { error: String(err) });
    }
  }

  private async reconcile() {
    try {
      const staleBefore = new Date(this.now().getTime() - (this.opts.staleAfterMs ?? 60_000));
      const settled = await settleStale(this.db, staleBefore, this.now(), this.opts.outputCapBytes);
      await pruneDeployQueue(this.db);
      if (settled.length) this.logger.warn("settled operations whose runner vanished", { lost: settled });
    } catch (err) {
      this.logger.warn("reconciler failed", { error: String(err) });
    }
  }
}

/** The final status and the one-sentence reason of an outcome (spec §4: who or what ended it). */
function mapOutcome(
  o: RemoteExecOutcome,
  ctx: { neverStarted: boolean; cancelledBy: string; timeoutSeconds: number },
) {
  switch (o.kind) {
    case "exited":
      return {
        status: "completed" as const,
        exitCode: o.exitCode,
        durationMs: o.durationMs,
        message: undefined,
      };
    case "timeout":
      return {
        status: "timeout" as const,
        exitCode: EXIT_CODE_TIMEOUT,
        durationMs: o.durationMs,
        message: `Timed out after ${ctx.timeoutSeconds} s; the command's process group was killed.`,
      };
    case "cancelled":
      return {
        status: "cancelled" as const,
        exitCode: EXIT_CODE_CANCELLED,
        durationMs: o.durationMs,
        message: ctx.neverStarted
          ? `Cancelled by ${ctx.cancelledBy} before it ran (it was waiting for its turn); it never ran.`
          : `Cancelled by ${ctx.cancelledBy}; the command's process group was killed.`,
      };
    case "failed":
      return {
        status: "failed" as const,
        exitCode: EXIT_CODE_FAILED,
        durationMs: null,
        message:
          o.code === "left_deploy_queue" ? o.reason : `Could not run the command (${o.code}): ${o.reason}`,
      };
    case "lost":
      return {
        status: "lost" as const,
        exitCode: EXIT_CODE_FAILED,
        durationMs: null,
        message: `The connection to the host dropped mid-run, so the command's outcome is unknown: ${o.reason}`,
      };
  }
}

const REMOTE_POLL_MS = 200;
/** How long an answer waits for a known outcome to be stored before it answers from memory. */
const STORE_GRACE_MS = 1_000;
/** After cancelling at shutdown, how long ends may take to be stored before they are given up. */
const SETTLE_AFTER_CANCEL_MS = 10_000;
