import type { Database } from "../db/database";
import type { Logger } from "../logger";
import { heartbeat, pruneDeployQueue, settleStale } from "./store";

// What keeps operations honest across instances: a heartbeat for this instance's running
// operations, which also brings cancel requests made on other instances; and a reconciler that
// settles `lost` the operations whose instance vanished (spec §4: nothing stays running forever).

export interface UpkeepOptions {
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
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }

  private async beat() {
    try {
      const cancel = await heartbeat(this.db, this.target.runningIds(), this.now());
      for (const { id, by } of cancel)
        this.target.cancelLocal(id, by ?? "a cancel request made on another instance");
    } catch (err) {
      this.logger.warn("operation heartbeat failed", { error: String(err) });
    }
  }

  private async reconcile() {
    try {
      const staleBefore = new Date(this.now().getTime() - this.opts.staleAfterMs);
      const settled = await settleStale(this.db, staleBefore, this.now(), this.opts.outputCapBytes);
      await pruneDeployQueue(this.db);
      if (settled.length) this.logger.warn("settled operations whose runner vanished", { lost: settled });
    } catch (err) {
      this.logger.warn("reconciler failed", { error: String(err) });
    }
  }
}
