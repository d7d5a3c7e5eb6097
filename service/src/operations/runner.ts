import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Database } from "../db/database";
import { describeDatabaseError } from "../db/errors";
import type { Logger } from "../logger";
import type { ResumePoint } from "../db/schema";
import type { SshPool, PoolTarget } from "../ssh/pool";
import {
  attachRemote,
  runRemote,
  type ConnectionEvent,
  type ReattachSettings,
  type RemoteExecHandlers,
  type RemoteExecOutcome,
  type RemoteExecution,
} from "../ssh/remote-exec";
import { waitForTurn } from "./deploy-queue";
import { valuesToMask, maskText } from "./masking";
import { finalStatusOf, type EndOutcome } from "./outcome";
import type { OutputEvent } from "./output";
import { retryDelayMs, sleep } from "./retry";
import { RunningOperation } from "./running";
import {
  createOperation,
  finalizeOperation,
  getOperation,
  handOver,
  leaveDeployQueue,
  requestCancel,
  storedTails,
  type Claimed,
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
  /** An operation whose heartbeat is older than this is taken over (or, if it cannot be, settled `lost`) by any instance. */
  staleAfterMs?: number;
  /**
   * How long a host that cannot be reached is tried again before its operation is `lost` (after a
   * dropped connection, or when taking one over); 0 or unset: operations are not reattached.
   */
  reattachBoundMs?: number;
  /** SIGTERM cancels running operations instead of handing them to the next instance. */
  cancelOnShutdown?: boolean;
  /** What taking an operation over needs: its server's SSH target… */
  targets?: (serverId: string) => Promise<PoolTarget>;
  /** …and its mask values, sealed with the master key while it runs. */
  sealer?: MaskSealer;
}

/** Seals an operation's mask values for the row, so the instance taking it over masks the same. */
export interface MaskSealer {
  /** Undefined when there is no key to seal with: the operation then cannot be taken over. */
  seal(operationId: string, values: readonly string[]): string | undefined;
  unseal(operationId: string, sealed: string): string[];
}

/** The host keeps this much more than the stored cap: masking can make the stored output longer than the raw. */
const HOST_COPY_MARGIN_BYTES = 64 * 1024;

