// Every number of the contract (spec §1–§9) in one place, so the service, the client and
// the actions can never disagree about a limit.

/** Prefix of every route of the automation API (spec §1). */
export const API_BASE_PATH = "/api/automation/v1";

/** `command` length, in characters (Unicode code points). */
export const COMMAND_MAX_CHARS = 8192;
/** `working_directory` length, in characters; PATH_MAX on Linux. */
export const WORKING_DIRECTORY_MAX_CHARS = 4096;
/** `run_id` length, in characters; CI run ids are short, this only bounds storage. */
export const RUN_ID_MAX_CHARS = 256;
/** Each `run_context` value is cut to this many characters: it is metadata, never refused. */
export const RUN_CONTEXT_VALUE_MAX_CHARS = 1024;
/** `registry_url` length, in characters. */
export const REGISTRY_URL_MAX_CHARS = 2048;
/** `commit_ref` length, in characters. */
export const COMMIT_REF_MAX_CHARS = 1024;

export const ENV_MAX_KEYS = 200;
/** Total UTF-8 bytes of every env name plus every env value. */
export const ENV_MAX_BYTES = 65536;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Ids (`server_id`, `credential_id`, `application_id`, operation ids): any 8-4-4-4-12 hex form, as PostgreSQL's `uuid`. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const DEFAULT_TIMEOUT_SECONDS = 60;
/**
 * `REOCLO_MAX_TIMEOUT_SECONDS` may not be set below this (spec §3: "at least 900"): the published
 * v1 actions clamp `timeout_seconds` to 1..900 before sending (spec §7).
 */
export const MIN_MAX_TIMEOUT_SECONDS = 900;
export const DEFAULT_MAX_TIMEOUT_SECONDS = 21600;
/** The published v1 actions poll `GET /operations/{id}` this often, with no deadline. */
export const PUBLISHED_CLIENT_POLL_INTERVAL_MS = 5000;

/** Polling answers carry the last 64 KiB of each stream (spec §4). */
export const OUTPUT_TAIL_BYTES = 65536;
/** Output stored per operation and stream before it is flagged truncated (10 MiB). */
export const DEFAULT_OUTPUT_CAP_BYTES = 10485760;
/** `/exec` answers `running` after this; some clients abort requests at 30 s (spec §3). */
export const DEFAULT_SYNC_WAIT_SECONDS = 20;

/** Env values this long or longer are masked; shorter ones would mask common words. */
export const MASK_MIN_LENGTH = 8;
export const MASK = "***";

export const DEFAULT_RATE_LIMIT_PER_MINUTE = 100;
export const DEFAULT_RATE_LIMIT_PER_HOUR = 1000;

/** Same exit codes as coreutils `timeout` (124) and a shell killed by SIGINT (128 + 2). */
export const EXIT_CODE_TIMEOUT = 124;
export const EXIT_CODE_CANCELLED = 130;
/** What `ssh` itself exits with when it cannot run the command. */
export const EXIT_CODE_FAILED = 255;

export const KEY_PREFIX = "rca_";
/** Integration keys (spec §11): the same shape as automation keys behind this prefix. */
export const INTEGRATION_KEY_PREFIX = "rk_t_";

/** Idempotency keys are honoured for at least this long (spec §6). */
const IDEMPOTENCY_RETENTION_SECONDS = 24 * 60 * 60;
export const IDEMPOTENCY_RETENTION_MS = IDEMPOTENCY_RETENTION_SECONDS * 1000;
/** Longest accepted `Idempotency-Key` header value. */
export const IDEMPOTENCY_KEY_MAX_CHARS = 255;

/** Page size of `GET /operations?run_id=` when the caller gives none, and its ceiling. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;
/** Longest `cursor` accepted back; the `next_cursor` values the service gives out are shorter. */
export const CURSOR_MAX_CHARS = 256;
