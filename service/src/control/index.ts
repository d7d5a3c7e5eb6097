import { AUDIT_VERBS } from "./audit";
import { INTEGRATION_KEY_VERBS } from "./integration-keys";
import { OPERATION_VERBS } from "./operations";
import type { AnyVerb } from "./verb";

// Every verb of the control plane, by name: the admin command line's commands, the admin socket's
// and the remote mode's lookups, and the permission table test walk this list.

export const VERBS: readonly AnyVerb[] = [...INTEGRATION_KEY_VERBS, ...OPERATION_VERBS, ...AUDIT_VERBS];

const byName = new Map(VERBS.map((v) => [v.name, v]));

export const verbNamed = (name: string): AnyVerb | undefined => byName.get(name);
