import type { Config } from "./config";
import type { Database } from "./db/database";
import type { SecretBox } from "./secrets/secret-box";

/** What every service function needs: built once at start-up and passed in. */
export interface ServiceContext {
  readonly config: Config;
  readonly db: Database;
  readonly secrets: SecretBox;
  readonly now: () => Date;
  /** Who makes the changes audited through this context; `admin-cli` when absent. */
  readonly actor?: string;
}
