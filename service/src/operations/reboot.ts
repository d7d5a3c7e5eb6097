// A reboot as an operation (spec §5): send the server's reboot command, see the host go down,
// and complete when it answers SSH again with the same pinned host key, or fail after a bound.
// The downtime is from the host going down to it answering again.
import { closeSsh, connectSsh, SshError } from "../ssh/connect";
import type { PoolTarget, SshPool } from "../ssh/pool";
import {
  runRemote,
  type RemoteExecHandlers,
  type RemoteExecOutcome,
  type RemoteExecution,
} from "../ssh/remote-exec";

export interface RebootPlan {
  command: string;
  operationId: string;
  /** From the command to the host answering again. */
  boundMs: number;
  /** Between two SSH probes; default 500 ms. */
  probeEveryMs?: number;
}

/** How long the reboot command itself may run before the host must have dropped the session. */
const COMMAND_TIMEOUT_SECONDS = 30;
const PROBE_TIMEOUT_MS = 5_000;

type Probe = { ok: true } | { ok: false; code: string; message: string };

async function probe(target: PoolTarget): Promise<Probe> {
  try {
    await closeSsh(await connectSsh(target, { readyTimeoutMs: PROBE_TIMEOUT_MS }));
    return { ok: true };
  } catch (err) {
    const e = err instanceof SshError ? err : undefined;
    return { ok: false, code: e?.code ?? "ssh_error", message: e?.message ?? String(err) };
  }
}

export function runReboot(
  pool: SshPool,
  target: PoolTarget,
  req: RebootPlan,
  handlers: RemoteExecHandlers,
): RemoteExecution {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const every = req.probeEveryMs ?? 500;
  let cancelled = false;
  let command: RemoteExecution | undefined;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const say = (text: string) => handlers.onStdout(Buffer.from(`reoclo: ${text}\n`));
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

  const done = (async (): Promise<RemoteExecOutcome> => {
    say(`sending the reboot command to ${target.host}`);
    command = runRemote(
      pool,
      target,
      {
        command: req.command,
        env: {},
        timeoutSeconds: COMMAND_TIMEOUT_SECONDS,
        operationId: req.operationId,
      },
      handlers,
    );
    const sent = await command.done;
    if (cancelled) return { kind: "cancelled", durationMs: elapsed() };
    if (sent.kind === "failed" || sent.kind === "cancelled") return sent; // nothing reached the host
    if (sent.kind === "exited" && sent.exitCode !== 0) return sent; // e.g. sudo refused: the host stays up
    if (sent.kind === "timeout")
      return {
        kind: "failed",
        code: "reboot_failed",
        reason: `the reboot command neither returned nor dropped the session within ${COMMAND_TIMEOUT_SECONDS} s`,
      };
    // The session dropped (the host is going down), or the command returned 0 and the host goes down soon.
    let downAt = sent.kind === "lost" ? elapsed() : undefined;
    while (downAt === undefined) {
      if (cancelled) return { kind: "cancelled", durationMs: elapsed() };
      if (elapsed() > req.boundMs)
        return {
          kind: "failed",
          code: "reboot_failed",
          reason: `the host still answered SSH ${seconds(elapsed())} after the reboot command: it did not reboot`,
        };
      const before = elapsed();
      const p = await probe(target);
      // Down means unreachable; a refused key or a different host key is no sign of a reboot.
      if (!p.ok && (p.code === "host_unreachable" || p.code === "ssh_error")) downAt = before;
      else await pause(every);
    }
    say(`the host went down; waiting for it to answer SSH again (at most ${seconds(req.boundMs)} in all)`);
    for (;;) {
      if (cancelled) return { kind: "cancelled", durationMs: elapsed() };
      if (elapsed() > req.boundMs)
        return {
          kind: "failed",
          code: "reboot_timeout",
          reason: `the host did not answer SSH again within ${seconds(req.boundMs)} of the reboot command`,
        };
      const p = await probe(target);
      if (p.ok) {
        const downtimeMs = elapsed() - downAt;
        say(`the host answered SSH again with the same host key after ${seconds(downtimeMs)} of downtime`);
        return { kind: "exited", exitCode: 0, durationMs: elapsed(), downtimeMs };
      }
      // Answering SSH but not usable: another host key, a refused key, or only weak algorithms.
      if (p.code === "host_key_mismatch" || p.code === "auth_failed" || p.code === "ssh_negotiation_failed")
        return { kind: "failed", code: p.code, reason: `the host came back but ${p.message}` };
      await pause(every);
    }
  })();

  return {
    done,
    cancel() {
      cancelled = true;
      command?.cancel();
      wake?.();
    },
    pause: () => command?.pause(),
    resume: () => command?.resume(),
    // A reboot ends its own session on purpose: it is followed by this instance alone, never attached to again.
    reattachable: false,
    received: { stdout: 0, stderr: 0 },
    detach: () => undefined,
    release: () => undefined,
  };
}
