import { InvalidArgumentError } from "commander";
import { INTEGRATION_KEY_PRESETS, ROLES } from "@reoclo/protocol";
import { expiresOption, type Kit } from "./command-kit";
import { commaList, given } from "./inputs";

// People (users and their roles) and integration keys (rk_t_…), spec §11.

/** `servers:read,applications:read,applications:execute` → {servers: ["read"], applications: […]}. */
export function permissions(value: string): Record<string, string[]> {
  const acl: Record<string, string[]> = {};
  for (const item of commaList(value)) {
    const [resource, action, extra] = item.split(":");
    if (!resource || !action || extra !== undefined)
      throw new InvalidArgumentError(`"${item}" is not resource:action, e.g. servers:read.`);
    (acl[resource] ??= []).push(action);
  }
  return acl;
}

export function addPeopleCommands({ group, verb, list, byId }: Kit): void {
  const users = group("users", "the people who sign in to the dashboard, and their roles");
  verb<{ email: string; role: string }>(
    users,
    "add",
    "users.add",
    "add a person; prints a one-time password, shown this once",
    (_, o) => ({ email: o.email, role: o.role }),
  )
    .need("--email <email>", "their email address, which they sign in with")
    .need("--role <role>", "what they may do", ROLES);
  list(users, "users.list", "list the people");
  verb<{ role: string }>(users, "update <id>", "users.update", "change a person's role", ([id], o) => ({
    id,
    role: o.role,
  })).need("--role <role>", "their new role", ROLES);
  byId(users, "remove", "users.remove", "remove a person: their sessions and integration keys stop working");

  const keys = group("integration-keys", "integration keys (rk_t_…) for scripts, IDEs and the MCP server");
  verb<{ label: string; preset: string; permissions?: Record<string, string[]>; expires?: string }>(
    keys,
    "create",
    "integration-keys.create",
    "create an integration key; it is shown this once",
    (_, o) => given({ label: o.label, preset: o.preset, permissions: o.permissions, expires: o.expires }),
  )
    .need("--label <label>", "what the key is for")
    .need("--preset <preset>", "what it may do", INTEGRATION_KEY_PRESETS)
    .option(
      "--permissions <permissions>",
      "with --preset custom: resource:action, comma-separated (servers:read,applications:execute,…)",
      permissions,
    )
    .addOption(expiresOption());
  list(keys, "integration-keys.list", "list the integration keys (never the keys themselves)");
  byId(keys, "revoke", "integration-keys.revoke", "revoke an integration key: it stops working at once");
}
