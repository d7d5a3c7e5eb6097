// @reoclo/protocol: the wire contract of the automation API, shared by the service, the
// HTTP client and the actions. Its source of truth is the spec, automation-api.md.
export * from "./limits.js";
export * from "./http.js";
export * from "./errors.js";
// common.ts holds the field builders of the schemas; of it only the id check is public.
export { isUuid } from "./common.js";
export * from "./operations.js";
export * from "./exec.js";
export * from "./registry.js";
export * from "./applications.js";
export * from "./events.js";
export * from "./keys.js";
export * from "./oidc.js";
export * from "./roles.js";
