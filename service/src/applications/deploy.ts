import type { DeployRequest, RestartRequest } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { applications } from "../db/schema";
import { ServiceError } from "../errors";
import { withDeployLock } from "../operations/scripts";
import {
  startOperation,
  callerOrg,
  type OperationCaller,
  type OperationServices,
  type RequestFacts,
} from "../operations/start";
import { appEnvSecretContext } from "../secrets/rotate";

// Deploy and restart of an application (spec §5): operations started like /exec, on the
// application's server, with its stored (encrypted) environment. Deploys of one application run
// one at a time, in arrival order, on any instance (the runner's deploy queue), and on the host
// under a lock per application (withDeployLock).

type ApplicationRow = typeof applications.$inferSelect;

/** The application (the access pipeline already found it in the key's scope), its env decrypted. */
async function loadApplication(ctx: ServiceContext, orgId: string, id: string) {
  const [app] = await ctx.db
    .select()
    .from(applications)
    .where(and(eq(applications.id, id), eq(applications.orgId, orgId)))
    .limit(1);
  if (!app) throw new ServiceError("not_found", "Application not found.");
  return { app, env: applicationEnv(ctx, app) };
}

function applicationEnv(ctx: ServiceContext, app: ApplicationRow): Record<string, string> {
  if (!app.envEnc) return {};
  if (!ctx.secrets.available)
    throw new ServiceError(
      "secrets_unavailable",
      "This application's environment is encrypted and the service has no master key (REOCLO_MASTER_KEY).",
    );
  return JSON.parse(ctx.secrets.decrypt(app.envEnc, appEnvSecretContext(app.id))) as Record<string, string>;
}

/** POST /deploy: the application's deploy script, after its earlier deploys (or 409 with `wait: false`). */
export async function deployApplication(
  svc: OperationServices,
  caller: OperationCaller,
  input: DeployRequest,
  request: RequestFacts,
) {
  const { app, env } = await loadApplication(svc.ctx, callerOrg(caller), input.application_id);
  return startOperation(
    svc,
    caller,
    {
      type: "deploy",
      serverId: app.serverId,
      applicationId: app.id,
      commitRef: input.commit_ref,
      command: withDeployLock(app.id, app.deployScript),
      env,
      // The ref is data for the script (validated: no shell or option syntax), not a secret.
      publicEnv: { REOCLO_COMMIT_REF: input.commit_ref, REOCLO_APPLICATION: app.name },
      workingDirectory: app.workingDirectory,
      timeoutSeconds: svc.ctx.config.deployTimeoutSeconds,
      queue: { applicationId: app.id, wait: input.wait },
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}

/** POST /restart: the application's restart script, if it has one. */
export async function restartApplication(
  svc: OperationServices,
  caller: OperationCaller,
  input: RestartRequest,
  request: RequestFacts,
) {
  const { app, env } = await loadApplication(svc.ctx, callerOrg(caller), input.application_id);
  if (app.restartScript === null)
    throw new ServiceError(
      "validation",
      `Application ${app.name} has no restart script; add one with reoclo-admin apps add --restart-script-file.`,
      { application_id: ["has no restart script"] },
    );
  return startOperation(
    svc,
    caller,
    {
      type: "restart",
      serverId: app.serverId,
      applicationId: app.id,
      command: app.restartScript,
      env,
      publicEnv: { REOCLO_APPLICATION: app.name },
      workingDirectory: app.workingDirectory,
      timeoutSeconds: svc.ctx.config.deployTimeoutSeconds,
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}
