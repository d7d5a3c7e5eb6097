import { ServiceError } from "../errors";

// Where reoclo-admin's commands run. Every command is one verb name and its input; an executor
// runs it: in this process on the service's storage, through the running service's admin socket,
// or on a remote service's management API with an integration key (open-executor.ts chooses).

export interface Executor {
  /** Runs one verb; rejects with the service's refusal as a ServiceError. */
  call(verb: string, input: Record<string, unknown>): Promise<unknown>;
  /** The organisation's id (the `tenant_id` of the deploy and env routes). */
  tenantId(org: string | undefined): Promise<string>;
  close(): Promise<void>;
}

/** What the remote mode needs of a management route: where its verb lives and how it takes input. */
export interface RouteRef {
  readonly verb: string;
  readonly method: "get" | "post" | "patch" | "delete";
  /** Under /api, in OpenAPI form: `/servers/{id}`. */
  readonly path: string;
  readonly from: "body" | "query";
}

/** The id of the organisation reoclo-admin acts in (`--org`, a name or an id; default `default`). */
export async function orgId(
  call: (verb: string, input: Record<string, unknown>) => Promise<unknown>,
  org: string | undefined,
): Promise<string> {
  const wanted = org ?? "default";
  const orgs = itemsOf(await call("orgs.list", {})) as { id: string; name: string }[];
  const found = orgs.find((o) => o.name === wanted || o.id === wanted);
  if (!found)
    throw new ServiceError(
      "not_found",
      `Organisation "${wanted}" not found; list them with "reoclo-admin orgs list".`,
    );
  return found.id;
}

/** A list's rows: the verbs answer `{items, next_cursor}` (spec §11); older commands an array. */
export function itemsOf(result: unknown): unknown[] {
  if (Array.isArray(result)) return result;
  if (result && typeof result === "object" && Array.isArray((result as { items?: unknown }).items))
    return (result as { items: unknown[] }).items;
  throw new ServiceError("service_unavailable", "The service answered a list with something else.");
}
