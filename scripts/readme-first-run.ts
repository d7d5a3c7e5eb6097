// `npx tsx scripts/readme-first-run.ts`: runs the shell blocks of README.md's "First run" section
// exactly as written, one bash process top to bottom (`set -euo pipefail`), from the repository
// root, as a reader pasting them into a terminal next to `npm start` would. The environment is
// passed through, so a test can point it at its own service (PORT), data directory
// (REOCLO_DATA_DIR), home (HOME) and free port (SSH_PORT). Exits with bash's exit code.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SECTION = "## First run";

/** The ```sh blocks between the section's heading and the next `## ` heading. */
function firstRunCommands(readme: string): string {
  const start = readme.indexOf(`\n${SECTION}\n`);
  if (start === -1) throw new Error(`README.md has no "${SECTION}" section`);
  const rest = readme.slice(start + SECTION.length + 2);
  const end = rest.search(/\n## /);
  const section = end === -1 ? rest : rest.slice(0, end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  if (blocks.length === 0) throw new Error(`"${SECTION}" has no sh block`);
  return blocks.join("\n");
}

const commands = firstRunCommands(readFileSync(`${REPO}/README.md`, "utf8"));
const bash = spawn("bash", ["-euo", "pipefail", "-c", commands], { cwd: REPO, stdio: "inherit" });
bash.once("exit", (code, signal) => {
  process.exitCode = code ?? (signal ? 128 : 1);
});
