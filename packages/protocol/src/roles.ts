// Who may do what on the management API (spec §11): people's roles, the integration keys'
// resource × action matrix of seed 001, and its presets. The service checks these; the
// dashboard and the admin command line show them.
import { z } from "zod";

/** A person's role in their organisation, from least to most. */
export const ROLES = ["viewer", "developer", "manager", "owner"] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES, { error: `must be one of ${ROLES.join(", ")}` });

/** True when `role` is `least` or above. */
export const roleAtLeast = (role: Role, least: Role): boolean => ROLES.indexOf(role) >= ROLES.indexOf(least);

/**
 * The integration keys' matrix (seed 001's resources of this product; `api_keys` is ours: the
 * keys themselves, which seed 001 manages only from the dashboard).
 */
export const ACL_RESOURCES = {
  servers: ["read", "write", "execute"],
  applications: ["read", "write", "execute"],
  deployments: ["read"],
  environment_variables: ["read", "write"],
  registry_credentials: ["read", "write"],
  logs: ["read"],
  users: ["read", "write"],
  audit_logs: ["read"],
  dashboard: ["read"],
  api_keys: ["read", "write"],
} as const satisfies Record<string, readonly ("read" | "write" | "execute")[]>;

export type AclResource = keyof typeof ACL_RESOURCES;
export type AclAction = "read" | "write" | "execute";
/** `servers:read`, `applications:execute`, … */
export type Permission = {
  [R in AclResource]: `${R}:${(typeof ACL_RESOURCES)[R][number]}`;
}[AclResource];
/** What a key may do: resource → its allowed actions. */
export type Acl = Partial<Record<AclResource, AclAction[]>>;

export const ACL_RESOURCE_NAMES = Object.keys(ACL_RESOURCES) as AclResource[];
export const ALL_PERMISSIONS = ACL_RESOURCE_NAMES.flatMap((r) =>
  ACL_RESOURCES[r].map((a) => `${r}:${a}` as Permission),
);

/**
 * The least role that holds each permission (spec §11 "Who"): viewers read everything but users,
 * developers also run commands, deploy and make integration keys, managers change servers,
 * applications, credentials and automation keys, owners manage people.
 */
export const PERMISSION_LEAST_ROLE: Record<Permission, Role> = {
  "servers:read": "viewer",
  "servers:write": "manager",
  "servers:execute": "developer",
  "applications:read": "viewer",
  "applications:write": "manager",
  "applications:execute": "developer",
  "deployments:read": "viewer",
  "environment_variables:read": "viewer",
  "environment_variables:write": "manager",
  "registry_credentials:read": "viewer",
  "registry_credentials:write": "manager",
  "logs:read": "viewer",
  "users:read": "owner",
  "users:write": "owner",
  "audit_logs:read": "viewer",
  "dashboard:read": "viewer",
  "api_keys:read": "viewer",
  "api_keys:write": "developer",
};

/** The permissions a role holds: what an integration key its holder makes may have at most. */
export const roleAcl = (role: Role): Acl => {
  const acl: Acl = {};
  for (const p of ALL_PERMISSIONS) {
    if (!roleAtLeast(role, PERMISSION_LEAST_ROLE[p])) continue;
    const [r, a] = p.split(":") as [AclResource, AclAction];
    (acl[r] ??= []).push(a);
  }
  return acl;
};

/** The permissions both ACLs hold. */
export const aclIntersection = (a: Acl, b: Acl): Acl => {
  const out: Acl = {};
  for (const r of ACL_RESOURCE_NAMES) {
    const actions = (a[r] ?? []).filter((x) => b[r]?.includes(x));
    if (actions.length) out[r] = actions;
  }
  return out;
};

export const INTEGRATION_KEY_PRESETS = ["full_access", "deploy_only", "read_only", "custom"] as const;
export type IntegrationKeyPreset = (typeof INTEGRATION_KEY_PRESETS)[number];

const everything = (): Acl => Object.fromEntries(ACL_RESOURCE_NAMES.map((r) => [r, [...ACL_RESOURCES[r]]]));

/** The permissions of each preset but `custom` (seed 001). */
export const PRESET_ACLS: Record<Exclude<IntegrationKeyPreset, "custom">, Acl> = {
  full_access: everything(),
  deploy_only: {
    applications: ["read", "execute"],
    deployments: ["read"],
    logs: ["read"],
    dashboard: ["read"],
  },
  read_only: Object.fromEntries(ACL_RESOURCE_NAMES.map((r) => [r, ["read"]])),
};

/** True when the ACL holds the permission. */
export function aclAllows(acl: Acl, permission: Permission): boolean {
  const [resource, action] = permission.split(":") as [AclResource, AclAction];
  return acl[resource]?.includes(action) ?? false;
}

/** An ACL as a sorted list of `resource:action` (for summaries and comparisons). */
export const aclPermissions = (acl: Acl): Permission[] => ALL_PERMISSIONS.filter((p) => aclAllows(acl, p));

/** Custom permissions as sent: known resources only, each with actions it has. */
export const aclSchema = z
  .record(z.string(), z.array(z.enum(["read", "write", "execute"])))
  .superRefine((acl, ctx) => {
    for (const [resource, actions] of Object.entries(acl)) {
      // Own resources only: `constructor` or `toString` is an unknown resource, not Object's own.
      const allowed = Object.hasOwn(ACL_RESOURCES, resource)
        ? (ACL_RESOURCES as Record<string, readonly string[]>)[resource]
        : undefined;
      if (!allowed) {
        ctx.addIssue({
          code: "custom",
          path: [resource],
          message: `unknown resource; use ${ACL_RESOURCE_NAMES.join(", ")}`,
        });
        continue;
      }
      for (const a of actions)
        if (!allowed.includes(a))
          ctx.addIssue({
            code: "custom",
            path: [resource],
            message: `${resource} allows ${allowed.join(", ")}, not ${a}`,
          });
    }
  })
  .transform((acl) => {
    const out: Acl = {};
    for (const r of ACL_RESOURCE_NAMES) {
      const actions = acl[r];
      if (actions?.length) out[r] = ACL_RESOURCES[r].filter((a) => actions.includes(a));
    }
    return out;
  });
