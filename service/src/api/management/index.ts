import { APPLICATION_ROUTES } from "./applications";
import { AUDIT_ROUTES } from "./audit";
import { AUTOMATION_KEY_ROUTES } from "./automation-keys";
import { CREDENTIAL_ROUTES } from "./credentials";
import { INTEGRATION_KEY_ROUTES } from "./integration-keys";
import { OPERATION_ROUTES } from "./operations";
import { PEOPLE_ROUTES } from "./people";
import type { ManagementRoute } from "./router";
import { SERVER_ROUTES } from "./servers";
import { TRUST_POLICY_ROUTES } from "./trust-policies";

// The management API's routes (spec §11), one table per area.

export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [
  ...PEOPLE_ROUTES,
  ...SERVER_ROUTES,
  ...AUTOMATION_KEY_ROUTES,
  ...TRUST_POLICY_ROUTES,
  ...INTEGRATION_KEY_ROUTES,
  ...APPLICATION_ROUTES,
  ...CREDENTIAL_ROUTES,
  ...OPERATION_ROUTES,
  ...AUDIT_ROUTES,
];
