import { APPLICATION_ROUTES } from "./applications";
import { CREDENTIAL_ROUTES } from "./credentials";
import { PEOPLE_ROUTES } from "./people";
import type { ManagementRoute } from "./router";

// The management API's routes (spec §11), one table per area.

export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [
  ...PEOPLE_ROUTES,
  ...APPLICATION_ROUTES,
  ...CREDENTIAL_ROUTES,
];
