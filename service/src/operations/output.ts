import { OUTPUT_STREAMS, OUTPUT_TAIL_BYTES, type OutputStream } from "@reoclo/protocol";
import type { Database } from "../db/database";
import { classifyDatabaseError, describeDatabaseError } from "../db/errors";
import type { Logger } from "../logger";
import { maskText, OutputMasker } from "./masking";
import { retryDelayMs, sleep } from "./retry";
import type { ResumePoint } from "../db/schema";
import { insertOutput, type OutputTotals, type StoredEvent } from "./store";

// The output of one running operation: masked, numbered (the number is the SSE event id), kept
// in a tail per stream for the polling answers, stored in batches up to the cap, and fanned out
// live to subscribers. Memory stays bounded whatever the command prints.

export interface OutputEvent {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

const FLUSH_BYTES = 256 * 1024;
const FLUSH_MS = 50;
/** Above this much unflushed output the channel is paused until the database caught up. */
const HIGH_WATER_BYTES = 2 * 1024 * 1024;

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  push(b: Buffer) {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= OUTPUT_TAIL_BYTES)
      this.size -= this.chunks.shift()!.length;
  }
  get value(): Buffer {
    const all = Buffer.concat(this.chunks);
    return all.length > OUTPUT_TAIL_BYTES ? all.subarray(all.length - OUTPUT_TAIL_BYTES) : all;
  }
}

/** Where a recorder taking over an operation starts: its resume point and the tails stored so far. */
export interface RecorderStart {
  point: ResumePoint;
  stdoutTail: Buffer;
  stderrTail: Buffer;
}

