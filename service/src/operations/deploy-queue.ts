import type { Database } from "../db/database";
import type { RunningOperation } from "./running";
import { sleep } from "./retry";
import { deployQueueHead, getOperation } from "./store";

// Deploys of one application run one at a time, in arrival order, whichever instance holds them:
// a deploy waits here until it is the oldest running deploy of its application.

/** How often a waiting deploy looks whether its turn has come (or a cancel from another instance). */
const QUEUE_POLL_MS = 250;

/** True once it is this deploy's turn; false when it was cancelled or left the queue while waiting. */
export async function waitForTurn(
  db: Database,
  id: string,
  applicationId: string,
  ahead: number,
  op: RunningOperation,
): Promise<boolean> {
  let said = false;
  for (;;) {
    const [head, own] = await Promise.all([deployQueueHead(db, applicationId), getOperation(db, id)]);
    // A cancel asked on any instance is on the row (a local one is already on `op`).
    if (own?.cancelRequestedAt) op.cancel(own.cancelledBy ?? "a cancel request");
    if (op.isCancelled) return false;
    // Settled meanwhile (the reconciler called it lost) or its application was removed: it
    // never runs, so it can never overlap a later deploy.
    if (own?.status !== "running" || head === undefined) {
      op.neverRan =
        own?.status !== "running"
          ? "It left the deploy queue without running: it was settled while it waited."
          : "It left the deploy queue without running: its application was removed while it waited.";
      return false;
    }
    if (head === id) {
      if (said) op.recorder.note("stderr", "reoclo: its turn came; deploying\n");
      return true;
    }
    if (!said && ahead > 0) {
      said = true;
      op.recorder.note(
        "stderr",
        `reoclo: waiting for ${ahead} earlier deploy(s) of this application (now ${head})\n`,
      );
    }
    await sleep(QUEUE_POLL_MS);
  }
}
