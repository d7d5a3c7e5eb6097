import type { Database } from "../db/database";
import type { Logger } from "../logger";
import type { RemoteExecOutcome, RemoteExecution } from "../ssh/remote-exec";
import { OutputRecorder, type RecorderStart } from "./output";
import type { OperationRow } from "./store";

// One operation running on this instance: its execution on the host (once it has one), its
// output recorder, and whether (and by whom) it was cancelled. The one place a cancel is applied.

export class RunningOperation {
  /** Undefined while the operation waits for its turn. */
  private execution: RemoteExecution | undefined;
  readonly recorder: OutputRecorder;
  /**
   * Who or what cancelled it, for its reason: `automation key "deploy" (rca_3kTm9x)`, a shutdown;
   * undefined while nobody has.
   */
  private by: string | undefined;
  /** Set when it ended before running for another reason than a cancel (it left the deploy queue). */
  neverRan: string | undefined;
  /** The final row as it will be stored, once the outcome is known (stored or not yet). */
  outcome: OperationRow | undefined;
  /** Resolves once it is settled here, or no longer followed here. */
  finished: Promise<void> = Promise.resolve();
  private readonly takeoverable: boolean;

  constructor(
    db: Database,
    id: string,
    maskValues: readonly string[],
    outputCapBytes: number,
    logger: Logger,
    /** `takeoverable`: another instance can attach to it (its row has a resume point); `from`: taken over. */
    opts: { takeoverable?: boolean; runnerId?: string; from?: RecorderStart } = {},
  ) {
    this.takeoverable = opts.takeoverable ?? false;
    // The recorder pauses the channel when storage falls behind; the channel exists only later.
    this.recorder = new OutputRecorder(
      db,
      id,
      maskValues,
      outputCapBytes,
      logger,
      {
        pause: () => this.execution?.pause(),
        resume: () => this.execution?.resume(),
      },
      this.takeoverable ? opts.runnerId : undefined,
      opts.from,
    );
  }

  /** Running on its host in a way another instance can attach to. */
  get canHandOver(): boolean {
    return this.takeoverable && this.execution?.reattachable === true;
  }

  /** Stops following it here without killing it: another instance takes it over. */
  detach(): void {
    this.execution?.detach();
  }

  /** Its end is stored: the host may remove what it kept for an attach. */
  release(): void {
    this.execution?.release();
  }

  get isCancelled(): boolean {
    return this.by !== undefined;
  }

  get cancelledBy(): string | undefined {
    return this.by;
  }

  get started(): boolean {
    return this.execution !== undefined;
  }

  /** Cancels it once, wherever it is: waiting for its turn, or running on the host. */
  cancel(by: string): void {
    if (this.by !== undefined) return;
    this.by = by;
    this.execution?.cancel();
  }

  /** Hands it its execution on the host; one cancelled meanwhile is cancelled there at once. */
  attach(execution: RemoteExecution): Promise<RemoteExecOutcome> {
    this.execution = execution;
    if (this.isCancelled) execution.cancel();
    return execution.done;
  }
}
