import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Database } from "../db/database";
import { describeDatabaseError } from "../db/errors";
import type { Logger } from "../logger";
import type { SshPool, PoolTarget } from "../ssh/pool";
import {
  runRemote,
  type RemoteExecHandlers,
  type RemoteExecOutcome,
  type RemoteExecution,
} from "../ssh/remote-exec";
import { waitForTurn } from "./deploy-queue";
import { valuesToMask, maskText } from "./masking";
import { finalStatusOf } from "./outcome";
import type { OutputEvent } from "./output";
import { retryDelayMs, sleep } from "./retry";
import { RunningOperation } from "./running";
import {
  createOperation,
  finalizeOperation,
  getOperation,
  leaveDeployQueue,
  requestCancel,
  type Created,
  type FinalState,
  type IdempotencyClaim,
  type NewOperation,
  type OperationRow,
} from "./store";
import { Upkeep } from "./upkeep";

// Runs the operations of this instance: one row each, output recorded as it arrives, exactly one
// final status. Its helpers: RunningOperation (one operation and its cancel), waitForTurn (the
// deploy queue), Upkeep (heartbeat, cross-instance cancel, reconciler), finalStatusOf (the reason).

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
  maskAlso?: readonly string[] | undefined;
  /** Not secrets (REOCLO_COMMIT_REF…): passed the same way, never masked. */
  publicEnv?: Readonly<Record<string, string>> | undefined;
  /** Deploys: wait for the application's earlier deploys, on any instance, before running. */
  queue?: { applicationId: string; wait: boolean } | undefined;
  /** Something other than running `command` once (a reboot); default runRemote. */
  execute?:
    | ((
        pool: SshPool,
        target: PoolTarget,
        handlers: RemoteExecHandlers,
        operationId: string,
      ) => RemoteExecution)
    | undefined;
  /** The request's Idempotency-Key: created with the operation, in one transaction. */
  claim?: IdempotencyClaim | undefined;
  /** The audit row that allowed the request; it is linked to the operation as it is created. */
  auditId?: number | undefined;
}

export class OperationRunner {
  readonly instanceId = randomUUID();
  private readonly running = new Map<string, RunningOperation>();
  /** Emits an operation's id (and its final row) once that row is stored, or once it is given up. */
  private readonly settledEvents = new EventEmitter();
  /** Emits an operation's id once its outcome is known here, before it is stored. */
  private readonly outcomeKnown = new EventEmitter();
  private readonly settling = new Set<Promise<void>>();
  private readonly upkeep: Upkeep;
  /** Set when stopping with ends that could not be stored: retries stop. */
  private giveUp = false;

  constructor(
    private readonly db: Database,
    private readonly pool: SshPool,
    private readonly logger: Logger,
    private readonly opts: RunnerOptions,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.settledEvents.setMaxListeners(0);
    this.outcomeKnown.setMaxListeners(0);
    this.upkeep = new Upkeep(
      db,
      {
        runningIds: () => [...this.running.keys()],
        cancelLocal: (id, by) => this.running.get(id)?.cancel(by),
      },
      logger,
      {
        heartbeatMs: opts.heartbeatMs ?? 5_000,
        staleAfterMs: opts.staleAfterMs ?? 60_000,
        outputCapBytes: opts.outputCapBytes,
      },
      now,
    );
  }

  /**
   * Creates the operation row and starts it on the host (a deploy once its turn comes); returns
   * the row as created, or the operation an earlier request with the same Idempotency-Key created.
   */
  async start(req: StartRequest): Promise<Created> {
    const maskValues = valuesToMask(req.env, req.maskAlso);
    const now = this.now();
    const created = await createOperation(
      this.db,
      {
        ...req.row,
        id: randomUUID(),
        status: "running" as const,
        // The command text as stored: the same rules as output, so `https://alice:***@host`.
        command: maskText(req.command, maskValues),
        runnerId: this.instanceId,
        heartbeatAt: now,
        startedAt: now,
      },
      { claim: req.claim, queue: req.queue, auditId: req.auditId, now },
    );
    if (created.kind === "replay") return created;
    const row = created.row;
    const op = new RunningOperation(this.db, row.id, maskValues, this.opts.outputCapBytes, this.logger);
    this.running.set(row.id, op);
    const handlers: RemoteExecHandlers = {
      onStdout: (b) => op.recorder.write("stdout", b),
      onStderr: (b) => op.recorder.write("stderr", b),
    };
    const run = async (): Promise<RemoteExecOutcome> => {
      if (req.queue && !(await waitForTurn(this.db, row.id, req.queue.applicationId, created.ahead, op))) {
        if (op.neverRan) return { kind: "failed", code: "left_deploy_queue", reason: op.neverRan };
        return { kind: "cancelled", durationMs: 0 };
      }
      const execution =
        req.execute?.(this.pool, req.target, handlers, row.id) ??
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
      return op.attach(execution);
    };
    const settled = run()
      .then((outcome) => this.settle(row, op, outcome, maskValues))
      .catch((err: unknown) => {
        // Stop heart-beating it: the reconciler settles it (lost) instead of it staying running forever.
        this.running.delete(row.id);
        this.settledEvents.emit(row.id);
        this.logger.error("settling operation failed", { operation_id: row.id, error: String(err) });
      })
      .finally(() => {
        this.settling.delete(settled);
        if (req.queue) void leaveDeployQueue(this.db, row.id).catch(() => undefined);
      });
    this.settling.add(settled);
    return created;
  }

