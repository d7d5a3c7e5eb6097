import { APPLICATION_VERBS } from "./applications";
import { AUDIT_VERBS } from "./audit";
import { AUTOMATION_KEY_VERBS } from "./automation-keys";
import { CREDENTIAL_VERBS } from "./credentials";
import { INTEGRATION_KEY_VERBS } from "./integration-keys";
import { OPERATION_VERBS } from "./operations";
import { OPERATOR_VERBS } from "./orgs";
import { PEOPLE_VERBS } from "./people";
import { SERVER_VERBS } from "./servers";
import { TRUST_POLICY_VERBS } from "./trust-policies";
import type { AnyVerb } from "./verb";

// Every verb of the control plane, by name: the admin command line's commands, the admin socket's
// and the remote mode's lookups, and the permission table test walk this list.

export const VERBS: readonly AnyVerb[] = [
  ...PEOPLE_VERBS,
  ...SERVER_VERBS,
  ...AUTOMATION_KEY_VERBS,
  ...TRUST_POLICY_VERBS,
  ...INTEGRATION_KEY_VERBS,
  ...APPLICATION_VERBS,
  ...CREDENTIAL_VERBS,
  ...OPERATION_VERBS,
  ...AUDIT_VERBS,
  ...OPERATOR_VERBS,
];

const byName = new Map(VERBS.map((v) => [v.name, v]));

export const verbNamed = (name: string): AnyVerb | undefined => byName.get(name);
