// A child process for the concurrency bench's reference: runs OpenSSH `ssh` processes, at most
// `parallel` at a time, as a CI script with `xargs -P` would, from a small process of its own, so
// neither the bench process's heap nor its event loop paces the reference. Reads
// {"parallel", "expect", "jobs": [[ssh argument, …], …]} on stdin; once every job has exited,
// prints {"seconds", "completions", "peakRssMiB", "failures", "machineCpu"} and exits. The clock
// starts at the first spawn. The summed VmRSS of the ssh processes alive at once is sampled every
// 20 ms; machineCpu is the CPU seconds the whole machine spent busy meanwhile (/proc/stat).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { text } from "node:stream/consumers";

interface Input {
  parallel: number;
  /** What each job must print on stdout (and exit 0) to count as done. */
  expect: string;
  jobs: string[][];
}

const input = JSON.parse(await text(process.stdin)) as Input;

function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Number(m?.[1] ?? 0) / 1024;
  } catch {
    return 0; // gone meanwhile
  }
}

function machineCpuSeconds(): number {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return (fields.reduce((a, b) => a + b, 0) - idle) / 100; // USER_HZ is 100 on Linux
}

const live = new Set<number>();
let peakRssMiB = 0;
const sampler = setInterval(() => {
  let sum = 0;
  for (const pid of live) sum += rssMiB(pid);
  peakRssMiB = Math.max(peakRssMiB, sum);
}, 20);

const failures: string[] = [];
const completions: number[] = [];
const cpuBefore = machineCpuSeconds();
const started = process.hrtime.bigint();
const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;

const one = (args: string[]) =>
  new Promise<void>((resolve) => {
    const child = spawn("ssh", args, { stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid;
    if (pid !== undefined) live.add(pid);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.once("error", (err) => {
      failures.push(`ssh: ${err.message}`);
      resolve();
    });
    child.once("close", (code) => {
      if (pid !== undefined) live.delete(pid);
      if (code !== 0 || stdout !== input.expect) {
        failures.push(
          `ssh exited ${code}, stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`,
        );
      }
      completions.push(elapsed());
      resolve();
    });
  });

let next = 0;
await Promise.all(
  Array.from({ length: Math.min(input.parallel, input.jobs.length) }, async () => {
    for (let i = next++; i < input.jobs.length; i = next++) await one(input.jobs[i] ?? []);
  }),
);
const seconds = elapsed();
clearInterval(sampler);
process.stdout.write(
  JSON.stringify({
    seconds,
    completions,
    peakRssMiB,
    failures,
    machineCpu: machineCpuSeconds() - cpuBefore,
  }) + "\n",
);
