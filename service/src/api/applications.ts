// /deploy, /restart and /reboot (spec §5): operations started like /exec, answered like /exec.
import {
  deployRequestSchema,
  rebootRequestSchema,
  restartRequestSchema,
  type RunContext,
} from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import { Hono } from "hono";
import { automationAccess } from "../access/pipeline";
import type { ServiceContext } from "../context";
import { applications, servers } from "../db/schema";
import { AppError } from "../errors";
import { runReboot } from "../operations/reboot";
import { withDeployLock } from "../operations/scripts";
import { appEnvSecretContext } from "../secrets/rotate";
import { startOperation, type OperationApiDeps } from "./operations";

type AppRow = typeof applications.$inferSelect;

/** The application the pipeline already found in scope; its env decrypted. */
async function loadApplication(ctx: ServiceContext, orgId: string, id: string) {
  const [app] = await ctx.db
    .select()
    .from(applications)
    .where(and(eq(applications.id, id), eq(applications.orgId, orgId)))
    .limit(1);
  if (!app) throw new AppError("not_found", "Application not found.");
  return { app, env: appEnv(ctx, app) };
}

function appEnv(ctx: ServiceContext, app: AppRow): Record<string, string> {
  if (!app.envEnc) return {};
  if (!ctx.secrets.available)
    throw new AppError(
      "secrets_unavailable",
      "This application's environment is encrypted and the service has no master key (REOCLO_MASTER_KEY).",
    );
  return JSON.parse(ctx.secrets.decrypt(app.envEnc, appEnvSecretContext(app.id))) as Record<string, string>;
}

const runInfo = (input: {
  run_id?: string | null | undefined;
  run_context?: RunContext | null | undefined;
}) => ({
  runId: input.run_id ?? undefined,
  runContext: input.run_context ?? undefined,
});

export function applicationRoutes(deps: OperationApiDeps) {
  const { ctx } = deps;
  return new Hono()
    .post(
      "/deploy",
      automationAccess(deps.access, { operation: "deploy", body: deployRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const { app, env } = await loadApplication(ctx, access.key.orgId, input.application_id.toLowerCase());
        return startOperation(c, deps, access, input, {
          type: "deploy",
          serverId: app.serverId,
          applicationId: app.id,
          command: withDeployLock(app.id, app.deployScript),
          env,
          // The ref is data for the script (validated: no shell or option syntax), not a secret.
          publicEnv: { REOCLO_COMMIT_REF: input.commit_ref, REOCLO_APPLICATION: app.name },
          workingDirectory: app.workingDirectory,
          timeoutSeconds: ctx.config.deployTimeoutSeconds,
          queue: { applicationId: app.id, wait: input.wait },
          ...runInfo(input),
        });
      },
    )
    .post(
      "/restart",
      automationAccess(deps.access, { operation: "restart", body: restartRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const { app, env } = await loadApplication(ctx, access.key.orgId, input.application_id.toLowerCase());
        if (app.restartScript === null)
          throw new AppError(
            "validation",
            `Application ${app.name} has no restart script; add one with reoclo-admin apps add --restart-script-file.`,
            { application_id: ["has no restart script"] },
          );
        return startOperation(c, deps, access, input, {
          type: "restart",
          serverId: app.serverId,
          applicationId: app.id,
          command: app.restartScript,
          env,
          publicEnv: { REOCLO_APPLICATION: app.name },
          workingDirectory: app.workingDirectory,
          timeoutSeconds: ctx.config.deployTimeoutSeconds,
          ...runInfo(input),
        });
      },
    )
    .post(
      "/reboot",
      automationAccess(deps.access, { operation: "reboot", body: rebootRequestSchema }),
      async (c) => {
        const input = c.get("input");
        const access = c.get("access");
        const [server] = await ctx.db
          .select({ rebootCommand: servers.rebootCommand })
          .from(servers)
          .where(eq(servers.id, input.server_id.toLowerCase()))
          .limit(1);
        if (!server) throw new AppError("not_found", "Server not found.");
        const boundMs = ctx.config.rebootTimeoutSeconds * 1000;
        return startOperation(c, deps, access, input, {
          type: "reboot",
          serverId: input.server_id.toLowerCase(),
          command: server.rebootCommand,
          env: {},
          timeoutSeconds: ctx.config.rebootTimeoutSeconds,
          execute: (target) => (handlers, operationId) =>
            runReboot(
              deps.runner.pool,
              target,
              { command: server.rebootCommand, operationId, boundMs },
              handlers,
            ),
          ...runInfo(input),
        });
      },
    );
}
