import { isUuid, type DeployRequest, type RestartRequest } from "@reoclo/protocol";
import { and, eq } from "drizzle-orm";
import { recordChange } from "../audit/changes";
import type { ServiceContext } from "../context";
import { applications } from "../db/schema";
import { ServiceError } from "../errors";
import { withDeployLock } from "../operations/scripts";
import {
  startOperation,
  callerOrg,
  type OperationCaller,
  type OperationServices,
  type PrincipalCaller,
  type RequestFacts,
  type Started,
} from "../operations/start";
import { applicationEnv } from "./env";

// Deploy and restart of an application (spec §5): operations started like /exec, on the
// application's server, with its stored (encrypted) environment. Deploys of one application run
// one at a time, in arrival order, on any instance (the runner's deploy queue), and on the host
// under a lock per application (withDeployLock).

type ApplicationRow = typeof applications.$inferSelect;

/** The application of the organisation (for a key, the access pipeline already found it in scope). */
async function applicationOf(ctx: ServiceContext, orgId: string, id: string): Promise<ApplicationRow> {
  const [app] = isUuid(id)
    ? await ctx.db
        .select()
        .from(applications)
        .where(and(eq(applications.id, id.toLowerCase()), eq(applications.orgId, orgId)))
        .limit(1)
    : [];
  if (!app) throw new ServiceError("not_found", "Application not found.");
  return app;
}

/** A deploy as asked: the automation API's body, or the management API's (whose commit_ref is optional). */
export type DeployInput = Omit<DeployRequest, "commit_ref" | "run_id" | "run_context"> &
  Partial<Pick<DeployRequest, "commit_ref" | "run_id" | "run_context">>;

/** POST /deploy: the application's deploy script, after its earlier deploys (or 409 with `wait: false`). */
export async function deployApplication(
  svc: OperationServices,
  caller: OperationCaller,
  input: DeployInput,
  request: RequestFacts,
) {
  const app = await applicationOf(svc.ctx, callerOrg(caller), input.application_id);
  return deployLoaded(svc, caller, app, input, request);
}

/** The deploy of an application already read (its env is decrypted here, once). */
function deployLoaded(
  svc: OperationServices,
  caller: OperationCaller,
  app: ApplicationRow,
  input: DeployInput,
  request: RequestFacts,
) {
  const env = applicationEnv(svc.ctx, app);
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
      publicEnv: {
        ...(input.commit_ref === undefined ? {} : { REOCLO_COMMIT_REF: input.commit_ref }),
        REOCLO_APPLICATION: app.name,
      },
      workingDirectory: app.workingDirectory,
      timeoutSeconds: svc.ctx.config.deployTimeoutSeconds,
      queue: { applicationId: app.id, wait: input.wait },
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}

/**
 * A deploy started by a person or an integration key (the management API, the admin command line):
 * the `operation.start` change row says who asked, and the operation links to it.
 */
export async function deployApplicationAs(
  svc: OperationServices,
  caller: Omit<PrincipalCaller, "auditId">,
  input: DeployInput,
  request: RequestFacts,
): Promise<Started> {
  const app = await applicationOf(svc.ctx, caller.orgId, input.application_id);
  const auditId = await recordChange({ ...svc.ctx, actor: caller.actor }, svc.ctx.db, {
    action: "operation.start",
    orgId: caller.orgId,
    applicationId: app.id,
    serverId: app.serverId,
    details: { type: "deploy", application: app.name, commit_ref: input.commit_ref ?? null },
  });
  return deployLoaded(svc, { ...caller, auditId }, app, input, request);
}

/** POST /restart: the application's restart script, if it has one. */
export async function restartApplication(
  svc: OperationServices,
  caller: OperationCaller,
  input: RestartRequest,
  request: RequestFacts,
) {
  const app = await applicationOf(svc.ctx, callerOrg(caller), input.application_id);
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
      env: applicationEnv(svc.ctx, app),
      publicEnv: { REOCLO_APPLICATION: app.name },
      workingDirectory: app.workingDirectory,
      timeoutSeconds: svc.ctx.config.deployTimeoutSeconds,
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}
