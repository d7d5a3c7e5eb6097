// Human output of reoclo-admin (with --json the result is printed as is): lists as tables, with
// the columns below for the lists whose rows we know (others show the first row's fields).

const COLUMNS: Record<string, string[]> = {
  orgs: ["id", "name", "created_at"],
  servers: ["id", "name", "host", "port", "user", "host_key_fingerprint"],
  keys: ["id", "name", "prefix", "status", "operations", "servers", "last_used_at"],
  credentials: ["id", "name", "registry_type", "registry_url", "username"],
  apps: ["id", "name", "server_id", "working_directory"],
  audit: ["at", "actor", "outcome", "reason", "operation", "key_id", "server_id", "client_ip", "run_id"],
  users: ["id", "email", "role"],
};

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.map(cell).join(",");
  if (typeof v === "string") return v;
  return JSON.stringify(v);
};

/** What a secret shown once is, and what to do with it now. */
const SHOWN_ONCE: Record<
  string,
  { field: string; what: (r: Record<string, unknown>) => string; then: string }
> = {
  "keys.create": {
    field: "key",
    what: (r) => `Created automation key "${cell(r.name)}" (id ${cell(r.id)}).`,
    then: "This is the only time the key is shown: store it now as a CI secret (for example REOCLO_API_KEY).",
  },
  "integration-keys.create": {
    field: "key",
    what: (r) => `Created integration key "${cell(r.label)}" (id ${cell(r.id)}).`,
    then: "This is the only time the key is shown: store it now where your script or tool reads it.",
  },
  "users.add": {
    field: "password",
    what: (r) => `Added ${cell(r.email)} as ${cell(r.role)} (id ${cell(r.id)}), with this one-time password:`,
    then: "This is the only time it is shown: give it to them; they choose their own when they first sign in.",
  },
};

export function formatHuman(verb: string, result: unknown): string {
  const group = verb.slice(0, verb.lastIndexOf("."));
  const once = SHOWN_ONCE[verb];
  if (once && result && typeof result === "object" && once.field in result) {
    const r = result as Record<string, unknown>;
    return [once.what(r), "", `  ${cell(r[once.field])}`, "", once.then].join("\n");
  }
  if (Array.isArray(result)) {
    const cols = COLUMNS[group] ?? Object.keys((result[0] as object | undefined) ?? {});
    if (result.length === 0) return `(no ${group})`;
    const rows = [cols, ...result.map((r) => cols.map((c) => cell((r as Record<string, unknown>)[c])))];
    const widths = cols.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
    return rows
      .map((r) =>
        r
          .map((v, i) => v.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd(),
      )
      .join("\n");
  }
  if (result && typeof result === "object") {
    return Object.entries(result)
      .map(([k, v]) => `${k}: ${cell(v)}`)
      .join("\n");
  }
  return cell(result);
}
