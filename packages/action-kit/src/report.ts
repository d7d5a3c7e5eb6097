// What a step tells the user when it ends: the failure annotation, the refusal message and the
// step summary.
import { NOT_REOCLO_SERVICE, type ExecFinishedResponse } from "@reoclo/client";
import { API_BASE_PATH, EXIT_CODE_CANCELLED, EXIT_CODE_FAILED, EXIT_CODE_TIMEOUT } from "@reoclo/protocol";

/** The annotation keeps the last lines of output; GitHub shows short annotations best. */
const TAIL_LINES = 30;
const TAIL_CHARS = 4000;

export interface Failure {
  /** The annotation's title. */
  title: string;
  /** The annotation's body: the tail of stderr, else of stdout, else a hint. */
  message: string;
  /** The step's exit code: the remote one, so `steps.x.outcome` and logs agree. */
  exitCode: number;
}

export function tail(text: string): string {
  const lines = text.replace(/\s+$/, "").split("\n");
  let out = lines.slice(-TAIL_LINES).join("\n");
  if (out.length > TAIL_CHARS) out = "…" + out.slice(-TAIL_CHARS);
  return out;
}

function duration(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** Undefined when the step succeeded: the command completed with exit code 0. */
export function failureOf(r: ExecFinishedResponse, timeoutSeconds: number): Failure | undefined {
  if (r.outcome === "completed" && r.exit_code === 0) return undefined;
  const output = tail(r.stderr) || tail(r.stdout);
  const exitCode = r.exit_code >= 1 && r.exit_code <= 255 ? r.exit_code : 1;
  // The wire status says cancelled and lost as `failed` (spec §4); the outcome tells them apart.
  switch (r.outcome) {
    case "completed":
      return {
        title: `The command exited with code ${r.exit_code}`,
        message:
          output ||
          `It printed nothing on stdout or stderr. Add \`set -x\` at the top of the command to see which line failed.`,
        exitCode,
      };
    case "timeout":
      return {
        title: `The command timed out after ${timeoutSeconds} s and was killed (exit code ${EXIT_CODE_TIMEOUT})`,
        message:
          (output ? output + "\n\n" : "") +
          `Raise the \`timeout\` input (up to the service's limit) if the command needs longer.`,
        exitCode,
      };
    case "cancelled":
      return {
        title: `The command was cancelled (exit code ${EXIT_CODE_CANCELLED})`,
        message: output || r.reason || "It was stopped before it finished.",
        exitCode,
      };
    case "failed":
      return {
        title: `The command could not be run (exit code ${EXIT_CODE_FAILED})`,
        message: output || "The service could not start the command on the server.",
        exitCode,
      };
    case "lost":
      return {
        title: `The connection to the server was lost while the command ran (exit code ${EXIT_CODE_FAILED})`,
        message:
          (output ? output + "\n\n" : "") +
          "Its outcome is unknown and it was not run again; check the server before re-running the job.",
        exitCode,
      };
  }
}

export interface SummaryRow {
  server: string;
  operationId: string;
  status: string;
  exitCode: number;
  durationMs: number;
}

export function summaryTable(row: SummaryRow): { data: string; header?: boolean }[][] {
  return [
    [
      { data: "Server", header: true },
      { data: "Operation", header: true },
      { data: "Status", header: true },
      { data: "Exit code", header: true },
      { data: "Duration", header: true },
    ],
    [
      { data: row.server },
      { data: row.operationId },
      { data: row.status },
      { data: String(row.exitCode) },
      { data: duration(row.durationMs) },
    ],
  ];
}

/** What the user should do about an API refusal, by envelope code. */
const ADVICE: Record<string, string> = {
  unauthorized:
    "Check the `api_key` secret: it must be an active key of this service (not revoked or expired).",
  ip_not_allowed: `This runner's address is not in the key's IP allowlist; \`GET ${API_BASE_PATH}/key\` with the key shows the address the service saw.`,
  operation_not_allowed:
    "The key does not allow this operation; create a key whose `--operations` include it.",
  server_not_in_scope:
    "The key is not scoped to this server; add it with `reoclo-admin keys create --servers …`.",
  not_found: "No such server in the key's organisation: check the `server_id` input.",
  rate_limited: "The key's rate limit stayed exhausted through every retry; raise it or spread the calls.",
  secrets_unavailable: "The service has no master key to decrypt the server's SSH key (REOCLO_MASTER_KEY).",
  route_not_found: `The service has no such route at this URL: check the \`api_url\` input. It is the service's root URL (e.g. https://reoclo.example.com); the action adds ${API_BASE_PATH}.`,
  [NOT_REOCLO_SERVICE]:
    "Check the `api_url` input: it must be the URL of your Reoclo service (or of a proxy that reaches it).",
  key_revoked:
    "The key was revoked while the command ran: the command goes on on the host, but this step can no longer follow it. Its end is in the service's audit log and operations.",
  key_expired:
    "The key expired while the command ran: the command goes on on the host, but this step can no longer follow it. Use a key that outlives the job.",
};

/** Codes that end a step that had started, rather than refuse one: said as such. */
const ENDED = new Set(["key_revoked", "key_expired"]);

export interface ApiRefusal {
  code: string;
  status: number;
  detail: string;
  requestId?: string | undefined;
  fields?: Record<string, string[]> | undefined;
}

export function refusalMessage(e: ApiRefusal): string {
  const fields = e.fields
    ? Object.entries(e.fields)
        .map(([field, problems]) => `\n  ${field}: ${problems.join("; ")}`)
        .join("")
    : "";
  const advice = ADVICE[e.code];
  const request = e.requestId ? ` (request ${e.requestId})` : "";
  const advice2 = advice ? `\n${advice}` : "";
  // An answer that did not come from a Reoclo service at all: its detail says so already.
  if (e.code === NOT_REOCLO_SERVICE) return `${e.detail}${advice2}`;
  const what = ENDED.has(e.code) ? "stopped following the command" : "refused the command";
  return `The Reoclo API ${what}: ${e.code} (HTTP ${e.status}): ${e.detail}${fields}${request}${advice2}`;
}
