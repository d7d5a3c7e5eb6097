import { z } from "zod";
import { need } from "../access/principal";
import {
  addCredential,
  addCredentialInput,
  listCredentials,
  removeCredential,
  updateCredential,
  updateCredentialInput,
} from "../credentials/credentials";
import { defineVerb } from "./verb";

// Registry credentials on the control plane (spec §11): the password is write-only; no answer,
// log or audit row ever holds it.

const idInput = z.object({ id: z.string().min(1, "give the id") });

export const listCreds = defineVerb({
  name: "credentials.list",
  need: need("registry_credentials:read"),
  what: "list registry credentials",
  input: z.object({}),
  run: async (call) => ({ items: await listCredentials(call.ctx, call.org), next_cursor: null }),
});

export const addCred = defineVerb({
  name: "credentials.add",
  need: need("registry_credentials:write"),
  what: "add registry credentials",
  input: addCredentialInput.omit({ org: true }),
  run: (call, input) => addCredential(call.ctx, { ...input, org: call.org }),
});

export const updateCred = defineVerb({
  name: "credentials.update",
  need: need("registry_credentials:write"),
  what: "change registry credentials",
  input: updateCredentialInput.omit({ org: true }),
  run: (call, input) => updateCredential(call.ctx, { ...input, org: call.org }),
});

export const removeCred = defineVerb({
  name: "credentials.remove",
  need: need("registry_credentials:write"),
  what: "remove registry credentials",
  input: idInput,
  run: (call, input) => removeCredential(call.ctx, input.id, call.org),
});

export const CREDENTIAL_VERBS = [listCreds, addCred, updateCred, removeCred] as const;
