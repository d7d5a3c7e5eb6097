import { z } from "zod";
import { need } from "../access/principal";
import {
  createKey,
  createKeyInput,
  listKeys,
  revokeKey,
  showKey,
  updateKey,
  updateKeyInput,
} from "../keys/keys";
import { defineVerb } from "./verb";

// Automation (`rca_`) keys on the control plane (spec §2, §10, §11): managers and up make, change
// and revoke them (seed 001); anyone who may read keys sees them, never their secret or hash.

const keyRef = z.object({ id: z.string().trim().min(1, "give the key's id") });
const manageKeys = need("api_keys:write", "manager");

export const keysList = defineVerb({
  name: "keys.list",
  need: need("api_keys:read"),
  what: "list automation keys",
  input: z.object({}),
  run: async (call) => ({ items: await listKeys(call.ctx, call.org), next_cursor: null }),
});

export const keysShow = defineVerb({
  name: "keys.show",
  need: need("api_keys:read"),
  what: "see automation keys",
  input: keyRef,
  run: (call, input) => showKey(call.ctx, input.id, call.org),
});

export const keysCreate = defineVerb({
  name: "keys.create",
  need: manageKeys,
  what: "create automation keys",
  input: createKeyInput,
  run: (call, input) =>
    createKey(
      call.ctx,
      { ...input, org: call.org },
      call.principal.kind === "integration_key" ? call.principal.keyId : null,
    ),
});

export const keysUpdate = defineVerb({
  name: "keys.update",
  need: manageKeys,
  what: "change automation keys",
  input: updateKeyInput,
  run: (call, input) => updateKey(call.ctx, { ...input, org: call.org }),
});

export const keysRevoke = defineVerb({
  name: "keys.revoke",
  need: manageKeys,
  what: "revoke automation keys",
  input: keyRef,
  run: (call, input) => revokeKey(call.ctx, input.id, call.org),
});

export const AUTOMATION_KEY_VERBS = [keysList, keysShow, keysCreate, keysUpdate, keysRevoke] as const;
