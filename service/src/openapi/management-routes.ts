import { MANAGEMENT_BASE_PATH } from "@reoclo/protocol";
import { z } from "zod";
import { inputFrom, pathParams, type ManagementRoute } from "../api/management/router";
import type { DocumentedRoute, ErrorStatus } from "./routes";
import { fieldsOf, refusesAbsent, withoutFields } from "./zod-fields";

// The management API's table (spec §11) as the document shows it: each route's verb input is
// split the way the router splits a request (path parameters by name, the rest from the body or
// the query), and its permission is the verb's one `need`.

/** Headings of the reference, by the verb's namespace (the admin command's group). */
const AREAS: Readonly<Record<string, string>> = {
  auth: "Sign-in",
  users: "People",
  servers: "Servers",
  apps: "Applications",
  keys: "Automation keys",
  "integration-keys": "Integration keys",
  credentials: "Registry credentials",
  operations: "Operations",
  audit: "Audit log",
};

export function managementTag(verbName: string): string {
  const area = verbName.split(".")[0] ?? verbName;
  const known = AREAS[area];
  if (known) return known;
  const words = area.replaceAll(/[-_]/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function whoMay(route: ManagementRoute): string {
  const { verb } = route;
  if (verb.public) return "No caller needed.";
  if (!verb.need) return "Any signed-in person or integration key.";
  const { permission, role } = verb.need;
  return `Needs \`${permission}\`: a person with the ${role} role or above, or an integration key whose permissions include it.`;
}

export function documentManagementRoute(route: ManagementRoute): DocumentedRoute {
  const { verb } = route;
  const names = pathParams(route.path);
  const fields = fieldsOf(verb.input);
  // `org` is reoclo-admin's alone (invoke drops it for every other caller): not part of the API.
  const rest = withoutFields(verb.input, [...names, "org"]);
  const restFields = fieldsOf(rest);
  const hasInput = Object.keys(restFields).length > 0;
  const from = inputFrom(route);
  // A public verb answers 401 too: signing in with a wrong password.
  const errors: ErrorStatus[] = [401, 403];
  if (names.length > 0) errors.push(404);
  if (from === "body") errors.push(400, 413);
  if (hasInput || names.length > 0) errors.push(422);
  errors.push(429, 503);
  return {
    method: route.method,
    path: `${MANAGEMENT_BASE_PATH}${route.path}`,
    operationId: verb.name,
    tag: managementTag(verb.name),
    summary: route.summary,
    description: whoMay(route),
    security: verb.public ? "none" : "management",
    pathParams: Object.fromEntries(
      names.map((name) => {
        const field = fields[name];
        return [name, field && refusesAbsent(field) ? field : z.string()];
      }),
    ),
    ...(hasInput && from === "body" ? { body: rest } : {}),
    ...(hasInput && from === "query" ? { query: z.object(restFields) } : {}),
    status: route.status ?? 200,
    ...(route.response ? { response: route.response } : {}),
    ...(route.stream ? { stream: "only" as const } : {}),
    errors,
    extensions: {
      "x-reoclo-verb": verb.name,
      ...(verb.need
        ? { "x-reoclo-permission": verb.need.permission, "x-reoclo-least-role": verb.need.role }
        : {}),
    },
  };
}
