// `npx tsx bench/concurrency-loop.ts [--runs N] [--quick] [--driver pglite|postgres]`: our side of
// the concurrency scenario (bench/scenarios/concurrency.ts: 1,000 operations submitted at once
// across 10 sshd hosts, 100 with --quick) on PGlite by default, N times in a row (default 20).
// Each time is the scenario as `npm run bench -- --only concurrency` runs it for one driver: a
// fresh test bed, a warm-up on the cold pool, then 3 measured runs (1 with --quick); the
// OpenSSH reference is left out. Prints the failures of each time, then a total; exits 1 if any.
// It counts rare failures (issue 13, item 5: refused channels in about 2 of 40 runs).
import { describeRun, HOSTS, oursRun } from "./scenarios/concurrency";
import { startTestBed } from "./testbed";

function usage(message: string): never {
  process.stderr.write(
    `concurrency-loop: ${message}\nusage: npx tsx bench/concurrency-loop.ts [--runs N] [--quick] [--driver pglite|postgres]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]) {
  let runs = 20;
  let quick = false;
  let driver: "pglite" | "postgres" = "pglite";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--quick") quick = true;
    else if (arg === "--runs") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) usage("--runs takes a positive whole number");
      runs = n;
    } else if (arg === "--driver") {
      const d = argv[++i];
      if (d !== "pglite" && d !== "postgres") usage("--driver is pglite or postgres");
      driver = d;
    } else usage(`unknown argument ${String(arg)}`);
  }
  return { runs, quick, driver } as const;
}

const { runs, quick, driver } = parseArgs(process.argv.slice(2));
const ops = quick ? 100 : 1000;
const measured = quick ? 1 : 3;
const out = (line: string) => process.stdout.write(`${line}\n`);

out(`${runs} × (warm-up + ${measured} runs of ${ops} operations) on ${driver}, ${HOSTS} hosts`);
let failures = 0;
let failedTimes = 0;
for (let time = 1; time <= runs; time++) {
  const bed = await startTestBed({
    name: "concurrency-loop",
    hosts: HOSTS,
    outputCapBytes: 1024 * 1024,
    driver,
  });
  let failedHere = 0;
  try {
    for (let pass = 0; pass <= measured; pass++) {
      const r = await oursRun(bed.service, ops);
      failedHere += r.failures.length;
      out(`  ${time}/${runs} ${describeRun(pass === 0 ? "warm-up (cold pool)" : `run ${pass}`, r, ops)}`);
    }
  } finally {
    await bed.close();
  }
  failures += failedHere;
  if (failedHere > 0) failedTimes++;
  out(`${time}/${runs}: ${failedHere} failed`);
}
out(`total: ${failures} failed operations; ${failedTimes} of ${runs} times had failures`);
process.exitCode = failures > 0 ? 1 : 0;
