import { answerAccepted } from "../answer";
import {
  addApp,
  deployApp,
  listApps,
  listDeploys,
  listEnv,
  removeApp,
  setEnv,
  showApp,
  type DeployAccepted,
  updateApp,
} from "../../control/applications";
import type { ManagementRoute } from "./router";

// Applications (spec §11), with the seed's tenant paths for deploy, history and env.

const TENANT_APP = "/tenants/{tenant_id}/applications/{application_id}";

export const APPLICATION_ROUTES: readonly ManagementRoute[] = [
  { method: "get", path: "/applications", verb: listApps, summary: "List the organisation's applications" },
  { method: "post", path: "/applications", verb: addApp, status: 201, summary: "Add an application" },
  {
    method: "get",
    path: "/applications/{id}",
    verb: showApp,
    summary: "Show an application and its scripts",
  },
  {
    method: "patch",
    path: "/applications/{id}",
    verb: updateApp,
    summary: "Change an application in place (its id stays)",
  },
  { method: "delete", path: "/applications/{id}", verb: removeApp, summary: "Remove an application" },
  {
    method: "post",
    path: `${TENANT_APP}/deploy`,
    verb: deployApp,
    status: 202,
    summary: "Deploy an application; answers 202 at once with the operation id",
    answer: (c, result) => answerAccepted(c, (result as DeployAccepted).operation_id),
  },
  {
    method: "get",
    path: `${TENANT_APP}/deployments`,
    verb: listDeploys,
    summary: "An application's deployment history, newest first",
  },
  {
    method: "get",
    path: `${TENANT_APP}/env`,
    verb: listEnv,
    summary: "An application's variable names and when each was set (never the values)",
  },
  {
    method: "post",
    path: `${TENANT_APP}/env`,
    verb: setEnv,
    summary: "Set or remove an application's variables (write-only)",
  },
];
