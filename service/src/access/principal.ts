import {
  aclAllows,
  aclIntersection,
  roleAcl,
  PERMISSION_LEAST_ROLE,
  roleAtLeast,
  type Acl,
  type Permission,
  type Role,
} from "@reoclo/protocol";
import { ADMIN_CLI_ACTOR } from "../audit/changes";
import { ServiceError } from "../errors";

// Who calls the control plane (spec §11), and the one permission check every verb makes.
// People have a role; integration keys an ACL that is also capped, at every request, by the
// current role of the person who made them; reoclo-admin on the service's machine may do all.

export interface UserPrincipal {
  readonly kind: "user";
  readonly orgId: string;
  readonly userId: string;
  readonly email: string;
  readonly role: Role;
  readonly sessionId: string;
  /** Signed in with a one-time password an owner made: the dashboard asks for a new one first. */
  readonly mustChangePassword?: boolean;
}

export interface IntegrationKeyPrincipal {
  readonly kind: "integration_key";
  readonly orgId: string;
  readonly keyId: string;
  readonly label: string;
  readonly prefix: string;
  readonly acl: Acl;
  /** The person who made it, with their role now; null when reoclo-admin made it. */
  readonly creator: { readonly userId: string; readonly role: Role } | null;
}

/** reoclo-admin in process or over the admin socket: every organisation, every verb. */
export interface AdminPrincipal {
  readonly kind: "admin";
}

/** Nobody yet: the caller of the one public verb, signing in. It is allowed nothing. */
export interface AnonymousPrincipal {
  readonly kind: "anonymous";
}

export type Principal = UserPrincipal | IntegrationKeyPrincipal | AdminPrincipal | AnonymousPrincipal;

export const ADMIN: AdminPrincipal = { kind: "admin" };
export const ANONYMOUS: AnonymousPrincipal = { kind: "anonymous" };

/** What a verb needs: one ACL permission (for integration keys) and the least role (for people). */
export interface Need {
  readonly permission: Permission;
  readonly role: Role;
}

/** A verb's need: the permission, and its least role unless the verb asks for more. */
export const need = (permission: Permission, role: Role = PERMISSION_LEAST_ROLE[permission]): Need => ({
  permission,
  role,
});

/** The audit's `actor` of a principal: `user:<id>`, `integration_key:<id>` or `admin-cli`. */
export function actorOf(p: Principal): string {
  switch (p.kind) {
    case "user":
      return `user:${p.userId}`;
    case "integration_key":
      return `integration_key:${p.keyId}`;
    case "admin":
      return ADMIN_CLI_ACTOR;
    case "anonymous":
      return "anonymous";
  }
}

/** A short human name of a principal, for reasons such as "cancelled by …". */
export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case "user":
      return `${p.email} (${p.role})`;
    case "integration_key":
      return `integration key "${p.label}" (${p.prefix}…)`;
    case "admin":
      return "reoclo-admin";
    case "anonymous":
      return "nobody signed in";
  }
}

/** What an integration key may do now: its ACL within its creator's current role (reoclo-admin's: uncapped). */
export const effectiveAcl = (p: IntegrationKeyPrincipal): Acl =>
  p.creator ? aclIntersection(p.acl, roleAcl(p.creator.role)) : p.acl;

/** True when the principal may do what `need` names. */
export function allows(p: Principal, need: Need): boolean {
  switch (p.kind) {
    case "admin":
      return true;
    case "user":
      return roleAtLeast(p.role, need.role);
    case "integration_key":
      return (
        aclAllows(p.acl, need.permission) && (p.creator === null || roleAtLeast(p.creator.role, need.role))
      );
    case "anonymous":
      return false;
  }
}

/** The one permission check of a verb: 403 `forbidden` saying what is missing. */
export function authorize(p: Principal, need: Need, what: string): void {
  if (allows(p, need)) return;
  if (p.kind === "user")
    throw new ServiceError(
      "forbidden",
      `Your role (${p.role}) cannot ${what}: it needs ${need.role} or above; ask an owner of your organisation.`,
    );
  if (p.kind === "anonymous") throw new ServiceError("unauthorized", "Sign in first.");
  if (p.kind === "integration_key" && !aclAllows(p.acl, need.permission))
    throw new ServiceError(
      "forbidden",
      `This integration key cannot ${what}: it lacks the ${need.permission} permission.`,
    );
  throw new ServiceError(
    "forbidden",
    `This integration key cannot ${what}: the person who made it is no longer ${need.role} or above.`,
  );
}

/** The organisation a principal acts in; reoclo-admin names one (or uses `default`). */
export const principalOrg = (p: Principal): string | undefined =>
  p.kind === "user" || p.kind === "integration_key" ? p.orgId : undefined;
