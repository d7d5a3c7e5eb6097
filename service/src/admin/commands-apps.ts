import { OPERATION_STATUSES } from "@reoclo/protocol";
import { choice, type Kit } from "./command-kit";
import { commaList, given, readEnvFile, readText, UsageError, wholeNumber } from "./inputs";
import type { AdminCommand } from "./program";

// apps (and their deploys and environment), operations and the audit log.

type AppOptions = {
  name?: string;
  server?: string;
  workingDirectory?: string;
  deployScriptFile?: string;
  restartScriptFile?: string;
  envFile?: string;
};

export function addAppCommands({ s, group, verb, byId, list }: Kit): void {
  const apps = group("apps", "applications: their deploys and write-only environment");
  const appFields = async (o: AppOptions) => {
    // Files first: a mistake in them is found before anything is asked of the service.
    const deploy_script = await readText(o.deployScriptFile, "deploy-script-file");
    const restart_script = await readText(o.restartScriptFile, "restart-script-file");
    const env = await readEnvFile(o.envFile);
    return {
      name: o.name,
      server_id: o.server === undefined ? undefined : await s.serverId(o.server),
      working_directory: o.workingDirectory,
      deploy_script,
      restart_script,
      env,
    };
  };
  const scripts = (cmd: AdminCommand) =>
    cmd.option("--restart-script-file <path>", "what a restart runs, from this file");
  scripts(
    verb<AppOptions>(apps, "add", "apps.add", "add an application", async (_, o) => given(await appFields(o)))
      .need("--name <name>", "a name for the application")
      .need("--server <server>", "the server it runs on, by id or name")
      .need("--working-directory <dir>", "where its scripts run on the server")
      .need("--deploy-script-file <path>", "what a deploy runs, from this file"),
  ).option("--env-file <path>", "its environment, a dotenv file (stored encrypted, never shown)");
  list(apps, "apps.list", "list the applications");
  byId(apps, "show", "apps.show", "show an application");
  scripts(
    verb<AppOptions>(apps, "update <id>", "apps.update", "change an application in place", async ([id], o) =>
      given({ ...(await appFields(o)), id }),
    )
      .option("--name <name>", "a new name")
      .option("--server <server>", "another server, by id or name")
      .option("--working-directory <dir>", "a new working directory")
      .option("--deploy-script-file <path>", "a new deploy script, from this file"),
  );
  byId(apps, "remove", "apps.remove", "remove an application");

  const application = async (id: string) => ({ tenant_id: await s.tenantId(), application_id: id });
  verb<{ ref?: string }>(
    apps,
    "deploy <application>",
    "apps.deploy",
    "start a deploy; answers at once with the operation's id",
    async ([id], o) => given({ ...(await application(id!)), commit_ref: o.ref }),
  ).option("--ref <ref>", "the commit ref the deploy is of (REOCLO_COMMIT_REF on the host)");
  verb<{ cursor?: string; limit?: number }>(
    apps,
    "deployments <application>",
    "apps.deployments",
    "the application's deploys: status, duration, commit ref, who",
    async ([id], o) => given({ ...(await application(id!)), cursor: o.cursor, limit: o.limit }),
  )
    .option("--cursor <cursor>", "the next page, as the previous one said")
    .option("--limit <n>", "rows per page", wholeNumber);

  const env = apps.command("env").description("an application's environment (write-only)");
  verb(
    env,
    "list <application>",
    "apps.env.list",
    "the variables' names and when each was set, never the values",
    ([id]) => application(id!),
  );
  verb<{ envFile?: string; remove?: string }>(
    env,
    "set <application>",
    "apps.env.set",
    "add or change variables from a dotenv file, and remove some",
    async ([id], o) => {
      const vars = await readEnvFile(o.envFile);
      if (vars === undefined && o.remove === undefined)
        throw new UsageError("give --env-file <path>, --remove <NAME,…>, or both");
      return given({
        ...(await application(id!)),
        env: vars ?? {},
        remove: o.remove === undefined ? undefined : commaList(o.remove),
      });
    },
  )
    .option("--env-file <path>", "the variables to add or change, a dotenv file")
    .option("--remove <names>", "variables to remove, comma-separated");
}

type OperationFilters = {
  server?: string;
  application?: string;
  key?: string;
  user?: string;
  status?: string;
  runId?: string;
  since?: string;
};

type AuditFilters = {
  actor?: string;
  key?: string;
  server?: string;
  runId?: string;
  outcome?: string;
  action?: string;
  since?: string;
};

export function addActivityCommands({ s, group, list, byId }: Kit): void {
  const server = (v: string | undefined) => (v === undefined ? undefined : s.serverId(v));
  const since = "only what happened from this time on (ISO 8601)";

  const operations = group("operations", "what ran: commands, deploys, restarts, reboots");
  list<OperationFilters>(operations, "operations.list", "list operations, newest first", async (o) => ({
    server: await server(o.server),
    application: o.application,
    key: o.key,
    user: o.user,
    status: o.status,
    run_id: o.runId,
    since: o.since,
  }))
    .option("--server <server>", "only on this server, by id or name")
    .option("--application <id>", "only of this application")
    .option("--key <id>", "only started with this automation key")
    .option("--user <id>", "only started by this person")
    .option("--status <status>", `only in this status: ${OPERATION_STATUSES.join(", ")}`)
    .option("--run-id <id>", "only of this CI run")
    .option("--since <time>", since);
  byId(operations, "show", "operations.show", "show an operation and its output");
  byId(operations, "cancel", "operations.cancel", "cancel a running operation");

  const audit = group("audit", "the audit log: every decision of the API and every change");
  list<AuditFilters>(audit, "audit.list", "list audit rows, newest first", async (o) => ({
    actor: o.actor,
    key: o.key,
    server: await server(o.server),
    run_id: o.runId,
    outcome: o.outcome,
    action: o.action,
    since: o.since,
  }))
    .option("--actor <actor>", "only by this actor: user:<id>, integration_key:<id>, admin-cli")
    .option("--key <id>", "only about this automation key")
    .option("--server <server>", "only about this server, by id or name")
    .option("--run-id <id>", "only of this CI run")
    .addOption(
      choice("--outcome <outcome>", "only what was allowed, or only what was denied", ["allowed", "denied"]),
    )
    .option("--action <action>", "only this change, e.g. server.update")
    .option("--since <time>", since);
}
