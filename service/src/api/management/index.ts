import { AUTOMATION_KEY_ROUTES } from "./automation-keys";
import type { ManagementRoute } from "./router";
import { SERVER_ROUTES } from "./servers";

// The management API's routes (spec §11), one table per area.

export const MANAGEMENT_ROUTES: readonly ManagementRoute[] = [...SERVER_ROUTES, ...AUTOMATION_KEY_ROUTES];