const startPoint = (): ResumePoint => ({
  seq: 0,
  raw: { stdout: 0, stderr: 0 },
  bytes: { stdout: 0, stderr: 0 },
  stored: { stdout: 0, stderr: 0 },
  truncated: { stdout: false, stderr: false },
});

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
        takenOver: (id) => {
          const op = this.running.get(id);
          if (!op || op.outcome || !op.canHandOver) return;
          this.logger.warn("another instance took this operation over; no longer following it here", {
            operation_id: id,
          });
          op.detach();
        },
        takeOver: this.reattach() && opts.targets ? (claimed) => this.takeOver(claimed) : undefined,
      },
      logger,
      {
        runnerId: this.instanceId,
        reattachBoundMs: opts.reattachBoundMs ?? 0,
        heartbeatMs: opts.heartbeatMs ?? 5_000,
        staleAfterMs: opts.staleAfterMs ?? 60_000,
        outputCapBytes: opts.outputCapBytes,
      },
      now,
    );
  }

  /** How operations started here survive a dropped connection; undefined when they do not. */
  private reattach(): ReattachSettings | undefined {
    const boundMs = this.opts.reattachBoundMs ?? 0;
    if (boundMs <= 0) return undefined;
    return { boundMs, copyCapBytes: this.opts.outputCapBytes + HOST_COPY_MARGIN_BYTES };
  }

  private handlersFor(op: RunningOperation, id: string): RemoteExecHandlers {
    return {
      onStdout: (b) => op.recorder.write("stdout", b),
      onStderr: (b) => op.recorder.write("stderr", b),
      onConnection: (e: ConnectionEvent) => {
        if (e.kind === "dropped")
          this.logger.warn("lost the connection to a running operation's host; reattaching", {
            operation_id: id,
            reason: e.reason,
          });
        else
          this.logger.info("reattached to a running operation", {
            operation_id: id,
            after_ms: e.afterMs,
            stdout_offset: e.from.stdout,
            stderr_offset: e.from.stderr,
          });
      },
    };
  }

  /**
   * Creates the operation row and starts it on the host (a deploy once its turn comes); returns
   * the row as created, or the operation an earlier request with the same Idempotency-Key created.
   */
  async start(req: StartRequest): Promise<Created> {
    const maskValues = valuesToMask(req.env, req.maskAlso);
    const now = this.now();
    const id = randomUUID();
    // Another instance can take it over only if it can mask the same values: sealed, or none.
    const reattach = req.execute ? undefined : this.reattach();
    const sealed = reattach && maskValues.length > 0 ? this.opts.sealer?.seal(id, maskValues) : undefined;
    const takeoverable = reattach !== undefined && (maskValues.length === 0 || sealed !== undefined);
    const created = await createOperation(
      this.db,
      {
        ...req.row,
        id,
        status: "running" as const,
        resume: takeoverable ? startPoint() : null,
        maskSealed: takeoverable ? (sealed ?? null) : null,
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
    const op = new RunningOperation(this.db, row.id, maskValues, this.opts.outputCapBytes, this.logger, {
      takeoverable,
      runnerId: this.instanceId,
    });
    this.running.set(row.id, op);
    const handlers = this.handlersFor(op, row.id);
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
            reattach,
          },
          handlers,
        );
      return op.attach(execution);
    };
    this.follow(row, op, run, maskValues);
    return created;
  }

  /** Runs `run` to its outcome and settles the operation with it, exactly once. */
  private follow(
    row: OperationRow,
    op: RunningOperation,
    run: () => Promise<RemoteExecOutcome>,
    maskValues: string[],
  ): void {
    let detached = false;
    const settled = run()
      .then((outcome) => {
        if (outcome.kind !== "detached") return this.settle(row, op, outcome, maskValues);
        detached = true;
        return this.letGo(row.id, op);
      })
      .catch((err: unknown) => {
        // Stop heart-beating it: the reconciler settles it (lost) instead of it staying running forever.
        this.running.delete(row.id);
        this.settledEvents.emit(row.id);
        this.logger.error("settling operation failed", { operation_id: row.id, error: String(err) });
      })
      .finally(() => {
        this.settling.delete(settled);
        // A deploy that runs on without us keeps its place until whoever takes it over settles it.
        if (row.applicationId && !detached) void leaveDeployQueue(this.db, row.id).catch(() => undefined);
      });
    this.settling.add(settled);
    op.finished = settled;
  }

  /** No longer followed here (handed over, or taken over elsewhere): its output so far is stored, nothing else. */
  private async letGo(id: string, op: RunningOperation): Promise<void> {
    await op.recorder.stored();
    this.running.delete(id);
    this.handedOver.add(id);
    this.settledEvents.emit(id); // whoever waits for it here answers `running` now
  }

  /** Operations this instance no longer follows (handed over, or taken over elsewhere). */
  private readonly handedOver = new Set<string>();

  /**
   * Takes over an operation whose instance stopped or vanished: attaches to it on its host from its
   * resume point and settles it as if it had been started here.
   */
  private async takeOver({ row, from, silentSince }: Claimed): Promise<void> {
    if (this.running.has(row.id) || !row.resume) return;
    const point = row.resume;
    const tails = await storedTails(this.db, row.id);
    let maskValues: string[] = [];
    let target: PoolTarget;
    try {
      if (row.maskSealed) {
        if (!this.opts.sealer) throw new Error("this instance has nothing to unseal its mask values with");
        maskValues = this.opts.sealer.unseal(row.id, row.maskSealed);
      }
      target = await this.opts.targets!(row.serverId);
    } catch (err) {
      // Not now (the database blinked, a key is missing here): it is handed back for a later claim, here
      // or elsewhere; the reconciler settles it `lost` once nobody could for longer than the bound.
      this.logger.warn("could not take an operation over; handing it back", {
        operation_id: row.id,
        error: err instanceof Error ? err.message : String(err),
      });
      await handOver(this.db, this.instanceId, [row.id]);
      return;
    }
    const op = new RunningOperation(this.db, row.id, maskValues, this.opts.outputCapBytes, this.logger, {
      takeoverable: true,
      runnerId: this.instanceId,
      from: { point, stdoutTail: tails.stdout, stderrTail: tails.stderr },
    });
    this.running.set(row.id, op);
    this.logger.info("taking over an operation", {
      operation_id: row.id,
      from_instance: from ?? "handed over",
      silent_since: silentSince.toISOString(),
    });
    if (row.cancelRequestedAt) op.cancel(row.cancelledBy ?? "a cancel request made on another instance");
    const startedAt = (row.startedAt ?? row.createdAt).getTime();
    const run = async (): Promise<RemoteExecOutcome> =>
      op.attach(
        attachRemote(
          this.pool,
          target,
          {
            operationId: row.id,
            from: point.raw,
            startedAt,
            timeoutAt: startedAt + row.timeoutSeconds * 1000,
            silentSince: silentSince.getTime(),
            reattach: this.reattach()!,
          },
          this.handlersFor(op, row.id),
        ),
      );
    this.follow(row, op, run, maskValues);
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
      if (this.running.has(id) || this.handedOver.has(id) || Date.now() >= deadline) return undefined;
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
   * Stops taking work. Operations that can be taken over are handed to the next instance at once
   * (they run on; their output so far is stored); unless `cancelOnShutdown`, which cancels them as
   * before. The others get up to `graceMs` to finish, then are cancelled; what still cannot be stored
   * after SETTLE_AFTER_CANCEL_MS (the database is down) is given up, and the reconciler of another
   * instance (or of the next start) settles it.
   */
  async shutdown(graceMs: number): Promise<void> {
    // Heartbeats go on for what still runs here (else another instance would take it over meanwhile).
    this.upkeep.stopClaiming();
    if (!this.opts.cancelOnShutdown) {
      // A cancelled one is seen to its end here: its cancel lives in this process only.
      const leaving = [...this.running.values()].filter(
        (op) => op.canHandOver && !op.outcome && !op.isCancelled,
      );
      leaving.forEach((op) => op.detach());
      await Promise.race([Promise.all(leaving.map((op) => op.finished)), sleep(SETTLE_AFTER_CANCEL_MS)]);
      try {
        const ids = [...this.handedOver];
        await handOver(this.db, this.instanceId, ids);
        if (ids.length)
          this.logger.info("handed running operations to the next instance", { operations: ids });
      } catch (err) {
        // Their heartbeats stop: another instance takes them over once they are stale.
        this.logger.warn("could not hand operations over; they are taken over once stale", {
          error: describeDatabaseError(err),
        });
      }
    }
    try {
      await this.finishOrCancel(graceMs);
    } finally {
      this.upkeep.stop();
    }
  }

  /** Waits up to `graceMs` for what still runs here, then cancels it; see shutdown(). */
  private async finishOrCancel(graceMs: number): Promise<void> {
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

  private async settle(row: OperationRow, op: RunningOperation, outcome: EndOutcome, maskValues: string[]) {
    const final = finalStatusOf(outcome, {
      neverStarted: !op.started,
      cancelledBy: op.cancelledBy ?? "a cancel request",
      timeoutSeconds: row.timeoutSeconds,
    });
    const reason = final.message === undefined ? null : maskText(final.message, maskValues);
    // Through the masker, after whatever it still holds of the host's stderr (the end, so no resume point matters).
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
    op.release(); // the host may now remove its copy of the output
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
