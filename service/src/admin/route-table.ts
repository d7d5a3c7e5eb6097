import type { RouteRef } from "./executor";

// The management routes as the remote mode needs them (verb, method, path, where input goes).
// The production bundle has them built in (scripts/build-admin.ts defines the constant below),
// so `reoclo-admin --url …` never loads the verbs, the database layer or SSH; from the sources
// they are read from the route table itself.

declare const __REOCLO_MANAGEMENT_ROUTES__: readonly RouteRef[] | undefined;

export async function managementRouteRefs(): Promise<readonly RouteRef[]> {
  if (typeof __REOCLO_MANAGEMENT_ROUTES__ !== "undefined") return __REOCLO_MANAGEMENT_ROUTES__;
  const [{ MANAGEMENT_ROUTES }, { inputFrom }] = await Promise.all([
    import("../api/management/index"),
    import("../api/management/router"),
  ]);
  return MANAGEMENT_ROUTES.map((r) => ({
    verb: r.verb.name,
    method: r.method,
    path: r.path,
    from: inputFrom(r),
  }));
}
