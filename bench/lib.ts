// The bench harness: every scenario measures our figure and a reference in the same run,
// repeated, warm-up discarded, and reports the median with min and max over the measured runs.

export interface Figure {
  median: number;
  min: number;
  max: number;
  unit: string;
  /** How many measured runs the median is over (warm-ups excluded). */
  runs: number;
}

export interface Row {
  scenario: string;
  ours: Figure;
  reference: Figure;
  referenceName: string;
  /** true when a larger figure is better (throughput), false for latencies, times, memory, counts. */
  higherIsBetter: boolean;
}

export interface BenchOptions {
  quick: boolean;
}

export interface Scenario {
  name: string;
  run(opts: BenchOptions): Promise<Row[]>;
}

/** Median, min and max of one figure's samples, one sample per measured run. */
export function summarise(samples: number[], unit: string): Figure {
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? 0, max: s.at(-1) ?? 0, unit, runs: s.length };
}

/** Nearest-rank percentile (p in 0–1). */
export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? 0;
}

/** Milliseconds since `started` (a process.hrtime.bigint()). */
export const ms = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e6;

/** Every note of this run, kept for bench/results/*.json. */
export const notes: string[] = [];

/** A line of context (progress, CPU, failures) on stderr and in the results file; stdout carries only the table. */
export function note(scenario: string, text: string): void {
  notes.push(`${scenario}: ${text}`);
  process.stderr.write(`bench: ${scenario}: ${text}\n`);
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

const num = (x: number, whole: boolean) => x.toFixed(whole ? 0 : x < 10 ? 2 : x < 100 ? 1 : 0);

export function formatFigure(f: Figure): string {
  const whole = [f.median, f.min, f.max].every((x) => Number.isInteger(x));
  const unit = f.unit ? ` ${f.unit}` : "";
  if (f.runs <= 1) return `${num(f.median, whole)}${unit} (1 run)`;
  return `${num(f.median, whole)}${unit} (${num(f.min, whole)}–${num(f.max, whole)})`;
}

/** ours ÷ reference, with which way is better; "—" when the reference is 0 (counts of failures). */
export function formatRatio(r: Row): string {
  if (r.reference.median === 0) return r.ours.median === 0 ? "— (both 0)" : "—";
  const x = r.ours.median / r.reference.median;
  return `${x.toFixed(x < 0.1 ? 3 : 2)}× (${r.higherIsBetter ? "higher" : "lower"} is better)`;
}

export const TABLE_HEADER = [
  "scenario",
  "ours: median (min–max)",
  "reference: median (min–max)",
  "ratio ours ÷ reference",
];

export function tableLines(rows: Row[]): string[][] {
  return rows.map((r) => [
    r.scenario,
    formatFigure(r.ours),
    `${r.referenceName}: ${formatFigure(r.reference)}`,
    formatRatio(r),
  ]);
}

/** One Markdown table (it reads as plain text too): scenario, ours, reference, ratio. */
export function printTable(rows: Row[]): string {
  const all = [TABLE_HEADER, ...tableLines(rows)];
  const widths = TABLE_HEADER.map((_, i) => Math.max(...all.map((l) => l[i]?.length ?? 0)));
  const row = (l: string[]) => `| ${l.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [
    row(TABLE_HEADER),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...all.slice(1).map(row),
  ].join("\n");
}
