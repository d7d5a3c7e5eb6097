import type { Database } from "../db/database";
import type { Logger } from "../logger";
import { claimOrphans, heartbeat, pruneDeployQueue, settleStale, type Claimed } from "./store";

// What keeps operations honest across instances: a heartbeat for this instance's running
// operations, which also brings cancel requests made on other instances and tells which ones
// another instance took over; taking over the operations whose instance handed them over or
// vanished; and a reconciler that settles `lost` those that cannot be taken over (spec §4:
// nothing stays running forever).

export interface UpkeepOptions {
  runnerId: string;
  /** The reattach bound: past stale + this, an operation nobody took over is settled `lost`. */
  reattachBoundMs: number;
  heartbeatMs: number;
  /** An operation whose heartbeat is older than this is settled `lost` by any instance. */
  staleAfterMs: number;
  outputCapBytes: number;
}

export interface UpkeepTarget {
  /** Ids of the operations running on this instance. */
  runningIds(): string[];
  /** Applies a cancel requested elsewhere to one of them. */
  cancelLocal(id: string, by: string): void;
  /** Another instance runs this one now. */
  takenOver(id: string): void;
  /** Follows an operation claimed from a stopped or vanished instance; unset: this instance takes none over. */
  takeOver?: ((claimed: Claimed) => Promise<void>) | undefined;
}

export class Upkeep {
  private readonly timers: NodeJS.Timeout[];

  constructor(
    private readonly db: Database,
    private readonly target: UpkeepTarget,
    private readonly logger: Logger,
    private readonly opts: UpkeepOptions,
    private readonly now: () => Date,
  ) {
    const beat = setInterval(() => void this.beat(), opts.heartbeatMs);
    const reconcile = setInterval(() => void this.reconcile(), opts.staleAfterMs / 2);
    beat.unref();
    reconcile.unref();
    this.timers = [beat, reconcile];
    void this.claim(); // at start: what the previous process handed over is taken at once
  }

  /** Since when this instance's heartbeats have been getting through (undefined: the last one failed). */
  private healthySince: number | undefined = Date.now();

  private stopped = false;
  private claimingStopped = false;

  /** Takes nothing more over (the instance is stopping), but keeps heart-beating what it still runs. */
  stopClaiming(): void {
    this.claimingStopped = true;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }

  private async beat() {
    try {
      const ids = this.target.runningIds();
      const { owned, cancel } = await heartbeat(this.db, this.opts.runnerId, ids, this.now());
      for (const { id, by } of cancel)
        this.target.cancelLocal(id, by ?? "a cancel request made on another instance");
      for (const id of ids) if (!owned.has(id)) this.target.takenOver(id);
      this.healthySince ??= Date.now();
    } catch (err) {
      this.healthySince = undefined;
      this.logger.warn("operation heartbeat failed", { error: String(err) });
    }
    await this.claim();
  }

  private claiming = false;

  private async claim() {
    const takeOver = this.target.takeOver;
    if (!takeOver || this.claiming || this.stopped || this.claimingStopped) return;
    this.claiming = true;
    try {
      const staleBefore = new Date(this.now().getTime() - this.opts.staleAfterMs);
      // Quiet instances' operations only once this one has been heard for as long: after the database was
      // away, every instance looks quiet, and the first back must not take everybody's.
      const heard =
        this.healthySince !== undefined && Date.now() - this.healthySince >= this.opts.staleAfterMs;
      const claimed = await claimOrphans(this.db, this.opts.runnerId, staleBefore, this.now(), heard);
      for (const c of claimed)
        await takeOver(c).catch((err: unknown) =>
          this.logger.error("taking an operation over failed", {
            operation_id: c.row.id,
            error: String(err),
          }),
        );
    } catch (err) {
      this.logger.warn("looking for operations to take over failed", { error: String(err) });
    } finally {
      this.claiming = false;
    }
  }

  private async reconcile() {
    try {
      const staleBefore = new Date(this.now().getTime() - this.opts.staleAfterMs);
      // Those that could be taken over wait for a taker, unless none can help any more (or none takes any).
      const resumableBefore = this.target.takeOver
        ? new Date(staleBefore.getTime() - this.opts.reattachBoundMs)
        : staleBefore;
      const settled = await settleStale(
        this.db,
        staleBefore,
        this.now(),
        this.opts.outputCapBytes,
        resumableBefore,
      );
      await pruneDeployQueue(this.db);
      if (settled.length) this.logger.warn("settled operations whose runner vanished", { lost: settled });
    } catch (err) {
      this.logger.warn("reconciler failed", { error: String(err) });
    }
  }
}
