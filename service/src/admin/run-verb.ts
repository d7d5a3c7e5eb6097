import { ADMIN } from "../access/principal";
import { verbNamed } from "../control/index";
import { invoke, type VerbServices } from "../control/verb";
import { ServiceError } from "../errors";

// What reoclo-admin runs, in process or for it over the admin socket: a verb of the control plane
// (control/index.ts), as the ADMIN principal, so the command line checks and audits like the API.

/** Runs the verb `name` for reoclo-admin; `input` is the verb's (snake_case, spec §11), with `org`. */
export function runAdminVerb(svc: VerbServices, name: string, input: unknown): Promise<unknown> {
  const verb = verbNamed(name);
  if (!verb)
    throw new ServiceError(
      "not_found",
      `The service has no command ${name}: is it older than this reoclo-admin?`,
    );
  return invoke(verb, svc, ADMIN, input);
}
