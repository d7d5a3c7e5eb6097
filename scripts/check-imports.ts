// The import rules of service/src, checked in CI (`npm run check:imports`):
//   1. no import cycle (type-only imports count: a cycle of types is still a knot to untie);
//   2. the routes (service/src/api/, and the dashboard's pages in service/src/dashboard/) never reach the tables, the secret box or the SSH layer
//      themselves: they parse, call one verb, answer (route → access → verb → operations → ssh/db).
// A small walk over TypeScript's own import scanner (ts.preProcessFile) rather than a dependency:
// madge would find the cycles but not rule 2, and needs its own TypeScript set-up.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(import.meta.dirname, "..");
const SRC = path.join(ROOT, "service/src");

/** Where the routes may not reach, directly. */
/** The routes: the APIs' and the dashboard's pages, which call verbs the same way. */
const ROUTES = ["api", "dashboard"].map((d) => path.join(SRC, d));
const FORBIDDEN_FOR_ROUTES = ["db/schema.ts", "db/database.ts", "secrets/", "ssh/"].map((p) =>
  path.join(SRC, p),
);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return filesUnder(full);
    return full.endsWith(".ts") && !full.endsWith(".d.ts") ? [full] : [];
  });
}

function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined; // packages are outside the graph
  const base = path.resolve(path.dirname(from), specifier.replace(/\.js$/, ""));
  for (const candidate of [`${base}.ts`, path.join(base, "index.ts"), base]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  throw new Error(`${path.relative(ROOT, from)}: cannot resolve ${specifier}`);
}

const files = filesUnder(SRC);
const graph = new Map<string, string[]>();
for (const file of files) {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  graph.set(
    file,
    importedFiles.map((i) => resolve(file, i.fileName)).filter((f): f is string => f !== undefined),
  );
}

const problems: string[] = [];
const rel = (f: string) => path.relative(SRC, f);

// Rule 1: strongly connected components (Tarjan); any with more than one file, or a file that
// imports itself, is a cycle.
let counter = 0;
const index = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
function visit(v: string) {
  index.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
  }
  if (low.get(v) === index.get(v)) {
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v))
      problems.push(`import cycle: ${component.map(rel).sort().join(" ↔ ")}`);
  }
}
for (const file of files) if (!index.has(file)) visit(file);

// Rule 2.
for (const [file, imports] of graph) {
  if (!ROUTES.some((dir) => file.startsWith(dir + path.sep))) continue;
  for (const target of imports)
    if (FORBIDDEN_FOR_ROUTES.some((f) => target === f || target.startsWith(f)))
      problems.push(
        `${rel(file)} imports ${rel(target)}: routes call a verb, which reaches the tables, secrets or SSH`,
      );
}

if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`check-imports: ${p}\n`);
  process.exit(1);
}
process.stdout.write(`check-imports: ${files.length} files of service/src, no cycle, routes keep to verbs\n`);
