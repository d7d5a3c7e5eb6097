// The command's output in the job log, line by line as it arrives. Partial lines wait for
// their newline (or the end) so stdout and stderr never interleave inside one line.
import { randomUUID } from "node:crypto";
import { OUTPUT_STREAMS, type OutputStream } from "@reoclo/protocol";

/** A partial line this long is written without waiting for its newline, so memory stays bounded. */
const MAX_PENDING_CHARS = 64 * 1024;

export interface LogSink {
  write(text: string): unknown;
}

export class LiveLog {
  readonly #sink: LogSink;
  readonly #pending = { stdout: "", stderr: "" };
  /**
   * Remote output must never be read by the runner as a workflow command (`::error::`,
   * `::add-mask::`, `::set-output`…): `::stop-commands::` turns command processing off
   * until the same random token is echoed back.
   */
  readonly #token = randomUUID();
  #open = false;

  constructor(sink: LogSink) {
    this.#sink = sink;
  }

  write(stream: OutputStream, data: string): void {
    let text = this.#pending[stream] + data;
    const cut = text.lastIndexOf("\n");
    if (cut !== -1) {
      this.#emit(text.slice(0, cut + 1));
      text = text.slice(cut + 1);
    }
    if (text.length >= MAX_PENDING_CHARS) {
      this.#emit(text + "\n");
      text = "";
    }
    this.#pending[stream] = text;
  }

  /** Writes what is left of each stream and turns workflow commands back on. */
  close(): void {
    for (const stream of OUTPUT_STREAMS) {
      if (this.#pending[stream]) this.#emit(this.#pending[stream] + "\n");
      this.#pending[stream] = "";
    }
    if (this.#open) this.#sink.write(`::${this.#token}::\n`);
    this.#open = false;
  }

  #emit(text: string) {
    if (!this.#open) {
      this.#sink.write(`::stop-commands::${this.#token}\n`);
      this.#open = true;
    }
    this.#sink.write(text);
  }
}
