// The fixed remote wrapper and its stdin protocol: request data travels on the channel, never in argv or shell text.
import { readFileSync } from "node:fs";

/** First header line; bump the number whenever the header layout changes. */
export const HEADER_MAGIC = "reoclo-exec-2";
/** A control line the service writes after the header to kill the whole process group. */
export const CANCEL_LINE = "cancel\n";
/** A control line that tells the host's keeper a service is still following the operation. */
export const PING_LINE = "ping\n";
/** Extra seconds the host-side watchdog waits beyond timeout + grace, so the service's own timer always fires first. */
export const WATCHDOG_MARGIN_SECONDS = 10;
/** How an attach request ends when the host has no record of the operation (never started, released, given up). */
export const ATTACH_GONE_SIGNAL = "USR2";
/** How an attach request ends when the operation's end was not recorded on the host (its supervisor was killed). */
export const ATTACH_UNRECORDED_SIGNAL = "USR1";

/**
 * POSIX sh (wrapper.sh, read once at load; its header comment is not sent), run as
 * `sh -c WRAPPER reoclo-exec HEADER_MAGIC WATCHDOG_MARGIN_SECONDS` with the channel as stdin. The
 * header, one field per line, is one of three requests:
 *   reoclo-exec-2
 *   start <operation uuid> <timeout s> <grace s> <keep s> <copy cap bytes> [operation uuids to release…]
 *   base64(working directory)   (empty line: the login directory)
 *   base64(env script)          (`export NAME='value'` lines, single-quoted by the service)
 *   base64(command)
 * or `attach <operation uuid> <stdout offset> <stderr offset>` (the output from those byte offsets of
 * the host's copy, then the exit status), or `release <operation uuids…>` (the service has stored their
 * ends; the host removes their directories). Then control lines until EOF: `cancel`, `ping`.
 * The exit status is the command's own (128+signal when killed); an attach ends by ATTACH_GONE_SIGNAL or
 * ATTACH_UNRECORDED_SIGNAL when there is no exit status to give. With keep > 0 the command survives the
 * channel and its keeper kills it once no ping or attach came for keep seconds.
 */
export const WRAPPER_SCRIPT = readShellScript(new URL("./wrapper.sh", import.meta.url));

/** A .sh file of ours as it is sent to hosts: without its header comment, which is for its readers. */
export function readShellScript(file: URL): string {
  return readFileSync(file, "utf8").replace(/^(?:#.*\n|\n)*/, "");
}

/** POSIX single quoting: the only character that needs care inside '…' is the quote itself. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The exec request string sent to sshd: constant, with no request data in it. */
export const EXEC_REQUEST = `exec sh -c ${shellQuote(WRAPPER_SCRIPT)} reoclo-exec ${shellQuote(HEADER_MAGIC)} ${WATCHDOG_MARGIN_SECONDS}`;

export interface WrapperRequest {
  operationId: string;
  command: string;
  env: Readonly<Record<string, string>>;
  workingDirectory?: string | undefined;
  timeoutSeconds: number;
  graceSeconds: number;
  /** Seconds the host keeps the command without hearing from a service; 0: it lives with its channel only. */
  keepSeconds?: number | undefined;
  /** Bytes of each stream the host keeps for an attach (with keepSeconds > 0). */
  copyCapBytes?: number | undefined;
  /** Operations whose ends are stored: their directories on this host can go. */
  release?: readonly string[] | undefined;
}

export const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** The header the wrapper reads from stdin; env values are single-quoted inside a base64 field. */
export function encodeHeader(req: WrapperRequest): string {
  const envScript = Object.entries(req.env)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}\n`)
    .join("");
  const keep = req.keepSeconds ?? 0;
  const request = [
    "start",
    req.operationId,
    req.timeoutSeconds,
    req.graceSeconds,
    keep,
    keep > 0 ? (req.copyCapBytes ?? 0) : 0,
  ];
  return [
    HEADER_MAGIC,
    [...request, ...(req.release ?? [])].join(" "),
    req.workingDirectory ? b64(req.workingDirectory) : "",
    b64(envScript),
    b64(req.command),
    "",
  ].join("\n");
}

/** Follows an operation started earlier, from these byte offsets of its stdout and stderr. */
export function encodeAttach(operationId: string, from: { stdout: number; stderr: number }): string {
  return `${HEADER_MAGIC}\nattach ${operationId} ${from.stdout} ${from.stderr}\n`;
}

/** The host may remove these operations' directories. */
export function encodeRelease(operationIds: readonly string[]): string {
  return `${HEADER_MAGIC}\nrelease ${operationIds.join(" ")}\n`;
}
