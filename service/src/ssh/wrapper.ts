// The fixed remote wrapper and its stdin protocol: request data travels on the channel, never in argv or shell text.
import { readFileSync } from "node:fs";

/** First header line; bump the number whenever the header layout changes. */
export const HEADER_MAGIC = "reoclo-exec-1";
/** A control line the service writes after the header to kill the whole process group. */
export const CANCEL_LINE = "cancel\n";
/** Extra seconds the host-side watchdog waits beyond timeout + grace, so the service's own timer always fires first. */
export const WATCHDOG_MARGIN_SECONDS = 10;

/**
 * POSIX sh (wrapper.sh, read once at load; its header comment is not sent), run as
 * `sh -c WRAPPER reoclo-exec HEADER_MAGIC WATCHDOG_MARGIN_SECONDS` with the channel as stdin. Header, one field per line:
 *   reoclo-exec-1
 *   <operation uuid> <timeout seconds> <grace seconds>
 *   base64(working directory)   (empty line: the login directory)
 *   base64(env script)          (`export NAME='value'` lines, single-quoted by the service)
 *   base64(command)
 * Then control lines until EOF: `cancel`. The exit status is the command's own (128+signal when killed).
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
}

export const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/** The header the wrapper reads from stdin; env values are single-quoted inside a base64 field. */
export function encodeHeader(req: WrapperRequest): string {
  const envScript = Object.entries(req.env)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}\n`)
    .join("");
  return [
    HEADER_MAGIC,
    `${req.operationId} ${req.timeoutSeconds} ${req.graceSeconds}`,
    req.workingDirectory ? b64(req.workingDirectory) : "",
    b64(envScript),
    b64(req.command),
    "",
  ].join("\n");
}
