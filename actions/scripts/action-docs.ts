// Keeps the inputs and outputs tables of an action's README in sync with its action.yml.
//
//   npx tsx actions/scripts/action-docs.ts actions/run            rewrite the tables
//   npx tsx actions/scripts/action-docs.ts --check actions/run    exit 1 when they are stale
//
// The README marks each generated region with a pair of comments; everything between them is
// replaced, everything else is left alone:
//
//   <!-- action-docs:inputs -->  …  <!-- /action-docs:inputs -->
//   <!-- action-docs:outputs --> …  <!-- /action-docs:outputs -->
//
// Tables go through Prettier with the repository's settings, so `prettier --check` and
// `--check` here never disagree about a README.
import { existsSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import { isScalar, parseDocument } from "yaml";

export const REGIONS = ["inputs", "outputs"] as const;
export type Region = (typeof REGIONS)[number];

export interface ActionInput {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  /** Undefined when action.yml gives no default. */
  readonly default: string | undefined;
}

export interface ActionOutput {
  readonly name: string;
  readonly description: string;
}

export interface ActionMetadata {
  readonly inputs: readonly ActionInput[];
  readonly outputs: readonly ActionOutput[];
  /** `runs` as written (using, main, post…), for callers that check it. */
  readonly runs: Readonly<Record<string, unknown>>;
  /** Likely mistakes that do not stop the tables being generated. */
  readonly warnings: readonly string[];
}

export class ActionDocsError extends Error {}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function scalar(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new ActionDocsError(`${where} must be a string, number or boolean`);
}

function entries(section: unknown, where: string): [string, Record<string, unknown>][] {
  if (section === undefined || section === null) return [];
  if (!isRecord(section)) throw new ActionDocsError(`${where} must be a mapping of names`);
  return Object.entries(section).map(([name, spec]) => {
    if (spec === null || spec === undefined) return [name, {}];
    if (!isRecord(spec)) throw new ActionDocsError(`${where}.${name} must be a mapping`);
    return [name, spec];
  });
}

/**
 * Unquoted `description: … # …` loses everything from ` #` on (a YAML comment), on GitHub too.
 * Returns a warning for each description cut that way.
 */
function cutDescriptions(
  text: string,
  document: ReturnType<typeof parseDocument>,
  doc: Record<string, unknown>,
): string[] {
  const warnings: string[] = [];
  for (const section of ["inputs", "outputs"] as const) {
    const items = doc[section];
    if (!isRecord(items)) continue;
    for (const name of Object.keys(items)) {
      const node: unknown = document.getIn([section, name, "description"], true);
      if (!isScalar(node) || node.type !== "PLAIN" || !node.range) continue;
      const end = node.range[1];
      const lineEnd = text.indexOf("\n", end);
      const rest = text.slice(end, lineEnd === -1 ? undefined : lineEnd);
      if (/^[ \t]+#/.test(rest)) {
        warnings.push(
          `${section}.${name}.description stops before "${rest.trim()}" (a YAML comment); ` +
            `quote the description to keep the text after the #`,
        );
      }
    }
  }
  return warnings;
}

/** Reads action.yml text: inputs and outputs in file order. */
export function parseActionYaml(text: string): ActionMetadata {
  const document = parseDocument(text);
  if (document.errors.length > 0) {
    throw new ActionDocsError(`action.yml is not valid YAML: ${document.errors[0]?.message ?? ""}`);
  }
  const doc: unknown = document.toJS();
  if (!isRecord(doc)) throw new ActionDocsError("action.yml must be a mapping");
  const inputs = entries(doc.inputs, "inputs").map(([name, spec]): ActionInput => {
    const required = scalar(spec.required, `inputs.${name}.required`);
    return {
      name,
      description: scalar(spec.description, `inputs.${name}.description`) ?? "",
      required: required === "true",
      default: scalar(spec.default, `inputs.${name}.default`),
    };
  });
  const outputs = entries(doc.outputs, "outputs").map(([name, spec]): ActionOutput => ({
    name,
    description: scalar(spec.description, `outputs.${name}.description`) ?? "",
  }));
  return {
    inputs,
    outputs,
    runs: isRecord(doc.runs) ? doc.runs : {},
    warnings: cutDescriptions(text, document, doc),
  };
}

/** `|` escaped, as GFM tables need even inside code spans; one already escaped is kept. */
const escapePipes = (text: string) => text.replace(/\\?\|/g, "\\|");

/** One table cell: one line, Markdown kept, pipes escaped. */
export function cell(text: string): string {
  return escapePipes(text.replace(/\s+/g, " ").trim());
}

/** A code span whose fence is longer than any run of backticks inside. */
function code(text: string): string {
  const oneLine = text.replace(/\s+/g, " ");
  const longest = Math.max(0, ...(oneLine.match(/`+/g) ?? []).map((run) => run.length));
  const fence = "`".repeat(longest + 1);
  const pad = oneLine === "" || oneLine.startsWith("`") || oneLine.endsWith("`") ? " " : "";
  return fence + pad + escapePipes(oneLine) + pad + fence;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The region's Markdown before formatting. */
export function regionMarkdown(region: Region, action: ActionMetadata): string {
  if (region === "inputs") {
    if (action.inputs.length === 0) return "This action has no inputs.";
    return table(
      ["Input", "Required", "Default", "Description"],
      action.inputs.map((i) => [
        code(i.name),
        i.required ? "yes" : "no",
        i.default === undefined ? "" : i.default === "" ? '`""`' : code(i.default),
        cell(i.description),
      ]),
    );
  }
  if (action.outputs.length === 0) return "This action has no outputs.";
  return table(
    ["Output", "Description"],
    action.outputs.map((o) => [code(o.name), cell(o.description)]),
  );
}

const MARKER = /<!--\s*(\/?)action-docs:([a-z-]+)\s*-->/g;

interface Span {
  readonly region: Region;
  /** Index just after the opening marker. */
  readonly from: number;
  /** Index of the closing marker. */
  readonly to: number;
}

/** The marked regions of a README, in order; throws on unknown, unpaired or nested markers. */
export function findRegions(readme: string): Span[] {
  const spans: Span[] = [];
  let open: { region: Region; from: number } | undefined;
  for (const m of readme.matchAll(MARKER)) {
    const [text, slash, name] = m;
    const at = m.index;
    if (!(REGIONS as readonly string[]).includes(name ?? "")) {
      throw new ActionDocsError(`unknown marker ${text} (known: ${REGIONS.join(", ")})`);
    }
    const region = name as Region;
    if (slash === "") {
      if (open) throw new ActionDocsError(`${text} opened before <!-- /action-docs:${open.region} -->`);
      if (spans.some((s) => s.region === region)) throw new ActionDocsError(`${text} appears twice`);
      open = { region, from: at + text.length };
    } else {
      if (open?.region !== region) throw new ActionDocsError(`${text} closes a region that is not open`);
      spans.push({ region, from: open.from, to: at });
      open = undefined;
    }
  }
  if (open) throw new ActionDocsError(`<!-- action-docs:${open.region} --> is never closed`);
  if (spans.length === 0) {
    throw new ActionDocsError(
      `no generated regions: add <!-- action-docs:inputs --><!-- /action-docs:inputs --> ` +
        `and/or the same for outputs where the tables belong`,
    );
  }
  return spans;
}

export interface Rendered {
  /** The README with every marked region regenerated. */
  readonly text: string;
  /** The regions whose content changed. */
  readonly changed: readonly Region[];
  /** From action.yml: likely mistakes worth fixing there. */
  readonly warnings: readonly string[];
}

/**
 * The README as it should be: each marked region replaced by its table, formatted by Prettier
 * with `prettierOptions` (the repository's settings for the README). No I/O.
 */
export async function renderReadme(
  readme: string,
  actionYaml: string,
  prettierOptions: prettier.Options = {},
): Promise<Rendered> {
  const action = parseActionYaml(actionYaml);
  const changed: Region[] = [];
  let out = "";
  let last = 0;
  for (const span of findRegions(readme)) {
    const formatted = await prettier.format(regionMarkdown(span.region, action), {
      ...prettierOptions,
      parser: "markdown",
    });
    const body = `\n\n${formatted.trim()}\n\n`;
    if (readme.slice(span.from, span.to) !== body) changed.push(span.region);
    out += readme.slice(last, span.from) + body;
    last = span.to;
  }
  return { text: out + readme.slice(last), changed, warnings: action.warnings };
}

/** The repository's Prettier settings for `file`, as `prettier --check` would use them. */
export async function prettierOptionsFor(file: string): Promise<prettier.Options> {
  return (await prettier.resolveConfig(file, { editorconfig: true })) ?? {};
}

const USAGE = `usage: npx tsx actions/scripts/action-docs.ts [--check] <action directory>...
  Rewrites the generated inputs/outputs tables in <dir>/README.md from <dir>/action.yml;
  with --check, changes nothing and exits 1 when a README is out of date.`;

async function main(argv: readonly string[]): Promise<number> {
  const check = argv.includes("--check");
  const dirs = argv.filter((a) => a !== "--check");
  if (dirs.length === 0 || dirs.some((d) => d.startsWith("-"))) {
    console.error(USAGE);
    return 2;
  }
  let status = 0;
  for (const dir of dirs) {
    const readmePath = join(dir, "README.md");
    const actionPath = join(dir, "action.yml");
    const shown = (p: string) => {
      const rel = relative(process.cwd(), p);
      return rel === "" || rel.startsWith("..") ? p : rel;
    };
    try {
      const readme = readFileSync(readmePath, "utf8");
      const actionYaml = readFileSync(actionPath, "utf8");
      const { text, changed, warnings } = await renderReadme(
        readme,
        actionYaml,
        await prettierOptionsFor(readmePath),
      );
      for (const w of warnings) console.error(`${shown(actionPath)}: warning: ${w}`);
      if (changed.length === 0) {
        console.log(`${shown(readmePath)}: up to date with ${shown(actionPath)}`);
      } else if (check) {
        console.error(
          `${shown(readmePath)} is out of date with ${shown(actionPath)} (${changed.join(" and ")} ` +
            `table${changed.length > 1 ? "s" : ""}).\n` +
            `Run: npx tsx actions/scripts/action-docs.ts ${dir}\nand commit the result.`,
        );
        status = 1;
      } else {
        writeFileSync(readmePath, text);
        console.log(
          `${shown(readmePath)}: regenerated the ${changed.join(" and ")} table${changed.length > 1 ? "s" : ""} from ${shown(actionPath)}`,
        );
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      console.error(`${shown(readmePath)}: ${why}`);
      status = 1;
    }
  }
  return status;
}

const script = process.argv[1];
const invokedDirectly =
  script !== undefined &&
  existsSync(script) &&
  realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2));