  /**
   * Live output of an operation running on this instance, or undefined. Every event up to
   * `lastSeq` is stored once `stored()` resolves; later ones arrive through `fn`.
   */
  subscribe(
    id: string,
    fn: (e: OutputEvent) => void,
  ): { unsubscribe: () => void; lastSeq: number; stored: () => Promise<void> } | undefined {
    const recorder = this.running.get(id)?.recorder;
    if (!recorder) return undefined;
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
  async waitUntilSettled(id: string, ms: number): Promise<OperationRow | undefined> {
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
          this.outcomeKnown.off(id, onKnown);
          resolve(row);
        };
        // Known but not stored within a moment: the database is slow or away; answer what is known.
        const onKnown = () => {
          grace ??= setTimeout(() => done(undefined), Math.min(STORE_GRACE_MS, deadline - Date.now()));
        };
        const off = this.onSettled(id, done);
        this.outcomeKnown.on(id, onKnown);
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
  onSettled(id: string, fn: (row: OperationRow | undefined) => void): () => void {
    this.settledEvents.on(id, fn);
    return () => this.settledEvents.off(id, fn);
  }

  /**
   * Cancels wherever it runs: at once here, or at the next heartbeat of its instance. `by` names
   * who asked (a key, a person), for the operation's reason.
   */
  async cancel(id: string, by: string): Promise<void> {
    const local = this.running.get(id);
    if (local) return local.cancel(by);
    await requestCancel(this.db, id, this.now(), by);
  }

  /**
   * Stops taking work: waits for running operations up to `graceMs`, then cancels the rest; what
   * still cannot be stored after SETTLE_AFTER_CANCEL_MS (the database is down) is given up, and
   * the reconciler of another instance (or of the next start) settles it.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.upkeep.stop();
    const all = Promise.all([...this.settling]);
    const timedOut = await Promise.race([all.then(() => false), sleep(graceMs).then(() => true)]);
    if (!timedOut) return;
    const by = `the service instance stopping (SIGTERM) after its shutdown grace of ${Math.round(graceMs / 1000)} s`;
    for (const op of this.running.values()) op.cancel(by);
    const stuck = await Promise.race([all.then(() => false), sleep(SETTLE_AFTER_CANCEL_MS).then(() => true)]);
    if (!stuck) return;
    this.giveUp = true;
    for (const op of this.running.values()) op.recorder.abandon();
    this.logger.error("stopping with operations whose end could not be stored", {
      operations: [...this.running.keys()],
    });
    await all;
  }

  private async settle(
    row: OperationRow,
    op: RunningOperation,
    outcome: RemoteExecOutcome,
    maskValues: string[],
  ) {
    const final = finalStatusOf(outcome, {
      neverStarted: !op.started,
      cancelledBy: op.cancelledBy ?? "a cancel request",
      timeoutSeconds: row.timeoutSeconds,
    });
    const reason = final.message === undefined ? null : maskText(final.message, maskValues);
    if (reason !== null) op.recorder.write("stderr", Buffer.from(`reoclo: ${reason}\n`));
    const totals = op.recorder.finish();
    const state: FinalState = {
      status: final.status,
      exitCode: final.exitCode,
      durationMs: final.durationMs,
      error: reason,
      downtimeMs: outcome.kind === "exited" ? (outcome.downtimeMs ?? null) : null,
      ...totals,
    };
    op.outcome = { ...row, ...state, completedAt: this.now(), settledBy: "runner" };
    this.outcomeKnown.emit(row.id);
    // The end is stored after the output, so whoever sees a final row finds all of its output.
    await op.recorder.stored();
    const stored = await this.store(row.id, state);
    this.running.delete(row.id);
    this.settledEvents.emit(row.id, stored);
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
}

const REMOTE_POLL_MS = 200;
/** How long an answer waits for a known outcome to be stored before it answers from memory. */
const STORE_GRACE_MS = 1_000;
/** After cancelling at shutdown, how long ends may take to be stored before they are given up. */
const SETTLE_AFTER_CANCEL_MS = 10_000;
