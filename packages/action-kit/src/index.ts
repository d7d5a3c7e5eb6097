// @reoclo/action-kit: what the Reoclo GitHub Actions share. Bundled into each action by ncc.
export { CANCEL_WAIT_MS, CancelOnSignal } from "./cancel.js";
export { ACTION_RETRY, actionClient, type ActionClientOptions } from "./client.js";
export {
  InputError,
  NO_CREDENTIALS,
  readApiUrl,
  readAuthentication,
  readPostSettings,
  runContextFrom,
  stepIdempotencyKey,
  type Authentication,
  type Environment,
  type GetInput,
  type PostSettings,
} from "./inputs.js";
export { AuthenticationError, authenticatedClient, exchangeFailure, resolveApiKey } from "./oidc.js";
export { LiveLog, type LogSink } from "./live-log.js";
export { runOperationStep, type OperationStepOptions } from "./operation-step.js";
export { cancelLeftOperation } from "./post-step.js";
export { failureOf, refusalMessage, summaryTable, tail, type Failure, type SummaryRow } from "./report.js";
export { STATE } from "./state.js";
