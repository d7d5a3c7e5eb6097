import { addCred, listCreds, removeCred, updateCred } from "../../control/credentials";
import type { ManagementRoute } from "./router";

// Registry credentials (spec §11): passwords are write-only.

export const CREDENTIAL_ROUTES: readonly ManagementRoute[] = [
  {
    method: "get",
    path: "/registry-credentials",
    verb: listCreds,
    summary: "List the organisation's registry credentials (never a password)",
  },
  {
    method: "post",
    path: "/registry-credentials",
    verb: addCred,
    status: 201,
    summary: "Add a registry credential",
  },
  {
    method: "patch",
    path: "/registry-credentials/{id}",
    verb: updateCred,
    summary: "Change a registry credential in place (its id stays; the password is write-only)",
  },
  {
    method: "delete",
    path: "/registry-credentials/{id}",
    verb: removeCred,
    summary: "Remove a registry credential",
  },
];
