// `npm run build -w service`: bundles reoclo-admin (src/admin/cli.ts) into dist/reoclo-admin.mjs,
// so a command starts in a tenth of a second instead of compiling TypeScript through tsx on every
// call. Node ESM, code-split: the in-process executor's storage, database drivers and SSH are a
// chunk loaded only when a command runs on this machine's storage.
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build, type Plugin } from "esbuild";
import { managementRouteRefs } from "../src/admin/route-table";

const SERVICE = fileURLToPath(new URL("..", import.meta.url));
export const ADMIN_BUNDLE = "reoclo-admin.mjs";
/** The sources the bundle was built from, for bin/reoclo-admin.js to notice a stale bundle. */
export const ADMIN_INPUTS = "reoclo-admin.inputs";

/**
 * Kept out of the bundle, loaded from node_modules at run time: PGlite finds its wasm and data
 * files next to its own module, and ssh2 loads optional native parts (cpu-features, sshcrypto).
 */
const EXTERNAL = ["@electric-sql/pglite", "ssh2"];

const BESIDE = /new URL\(([^()]+),\s*import\.meta\.url\)/g;

/**
 * Files that read something beside themselves (`new URL("./wrapper.sh", import.meta.url)`, the
 * migrations folder) keep doing so from the bundle: `new URL(x, import.meta.url)` resolves `x` beside
 * their own source file, found relative to the bundle, which lives in the same repository.
 */
function sourceRelativeUrls(outdir: string): Plugin {
  return {
    name: "source-relative-import-meta-url",
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        const text = await readFile(args.path, "utf8");
        if (text.match(BESIDE) === null) return undefined;
        const source = JSON.stringify(path.relative(outdir, args.path).split(path.sep).join("/"));
        return {
          contents: text.replace(
            BESIDE,
            (_, what: string) => `new URL(${what}, new URL(${source}, import.meta.url))`,
          ),
          loader: "ts",
        };
      });
    },
  };
}

/** Builds the bundle into `outdir` (every output file at its top, so relative URLs hold); returns its path. */
export async function buildAdmin(outdir = path.join(SERVICE, "dist")): Promise<string> {
  await rm(outdir, { recursive: true, force: true });
  const routes = await managementRouteRefs();
  const result = await build({
    absWorkingDir: SERVICE,
    entryPoints: { "reoclo-admin": "src/admin/cli.ts" },
    outdir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: EXTERNAL,
    // Bundled CommonJS packages require Node's own modules.
    banner: {
      js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);',
    },
    define: { __REOCLO_MANAGEMENT_ROUTES__: JSON.stringify(routes) },
    plugins: [sourceRelativeUrls(outdir)],
    metafile: true,
    logLevel: "warning",
  });
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes("node_modules/") && !f.startsWith("<"))
    .map((f) => path.relative(outdir, path.resolve(SERVICE, f)).split(path.sep).join("/"));
  await writeFile(path.join(outdir, ADMIN_INPUTS), inputs.sort().join("\n") + "\n");
  return path.join(outdir, ADMIN_BUNDLE);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const started = Date.now();
  const bundle = await buildAdmin();
  console.log(`built ${path.relative(process.cwd(), bundle)} in ${Date.now() - started} ms`);
}
