import { AUDIT_ROUTES } from "./audit";
import { INTEGRATION_KEY_ROUTES } from "./integration-keys";
import { OPERATION_ROUTES } from "./operations";
import type { ManagementRoute } from "./router";

// The management API's routes (spec §11), one table per area.

export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [
  ...INTEGRATION_KEY_ROUTES,
  ...OPERATION_ROUTES,
  ...AUDIT_ROUTES,
];
