import { roleAcl, roleAtLeast } from "@reoclo/protocol";
import { z } from "zod";
import { effectiveAcl, need, type Principal } from "../access/principal";
import { ServiceError } from "../errors";
import {
  createIntegrationKey,
  createIntegrationKeyInput,
  listIntegrationKeys,
  revokeIntegrationKey,
  type KeyMaker,
} from "../keys/integration-keys";
import { defineVerb } from "./verb";

// Integration keys (spec §11): developers and above make their own; a key never holds more than
// its maker may do, and a key made by another integration key is also within that key's ACL.

/** What a key made by this caller may hold at most, and whom it is recorded as made by. */
export function keyMakerOf(p: Principal): KeyMaker {
  switch (p.kind) {
    case "admin":
      return { cap: null, createdBy: null, viaKey: null };
    case "user":
      return { cap: roleAcl(p.role), createdBy: p.userId, viaKey: null };
    case "integration_key":
      return p.creator
        ? {
            cap: effectiveAcl(p),
            createdBy: p.creator.userId,
            viaKey: p.keyId,
          }
        : { cap: p.acl, createdBy: null, viaKey: p.keyId };
    case "anonymous":
      throw new ServiceError("unauthorized", "Sign in first.");
  }
}

/** A developer (or a key a developer made) revokes only their own keys; managers and above any. */
function onlyMadeBy(p: Principal): string | undefined {
  if (p.kind === "user") return roleAtLeast(p.role, "manager") ? undefined : p.userId;
  if (p.kind === "integration_key" && p.creator)
    return roleAtLeast(p.creator.role, "manager") ? undefined : p.creator.userId;
  return undefined;
}

export const listIntegrationKeysVerb = defineVerb({
  name: "integration-keys.list",
  need: need("api_keys:read"),
  what: "list integration keys",
  input: z.object({}),
  run: async (call) => ({ items: await listIntegrationKeys(call.ctx, call.org), next_cursor: null }),
});

export const createIntegrationKeyVerb = defineVerb({
  name: "integration-keys.create",
  need: need("api_keys:write"),
  what: "create integration keys",
  input: createIntegrationKeyInput,
  run: (call, input) => createIntegrationKey(call.ctx, call.org, keyMakerOf(call.principal), input),
});

export const revokeIntegrationKeyVerb = defineVerb({
  name: "integration-keys.revoke",
  need: need("api_keys:write"),
  what: "revoke integration keys",
  input: z.object({ id: z.string().min(1, "give the key's id") }),
  run: (call, input) =>
    revokeIntegrationKey(call.ctx, call.org, input.id, { onlyMadeBy: onlyMadeBy(call.principal) }),
});

export const INTEGRATION_KEY_VERBS = [
  listIntegrationKeysVerb,
  createIntegrationKeyVerb,
  revokeIntegrationKeyVerb,
] as const;
