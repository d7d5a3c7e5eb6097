// Human output of reoclo-admin (with --json the result is printed as is).

const COLUMNS: Record<string, string[]> = {
  orgs: ["id", "name", "created_at"],
  servers: ["id", "name", "host", "port", "user", "host_key_fingerprint"],
  keys: ["id", "name", "prefix", "status", "operations", "servers", "last_used_at"],
  credentials: ["id", "name", "registry_type", "registry_url", "username"],
  apps: ["id", "name", "server_id", "working_directory"],
  audit: ["at", "actor", "outcome", "reason", "operation", "key_id", "server_id", "client_ip", "run_id"],
};

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.map(cell).join(",");
  if (typeof v === "string") return v;
  return JSON.stringify(v);
};

export function formatHuman(command: string, result: unknown): string {
  const group = command.split(".")[0] ?? "";
  if (command === "keys.create" && result && typeof result === "object" && "key" in result) {
    const k = result as { id: string; name: string; key: string };
    return [
      `Created automation key "${k.name}" (id ${k.id}).`,
      "",
      `  ${k.key}`,
      "",
      "This is the only time the key is shown: store it now as a CI secret (for example REOCLO_API_KEY).",
    ].join("\n");
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
