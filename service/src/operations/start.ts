import {
  HEADERS,
  IDEMPOTENCY_KEY_MAX_CHARS,
  IDEMPOTENCY_RETENTION_MS,
  type ExecRequest,
  type OperationType,
  type RunContext,
} from "@reoclo/protocol";
import type { ServiceContext } from "../context";
import { ServiceError } from "../errors";
import type { AutomationKeyRow } from "../keys/lookup";
import { sshTargetFor } from "../servers/servers";
import { requestHash, validIdempotencyKey } from "./idempotency";
import type { OperationRunner, StartRequest } from "./runner";
import { getOperation, type OperationRow } from "./store";

// Starting an operation, the use case behind /exec, /deploy, /restart, /reboot and registry
// login: once per Idempotency-Key, with the audit row that allowed it. No HTTP here: callers
// (the automation API today, the management API and dashboard next) pass what they parsed.

/** What the operation verbs need; built once by createService. */
export interface OperationServices {
  readonly ctx: ServiceContext;
  readonly runner: OperationRunner;
}

/** Who asks: an automation key that passed the access pipeline, and its audit row. */
export interface KeyCaller {
  readonly key: AutomationKeyRow;
  readonly auditId?: number | undefined;
}

/**
 * Who starts an operation when it is not an automation key: a person or an integration key on the
 * management API (`actor` is `user:<id>` / `integration_key:<id>`), with the audit row that allowed it.
 */
export interface PrincipalCaller {
  readonly orgId: string;
  readonly actor: string;
  readonly auditId?: number | undefined;
}

export type OperationCaller = KeyCaller | PrincipalCaller;

/** The organisation an operation is started in. */
export const callerOrg = (caller: OperationCaller) => ("key" in caller ? caller.key.orgId : caller.orgId);

/** Facts of the request that shape the operation: its idempotency and its user agent. */
export interface RequestFacts {
  /** The route, part of the idempotency hash: one key used on two routes is two requests. */
  readonly route: string;
  /** The parsed body, the other part of the hash. */
  readonly input: unknown;
  readonly idempotencyKey?: string | undefined;
  readonly userAgent?: string | undefined;
}

export interface OperationSpec {
  type: OperationType;
  serverId: string;
  command: string;
  env: Readonly<Record<string, string>>;
  workingDirectory?: string | undefined;
  timeoutSeconds: number;
  runId?: string | null | undefined;
  runContext?: RunContext | null | undefined;
  applicationId?: string | undefined;
  credentialId?: string | undefined;
  /** A deploy's commit ref, for the deployment history. */
  commitRef?: string | undefined;
  maskAlso?: StartRequest["maskAlso"];
  /** Values passed like env but never masked (REOCLO_COMMIT_REF…). */
  publicEnv?: StartRequest["publicEnv"];
  queue?: StartRequest["queue"];
  execute?: StartRequest["execute"];
}

export interface Started {
  readonly op: OperationRow;
  /** An earlier request with the same Idempotency-Key created it: nothing new was started. */
  readonly replayed: boolean;
}

export async function startOperation(
  svc: OperationServices,
  caller: OperationCaller,
  spec: OperationSpec,
  request: RequestFacts,
): Promise<Started> {
  // After the verb's own checks (an application without a restart script is refused first) and
  // before the server is looked up: the order the answers have always had.
  if (request.idempotencyKey !== undefined && !validIdempotencyKey(request.idempotencyKey)) {
    const rule = `must be 1–${IDEMPOTENCY_KEY_MAX_CHARS} visible ASCII characters`;
    throw new ServiceError("validation", `${HEADERS.idempotencyKey} ${rule}.`, {
      [HEADERS.idempotencyKey]: [rule],
    });
  }
  const target = await sshTargetFor(svc.ctx, spec.serverId);
  const now = svc.ctx.now();
  const created = await svc.runner.start({
    target,
    command: spec.command,
    env: spec.env,
    publicEnv: spec.publicEnv,
    maskAlso: spec.maskAlso,
    queue: spec.queue,
    execute: spec.execute,
    auditId: caller.auditId,
    // Idempotency-Keys belong to an automation key (spec §6); other callers' requests are not replayed.
    claim:
      request.idempotencyKey && "key" in caller
        ? {
            keyId: caller.key.id,
            orgId: caller.key.orgId,
            key: request.idempotencyKey,
            requestHash: requestHash(request.route, request.input),
            expiresAt: new Date(now.getTime() + IDEMPOTENCY_RETENTION_MS),
          }
        : undefined,
    row: {
      orgId: callerOrg(caller),
      keyId: "key" in caller ? caller.key.id : null,
      actor: "key" in caller ? null : caller.actor,
      serverId: target.serverId,
      applicationId: spec.applicationId,
      credentialId: spec.credentialId,
      commitRef: spec.commitRef ?? null,
      operationType: spec.type,
      workingDirectory: spec.workingDirectory,
      timeoutSeconds: spec.timeoutSeconds,
      runId: spec.runId ?? undefined,
      // The verified claims of a key minted from an OIDC token win over whatever the body claims (spec §12).
      runContext: ("key" in caller ? caller.key.runContextVerified : null) ?? spec.runContext ?? null,
      userAgent: request.userAgent?.slice(0, 512) ?? null,
    },
  });
  if (created.kind === "created") return { op: created.row, replayed: false };
  const op = await getOperation(svc.ctx.db, created.operationId);
  if (!op) throw new ServiceError("not_found", "Operation not found.");
  return { op, replayed: true };
}

/** POST /exec: a command on one server. */
export function execCommand(
  svc: OperationServices,
  caller: OperationCaller,
  input: ExecRequest,
  request: RequestFacts,
) {
  return startOperation(
    svc,
    caller,
    {
      type: "exec",
      serverId: input.server_id,
      command: input.command,
      env: input.env ?? {},
      workingDirectory: input.working_directory,
      timeoutSeconds: input.timeout_seconds,
      runId: input.run_id,
      runContext: input.run_context,
    },
    request,
  );
}

/** The operation once it ended, or as it is when it still runs after `ms`. */
export async function settledWithin(
  svc: OperationServices,
  op: OperationRow,
  ms: number,
): Promise<OperationRow> {
  if (op.status !== "running") return op;
  return (await svc.runner.waitUntilSettled(op.id, ms)) ?? op;
}
