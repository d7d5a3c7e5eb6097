// Cancelling the workflow cancels the remote command. The runner sends SIGINT, then SIGTERM
// 7.5 s later, then kills the process 2.5 s after that.
import type { ReocloClient } from "@reoclo/client";

/** After a cancel request, how long to keep showing output while the command stops (TERM, then KILL after 5 s). */
export const CANCEL_WAIT_MS = 7_000;

/**
 * The first SIGINT or SIGTERM: with the operation id known, ask the service to cancel it and
 * keep reading its output until it ends (at most CANCEL_WAIT_MS); with no id yet, stop at once,
 * so no further attempt of the request that would start it is made. A second signal stops
 * waiting at once. Problems are collected in `warnings`, to be shown once the log is whole.
 */
export class CancelOnSignal {
  readonly #client: ReocloClient;
  readonly #log: (msg: string) => void;
  readonly #waiting = new AbortController();
  readonly #onSignal = (sig: NodeJS.Signals) => this.#handle(sig);
  #operationId: string | undefined;
  #sent: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  requested = false;
  readonly warnings: string[] = [];

  constructor(client: ReocloClient, log: (msg: string) => void) {
    this.#client = client;
    this.#log = log;
    process.on("SIGINT", this.#onSignal);
    process.on("SIGTERM", this.#onSignal);
  }

  get signal(): AbortSignal {
    return this.#waiting.signal;
  }

  operationKnown(id: string): void {
    this.#operationId = id;
    if (this.requested) this.#send();
  }

  /** Resolves once a cancel request that was sent has been answered (or has failed). */
  settled(): Promise<void> {
    return this.#sent ?? Promise.resolve();
  }

  dispose(): void {
    clearTimeout(this.#timer);
    process.off("SIGINT", this.#onSignal);
    process.off("SIGTERM", this.#onSignal);
  }

  #handle(sig: NodeJS.Signals) {
    if (this.requested) {
      this.#log(`${sig} again: no longer waiting for the command to stop`);
      this.#waiting.abort();
      return;
    }
    this.requested = true;
    if (this.#operationId === undefined) {
      this.#log(
        `${sig}: the workflow was cancelled before the operation was known; not sending the request again`,
      );
      this.#waiting.abort();
      return;
    }
    this.#log(`${sig}: cancelling the remote command`);
    this.#timer = setTimeout(() => this.#waiting.abort(), CANCEL_WAIT_MS);
    this.#send();
  }

  #send() {
    if (this.#sent || this.#operationId === undefined) return;
    const id = this.#operationId;
    this.#sent = this.#client.cancel(id, AbortSignal.timeout(CANCEL_WAIT_MS)).then(
      (op) => this.#log(`cancel of operation ${id} accepted (status ${op.status})`),
      (err: unknown) =>
        void this.warnings.push(
          `Could not cancel operation ${id}: ${err instanceof Error ? err.message : String(err)}`,
        ),
    );
  }
}
