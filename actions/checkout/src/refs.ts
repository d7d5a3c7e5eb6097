// What a `ref` input means, decided before anything runs. Names follow git's
// check-ref-format rules (git-check-ref-format(1)), and stricter: a value that could be read as
// an option (leading "-") or that carries shell or revision syntax is refused outright, though
// it would only ever reach git as data.

export type RefTarget =
  /** A commit: fetched by SHA. */
  | { kind: "sha"; sha: string }
  /** refs/heads/<name>: checked out as a local branch <name>. */
  | { kind: "branch"; name: string }
  /** refs/tags/<name>: checked out detached. */
  | { kind: "tag"; name: string }
  /** Any other refs/… (refs/pull/1/merge): checked out detached. */
  | { kind: "ref"; ref: string }
  /** A short name: a branch or a tag of that name, whichever the repository has (branch first). */
  | { kind: "name"; name: string }
  /** The repository's default branch. */
  | { kind: "default" };

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** Why `name` is not a valid ref name, or undefined when it is. */
export function refNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (name.startsWith("-")) return "starts with '-'";
  if (name === "@") return "is '@'";
  // eslint-disable-next-line no-control-regex -- control characters are exactly what git refuses
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name))
    return "contains a space, a control character or one of ~ ^ : ? * [ \\";
  // Valid for git, but no real branch needs them and they are what an injection attempt looks like.
  if (/[$`;&|<>()'"!{}#%]/.test(name)) return "contains a shell character ($ ` ; & | < > ( ) ' \" ! { } # %)";
  if (name.includes("..")) return "contains '..'";
  if (name.includes("@{")) return "contains '@{'";
  if (name.startsWith("/") || name.endsWith("/") || name.includes("//")) return "has an empty path component";
  if (name.endsWith(".")) return "ends with '.'";
  for (const part of name.split("/")) {
    if (part.startsWith(".")) return "has a component starting with '.'";
    if (part.endsWith(".lock")) return "has a component ending with '.lock'";
  }
  return undefined;
}

export function parseRef(ref: string): RefTarget | { problem: string } {
  const value = ref.trim();
  if (value === "") return { kind: "default" };
  if (SHA.test(value.toLowerCase())) return { kind: "sha", sha: value.toLowerCase() };
  const problem = refNameProblem(value);
  if (problem) return { problem };
  if (value.startsWith("refs/heads/")) return { kind: "branch", name: value.slice("refs/heads/".length) };
  if (value.startsWith("refs/tags/")) return { kind: "tag", name: value.slice("refs/tags/".length) };
  if (value.startsWith("refs/")) return { kind: "ref", ref: value };
  return { kind: "name", name: value };
}
