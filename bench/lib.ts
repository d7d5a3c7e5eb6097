// The bench harness: every scenario measures our figure and a reference in the same run,
// repeated, warm-up discarded, and reports the median with min and max.

export interface Figure {
  median: number;
  min: number;
  max: number;
  unit: string;
}

export interface Row {
  scenario: string;
  ours: Figure;
  reference: Figure;
  referenceName: string;
  /** true when a larger figure is better (throughput), false for latencies. */
  higherIsBetter: boolean;
}

export interface BenchOptions {
  quick: boolean;
}

export interface Scenario {
  name: string;
  run(opts: BenchOptions): Promise<Row[]>;
}

export function summarise(samples: number[], unit: string): Figure {
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? 0, max: s.at(-1) ?? 0, unit };
}

/** Runs `op` `count` times with `concurrency` in flight; returns operations per second. */
export async function throughput(
  op: () => Promise<unknown>,
  count: number,
  concurrency: number,
): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) await op();
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return count / seconds;
}

const fmt = (f: Figure) =>
  `${f.median.toFixed(f.median < 10 ? 2 : 0)} ${f.unit} (${f.min.toFixed(f.min < 10 ? 2 : 0)}–${f.max.toFixed(f.max < 10 ? 2 : 0)})`;

export function printTable(rows: Row[]): string {
  const header = ["scenario", "ours: median (min–max)", "reference", "reference: median (min–max)", "ratio"];
  const lines = rows.map((r) => [
    r.scenario,
    fmt(r.ours),
    r.referenceName,
    fmt(r.reference),
    `${(r.ours.median / r.reference.median).toFixed(2)}×`,
  ]);
  const all = [header, ...lines];
  const widths = header.map((_, i) => Math.max(...all.map((l) => l[i]?.length ?? 0)));
  const row = (l: string[]) => `| ${l.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [row(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...lines.map(row)].join("\n");
}