export class OutputRecorder {
  private seq = 0;
  /** Raw bytes received per stream (before masking). */
  private readonly raw = { stdout: 0, stderr: 0 };
  /** With `resumable`: the latest point another instance could resume from, and whether it is stored. */
  private point: ResumePoint | undefined;
  private pointDirty = false;
  private readonly maskers: Record<OutputStream, OutputMasker>;
  private readonly tails = { stdout: new Tail(), stderr: new Tail() };
  private readonly bytes = { stdout: 0, stderr: 0 };
  private readonly storedBytes = { stdout: 0, stderr: 0 };
  private readonly truncated = { stdout: false, stderr: false };
  private pending: StoredEvent[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** Bytes handed to the database and not yet confirmed written. */
  private inFlight = 0;
  private readonly listeners = new Set<(e: OutputEvent) => void>();
  private abandoned = false;
  /** Another instance took the operation over: nothing more is stored from here. */
  private notOurs = false;

  constructor(
    private readonly db: Database,
    private readonly operationId: string,
    private readonly maskValues: readonly string[],
    private readonly capBytes: number,
    private readonly logger: Logger,
    private readonly flow: { pause(): void; resume(): void },
    /** Stores resume points with the output (while this instance runs it), so another can take it over. */
    private readonly resumeFor: string | undefined = undefined,
    from?: RecorderStart,
  ) {
    this.maskers = { stdout: new OutputMasker(maskValues), stderr: new OutputMasker(maskValues) };
    if (from) {
      const p = from.point;
      this.seq = p.seq;
      Object.assign(this.raw, p.raw);
      Object.assign(this.bytes, p.bytes);
      Object.assign(this.storedBytes, p.stored);
      Object.assign(this.truncated, p.truncated);
      this.tails.stdout.push(from.stdoutTail);
      this.tails.stderr.push(from.stderrTail);
      this.point = structuredClone(p);
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  subscribe(fn: (e: OutputEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * A line of the service's own (a deploy waiting for its turn, the reason at the end): recorded like
   * output, but not the host's, so it moves no resume offset. Masked whole, as it arrives whole.
   */
  note(stream: OutputStream, text: string): void {
    this.emit(stream, Buffer.from(maskText(text, this.maskValues)));
  }

  write(stream: OutputStream, raw: Buffer): void {
    this.raw[stream] += raw.length;
    this.emit(stream, this.maskers[stream].push(raw));
    if (this.resumeFor !== undefined) this.mark();
  }

  /**
   * Records a resume point when both maskers can tell how much raw output they hold back: from
   * there, fresh maskers on another instance see exactly what this one has not emitted yet.
   */
  private mark(): void {
    const heldOut = this.maskers.stdout.heldRaw();
    const heldErr = this.maskers.stderr.heldRaw();
    if (heldOut === undefined || heldErr === undefined) return;
    this.point = {
      seq: this.seq,
      raw: { stdout: this.raw.stdout - heldOut, stderr: this.raw.stderr - heldErr },
      bytes: { ...this.bytes },
      stored: { ...this.storedBytes },
      truncated: { ...this.truncated },
    };
    this.pointDirty = true;
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Resolves once every event emitted so far is in the database (or past the cap). */
  async stored(): Promise<void> {
    this.flush();
    await this.writing;
  }

  /**
   * Ends the output: flushes the maskers and hands everything pending to storage. The totals are
   * final at once; `stored()` tells when the database has all of it.
   */
  finish(): OutputTotals {
    for (const s of OUTPUT_STREAMS) this.emit(s, this.maskers[s].end());
    this.flush();
    return {
      stdoutTail: this.tails.stdout.value,
      stderrTail: this.tails.stderr.value,
      stdoutBytes: this.bytes.stdout,
      stderrBytes: this.bytes.stderr,
      stdoutTruncated: this.truncated.stdout,
      stderrTruncated: this.truncated.stderr,
      lastSeq: this.seq,
    };
  }

  private emit(stream: OutputStream, data: Buffer): void {
    if (data.length === 0) return;
    const event = { seq: ++this.seq, stream, data };
    this.bytes[stream] += data.length;
    this.tails[stream].push(data);
    for (const fn of this.listeners) fn(event);
    const room = this.capBytes - this.storedBytes[stream];
    if (room <= 0) {
      this.truncated[stream] = true;
      return;
    }
    const kept = data.length > room ? data.subarray(0, room) : data;
    if (kept.length < data.length) this.truncated[stream] = true;
    this.storedBytes[stream] += kept.length;
    this.pending.push({ seq: event.seq, stream, data: kept });
    this.pendingBytes += kept.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const point = this.pointDirty ? this.point : undefined;
    if (this.pending.length === 0 && point === undefined) return;
    this.pointDirty = false;
    const batch = this.pending;
    const size = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight += size;
    if (this.inFlight > HIGH_WATER_BYTES) this.flow.pause();
    // Batches are written one after another, so stored order is event order.
    this.writing = this.writing.then(async () => {
      await this.store(batch, point);
      this.inFlight -= size;
      if (this.inFlight <= HIGH_WATER_BYTES / 2) this.flow.resume();
    });
  }

  /**
   * Writes one batch, retrying while the database does not answer (a restart): the channel stays
   * paused past the high-water mark meanwhile, so memory is bounded and nothing is lost. The
   * insert is idempotent, so a retry after a lost answer does not double it.
   */
  private async store(batch: StoredEvent[], point: ResumePoint | undefined): Promise<void> {
    for (let attempt = 0; !this.notOurs; attempt++) {
      try {
        const owned = await insertOutput(
          this.db,
          this.operationId,
          batch,
          point && this.resumeFor !== undefined ? { point, runnerId: this.resumeFor } : undefined,
        );
        if (!owned) {
          // Another instance took it over: it reads this output from the host again.
          this.logger.warn("another instance runs this operation now; its output is no longer stored here", {
            operation_id: this.operationId,
          });
          this.notOurs = true;
          return;
        }
        if (attempt > 0)
          this.logger.info("stored operation output again", { operation_id: this.operationId });
        return;
      } catch (err) {
        if (this.abandoned || classifyDatabaseError(err) === "bad_value") {
          this.logger.error("storing operation output failed; batch dropped", {
            operation_id: this.operationId,
            events: batch.length,
            error: describeDatabaseError(err),
          });
          return;
        }
        if (attempt === 0)
          this.logger.warn("storing operation output failed; retrying until the database answers", {
            operation_id: this.operationId,
            error: describeDatabaseError(err),
          });
        await sleep(retryDelayMs(attempt));
      }
    }
  }

  /** Stops retrying (the service is stopping): what is still unwritten is dropped, with a log line. */
  abandon(): void {
    this.abandoned = true;
  }
}
