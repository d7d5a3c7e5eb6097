import type { z } from "zod";
import type { ServiceContext } from "../context";
import { actorOf, authorize, principalOrg, type Need, type Principal } from "../access/principal";
import type { SignInLimiter } from "../access/rate-limit";
import { ServiceError } from "../errors";
import type { OperationServices } from "../operations/start";
import { parseOrThrow } from "../validation";

// A verb is one thing a caller of the control plane may do (spec §11): its permission, its input
// schema and its work. The management API, the admin command line (in process, over the admin
// socket, or remote) and the dashboard all call verbs through `invoke`, so each rule is checked
// once, here, and every change is audited with the same actor.

/** What the request knew of its client (the audit rows of sign-ins and sessions use it). */
export interface ClientFacts {
  readonly clientIp?: string | undefined;
  readonly userAgent?: string | undefined;
  readonly requestId?: string | undefined;
  /** The route, part of an Idempotency-Key's request hash. */
  readonly route?: string | undefined;
  readonly idempotencyKey?: string | undefined;
}

/** What verbs work with: the operation services, and what only some verbs need. */
export interface VerbServices extends OperationServices {
  /** Counts sign-in attempts per client address (spec §11); absent where nobody signs in (reoclo-admin). */
  readonly signIn?: SignInLimiter | undefined;
}

export interface VerbCall {
  readonly svc: VerbServices;
  readonly principal: Principal;
  /** The organisation to act in: the caller's, or the one reoclo-admin named (default `default`). */
  readonly org: string | undefined;
  /** The service context whose changes are audited with this caller as actor. */
  readonly ctx: ServiceContext;
  readonly client: ClientFacts;
}

export interface Verb<S extends z.ZodType = z.ZodType, O = unknown> {
  /** `servers.list`, `keys.create`…: the admin command line's command names. */
  readonly name: string;
  /** The one permission check; `null` for what any signed-in caller may do about itself. */
  readonly need: Need | null;
  /** The end of "You cannot …" in a refusal: `add servers`. */
  readonly what: string;
  readonly input: S;
  /** True for the one verb that needs no caller (signing in). */
  readonly public?: boolean;
  /** Only reoclo-admin on the service's machine may run it (organisations, the master key); no route serves it. */
  readonly adminOnly?: boolean;
  run(call: VerbCall, input: z.output<S>): Promise<O>;
}

export type AnyVerb = Verb<z.ZodType, unknown>;

export const defineVerb = <S extends z.ZodType, O>(verb: Verb<S, O>): Verb<S, O> => verb;

/** Checks the caller's permission, validates the input, and runs the verb. */
export async function invoke<S extends z.ZodType, O>(
  verb: Verb<S, O>,
  svc: VerbServices,
  principal: Principal,
  raw: unknown,
  client: ClientFacts = {},
): Promise<O> {
  if (verb.adminOnly && principal.kind !== "admin")
    throw new ServiceError("forbidden", `Only reoclo-admin on the service's machine can ${verb.what}.`);
  if (verb.need) authorize(principal, verb.need, verb.what);
  else if (!verb.public && principal.kind === "anonymous")
    throw new ServiceError("unauthorized", "Sign in first.");
  const params =
    raw && typeof raw === "object" && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : {};
  // Only reoclo-admin chooses the organisation; everyone else acts in their own.
  const named = params.org;
  delete params.org;
  if (named !== undefined && typeof named !== "string")
    throw new ServiceError("validation", "Invalid org: must be an organisation name or id.", {
      org: ["must be a name or id"],
    });
  const org = principal.kind === "admin" ? named : principalOrg(principal);
  const input = parseOrThrow(verb.input, params);
  return verb.run({ svc, principal, org, ctx: { ...svc.ctx, actor: actorOf(principal) }, client }, input);
}
