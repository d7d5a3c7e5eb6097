import { describe, expect, it } from "vitest";
import { parseSse, type SseMessage } from "../src/index.js";

function parseChunks(chunks: Iterable<string>): SseMessage[] {
  const out: SseMessage[] = [];
  const parser = parseSse((m) => out.push(m));
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return out;
}

/** Decodes bytes exactly as the client does (TextDecoder in streaming mode) before parsing. */
function parseBytes(byteChunks: Uint8Array[]): SseMessage[] {
  const decoder = new TextDecoder();
  const text = byteChunks.map((b) => decoder.decode(b, { stream: true }));
  text.push(decoder.decode());
  return parseChunks(text);
}

// Every line-ending style, a BOM, comments, multi-line data, a field without a colon,
// "data:" without a space, ids that persist, an id-only block, a NUL id (ignored), an
// unknown field, retry, and multi-byte characters (split across byte chunks below).
const STREAM =
  "\uFEFF: hello, a comment\n" +
  'event: status\nid: 0\ndata: {"status":"running"}\n\n' +
  "event: output\r\nid: 1\r\ndata: line one\r\ndata:line two\r\n\r\n" +
  "event: output\rid: 2\rdata: caf\u00e9 \u{1F680}\r\r" +
  "data\nfoo: ignored\n\n" +
  "id: 7\n\n" +
  "id: bad\u0000id\nretry: 1500\ndata: after id-only block\n\n" +
  'event: end\ndata: {"exit_code":0}\n\n' +
  "data: never finished";

const EXPECTED: SseMessage[] = [
  { event: "status", id: "0", data: '{"status":"running"}' },
  { event: "output", id: "1", data: "line one\nline two" },
  { event: "output", id: "2", data: "caf\u00e9 \u{1F680}" },
  { event: "message", id: "2", data: "" },
  { event: "message", id: "7", data: "after id-only block" },
  { event: "end", id: "7", data: '{"exit_code":0}' },
];

describe("parseSse", () => {
  it("parses a whole stream in one chunk", () => {
    expect(parseChunks([STREAM])).toEqual(EXPECTED);
  });

  it("gives the same events whatever the split into two chunks (every position)", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      expect(parseChunks([STREAM.slice(0, i), STREAM.slice(i)]), `split at ${i}`).toEqual(EXPECTED);
    }
  });

  it("gives the same events one character at a time", () => {
    expect(parseChunks(STREAM)).toEqual(EXPECTED);
  });

  it("gives the same events when the bytes are split anywhere, even inside a UTF-8 sequence", () => {
    const bytes = new TextEncoder().encode(STREAM);
    for (let i = 0; i <= bytes.length; i++) {
      expect(parseBytes([bytes.slice(0, i), bytes.slice(i)]), `split at byte ${i}`).toEqual(EXPECTED);
    }
    expect(parseBytes(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(EXPECTED);
  });

  it("waits for the next chunk before deciding what a trailing \\r was", () => {
    const out: SseMessage[] = [];
    const parser = parseSse((m) => out.push(m));
    parser.push("data: a\r");
    parser.push("\n\r");
    expect(out).toEqual([]); // the \r\n ended one line; the lone \r may still be half of \r\n
    parser.push("\n");
    expect(out).toEqual([{ event: "message", id: "", data: "a" }]);
  });

  it("treats a final lone \\r as a line ending at the end of the stream", () => {
    expect(parseChunks(["data: a\n\r"])).toEqual([{ event: "message", id: "", data: "a" }]);
  });

  it("tracks lastEventId and retry, and drops a partial event at the end", () => {
    const out: SseMessage[] = [];
    const parser = parseSse((m) => out.push(m));
    parser.push("id: 41\nretry: 250\ndata: x\n\nid: 42\ndata: partial");
    expect(parser.lastEventId).toBe("41");
    expect(parser.retryMs).toBe(250);
    parser.end();
    expect(out).toEqual([{ event: "message", id: "41", data: "x" }]);
  });

  it("keeps only one leading space of a value, and a lone colon-less field has an empty value", () => {
    expect(parseChunks(["data:  two spaces\ndata\n\n"])).toEqual([
      { event: "message", id: "", data: " two spaces\n" },
    ]);
  });
});
