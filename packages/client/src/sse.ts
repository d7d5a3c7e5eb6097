// An incremental Server-Sent Events parser following the WHATWG HTML "event stream
// interpretation" rules. It is fed text in arbitrary chunks (network reads split anywhere,
// even between the \r and \n of one line ending), so it keeps the unfinished line between
// pushes and decides about a trailing \r only once the next character is known.

export interface SseMessage {
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last event id in effect when this event was dispatched ("" when none was ever set). */
  id: string;
}

export interface SseParser {
  /** Feeds decoded text; calls the listener for every event completed by it. */
  push(chunk: string): void;
  /** The stream ended: a partial event is dropped, as browsers do. */
  end(): void;
  /** What to send back as `Last-Event-ID` on reconnect. */
  readonly lastEventId: string;
  /** The server's `retry:` advice in milliseconds, if any. */
  readonly retryMs: number | undefined;
}

export function parseSse(onMessage: (message: SseMessage) => void): SseParser {
  let pending = "";
  let first = true;
  let data: string[] = [];
  let event = "";
  // The standard keeps the id being read apart from the one committed by a blank line, so a
  // half-received event never moves the position a reconnect resumes from.
  let idBuffer = "";
  let lastEventId = "";
  let retryMs: number | undefined;
  let ended = false;

  const dispatch = () => {
    lastEventId = idBuffer;
    const lines = data;
    const type = event;
    data = [];
    event = "";
    // An event with no data line only updates the id, it is not dispatched.
    if (lines.length === 0) return;
    onMessage({ event: type === "" ? "message" : type, data: lines.join("\n"), id: lastEventId });
  };

  const line = (text: string) => {
    if (text === "") return dispatch();
    if (text.startsWith(":")) return; // a comment, used by servers as a keep-alive
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        data.push(value);
        break;
      case "event":
        event = value;
        break;
      case "id":
        // An id containing NUL is ignored by the standard, so a reconnect never sends one.
        if (!value.includes("\u0000")) idBuffer = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  };

  return {
    push(chunk: string) {
      if (ended) throw new Error("parseSse: push after end");
      pending += chunk;
      if (first && pending.length > 0) {
        if (pending.startsWith("\uFEFF")) pending = pending.slice(1);
        first = false;
      }
      let start = 0;
      for (let i = 0; i < pending.length; i++) {
        const ch = pending[i];
        if (ch === "\n") {
          line(pending.slice(start, i));
          start = i + 1;
        } else if (ch === "\r") {
          // A \r as the very last character may be the first half of \r\n: wait for more.
          if (i === pending.length - 1) break;
          line(pending.slice(start, i));
          if (pending[i + 1] === "\n") i++;
          start = i + 1;
        }
      }
      pending = pending.slice(start);
    },
    end() {
      if (ended) return;
      ended = true;
      // A trailing \r was a whole line ending after all (a blank one dispatches the event);
      // whatever is left after that is a partial event and is dropped.
      if (pending.endsWith("\r")) line(pending.slice(0, -1));
      pending = "";
      data = [];
      event = "";
    },
    get lastEventId() {
      return lastEventId;
    },
    get retryMs() {
      return retryMs;
    },
  };
}
