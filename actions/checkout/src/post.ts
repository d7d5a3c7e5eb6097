import { cancelLeftOperation } from "@reoclo/action-kit";
import { USER_AGENT } from "./constants.js";

await cancelLeftOperation(USER_AGENT);
