import { EXIT_CODE_CANCELLED, EXIT_CODE_FAILED, EXIT_CODE_TIMEOUT } from "@reoclo/protocol";
import type { RemoteExecOutcome } from "../ssh/remote-exec";

// How the end of a run on the host becomes an operation's final status, exit code and the one
// sentence that says who or what ended it (spec §4).

export interface EndContext {
  /** It was cancelled while it waited for its turn: it never ran. */
  neverStarted: boolean;
  cancelledBy: string;
  timeoutSeconds: number;
}

/** How a run ended on the host, when it ended while followed here (not handed over). */
export type EndOutcome = Exclude<RemoteExecOutcome, { kind: "detached" }>;

export function finalStatusOf(o: EndOutcome, ctx: EndContext) {
  switch (o.kind) {
    case "exited":
      return {
        status: "completed" as const,
        exitCode: o.exitCode,
        durationMs: o.durationMs,
        message: undefined,
      };
    case "timeout":
      return {
        status: "timeout" as const,
        exitCode: EXIT_CODE_TIMEOUT,
        durationMs: o.durationMs,
        message: `Timed out after ${ctx.timeoutSeconds} s; the command's process group was killed.`,
      };
    case "cancelled":
      return {
        status: "cancelled" as const,
        exitCode: EXIT_CODE_CANCELLED,
        durationMs: o.durationMs,
        message: ctx.neverStarted
          ? `Cancelled by ${ctx.cancelledBy} before it ran (it was waiting for its turn); it never ran.`
          : `Cancelled by ${ctx.cancelledBy}; the command's process group was killed.`,
      };
    case "failed":
      return {
        status: "failed" as const,
        exitCode: EXIT_CODE_FAILED,
        durationMs: null,
        message:
          o.code === "left_deploy_queue" ? o.reason : `Could not run the command (${o.code}): ${o.reason}`,
      };
    case "lost":
      return {
        status: "lost" as const,
        exitCode: EXIT_CODE_FAILED,
        durationMs: null,
        message: `The connection to the host dropped mid-run, so the command's outcome is unknown: ${o.reason}`,
      };
  }
}
