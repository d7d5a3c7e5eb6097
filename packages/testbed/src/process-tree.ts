// Process trees from /proc (Linux): finding and killing a process's descendants, as a power cut
// would, so no sshd session outlives its host; and what tests ask of the process table.
import { execFileSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";

const STOP_GRACE_MS = 3_000;

/** Pids, one per line, of the processes whose command line matches `pattern` (pgrep -f); "" when none. */
export function pgrep(pattern: string): string {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim();
  } catch {
    return ""; // pgrep exits 1 when nothing matches
  }
}

/** How many processes' command lines match `pattern`. */
export const pgrepCount = (pattern: string): number => pgrep(pattern).split("\n").filter(Boolean).length;

/** Every process's whole command line (ps -eww -o args): to check a secret is in nobody's argv. */
export const commandLines = (): string => execFileSync("ps", ["-eww", "-o", "args"], { encoding: "utf8" });

/** Direct and indirect children of `pid`, from /proc (Linux); zombies are skipped because they are already dead. */
export function descendantsOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z") continue;
      const list = children.get(Number(ppid)) ?? [];
      list.push(Number(entry));
      children.set(Number(ppid), list);
    } catch {
      // the process ended while we were looking
    }
  }
  const found: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of children.get(next) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * The file name of the executable `pid` runs: the base name of /proc/<pid>/exe, or /proc/<pid>/comm
 * where that link cannot be read (another user's process); undefined once the process has ended.
 */
export function executableOf(pid: number): string | undefined {
  try {
    return path.basename(readlinkSync(`/proc/${pid}/exe`)).replace(/ \(deleted\)$/, "");
  } catch {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      return undefined;
    }
  }
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Kills sshd's sessions (like a power cut would) and then the listener; resolves when the listener has exited. */
export async function killTree(child: ChildProcess, exited: Promise<void>): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return exited;
  signal(pid, "SIGSTOP"); // freeze accept() so no session is forked while we collect them
  for (
    let round = 0, pids = descendantsOf(pid);
    pids.length > 0 && round < 10;
    round++, pids = descendantsOf(pid)
  ) {
    pids.forEach((p) => signal(p, "SIGKILL"));
  }
  signal(pid, "SIGTERM");
  signal(pid, "SIGCONT");
  let timer: NodeJS.Timeout | undefined;
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      signal(pid, "SIGKILL");
      resolve();
    }, STOP_GRACE_MS);
  });
  await Promise.race([exited, forced]);
  clearTimeout(timer);
  await exited;
}
