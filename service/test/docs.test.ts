import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { API_BASE_PATH, ERROR_CODES } from "@reoclo/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANAGEMENT_ROUTES } from "../src/api/management";
import { createTestApp, type TestApp } from "./fixtures/app";
import { createTestDatabase, type TestDatabase } from "./fixtures/db";

// The documentation a user reads lives in the repository and says what the code does: every error
// code and every route of the automation API is in docs/api.md, and no document links outside the
// repository or to a file that does not exist.

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const API_DOC = readFileSync(path.join(REPO, "docs/api.md"), "utf8");
const MANAGEMENT_DOC = readFileSync(path.join(REPO, "docs/management-api.md"), "utf8");

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry.startsWith(".") || entry === "dist") continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...markdownFiles(full));
    else if (entry.endsWith(".md")) out.push(full);
  }
  return out;
}

describe("docs/api.md", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase("pglite");
    t = createTestApp(db);
  });
  afterAll(async () => {
    await t?.close();
    await db?.close();
  });

  it.each(Object.entries(ERROR_CODES))("documents the error code %s with its status %i", (code, status) => {
    expect(API_DOC).toMatch(new RegExp(`\\| \`${code}\`\\s+\\| ${status} `));
  });

  it("documents every route of the automation API", () => {
    const routes = t.app.routes
      .filter((r) => r.path.startsWith(API_BASE_PATH) && r.method !== "ALL")
      .map((r) => `${r.method} ${r.path.slice(API_BASE_PATH.length).replace(/:id\b/g, "{id}")}`);
    expect(routes.length).toBeGreaterThan(10);
    // A route has its own heading: `GET /operations/{id}` (whole, between backticks, so that
    // `GET /operations` is not taken for documented by `GET /operations/{id}`), or shares one
    // with its method: `POST /deploy`, `/restart`, `/reboot`.
    const headings = API_DOC.split("\n").filter((line) => /^#{2,4} /.test(line));
    for (const route of new Set(routes)) {
      const [method, p] = route.split(" ");
      const documented = headings.some(
        (h) => h.includes(`\`${route}\``) || (h.includes(`\`${method} /`) && h.includes(`\`${p}\``)),
      );
      expect(documented, `${route} has a heading in docs/api.md`).toBe(true);
    }
  });
});

describe("docs/management-api.md", () => {
  it("has a heading for every route of the management API", () => {
    const headings = MANAGEMENT_DOC.split("\n").filter((line) => /^#{2,4} /.test(line));
    for (const r of MANAGEMENT_ROUTES) {
      const route = `${r.method.toUpperCase()} /api${r.path}`;
      expect(
        headings.some((h) => h.includes(`\`${route}\``)),
        `${route} has a heading in docs/management-api.md`,
      ).toBe(true);
    }
  });
});

describe("the repository's documents", () => {
  const files = markdownFiles(REPO);
  it.each(files.map((f) => [path.relative(REPO, f), f]))(
    "%s links only to files in the repository",
    (_name, file) => {
      const text = readFileSync(file, "utf8");
      const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)]
        .map((m) => m[1]!)
        .filter((l) => !/^[a-z]+:/.test(l));
      for (const link of links) {
        const target = link.split("#")[0]!;
        if (target === "") continue; // a section of the same document
        const resolved = path.resolve(path.dirname(file), target);
        expect(resolved.startsWith(REPO), `${link} leaves the repository`).toBe(true);
        expect(existsSync(resolved), `${link} does not exist`).toBe(true);
      }
      expect(text).not.toMatch(/\.\.\/shared\//);
    },
  );
});
