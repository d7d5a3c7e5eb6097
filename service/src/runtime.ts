import type net from "node:net";
import path from "node:path";
import type { Config } from "./config";
import { openDatabase, type DatabaseHandle } from "./db/database";
import { claimDataDir, type DataDirOwner } from "./db/data-dir";
import type { Logger } from "./logger";
import { resolveMasterKey } from "./secrets/master-key";
import { SecretBox } from "./secrets/secret-box";

export interface Runtime {
  readonly database: DatabaseHandle;
  readonly secrets: SecretBox;
  close(): Promise<void>;
}

/**
 * Opens storage for the service or the admin command line. On the embedded database it first
 * claims the data directory (the admin socket is the lock), so no second process opens it.
 */
export async function openRuntime(
  config: Config,
  opts: { role: string; lockServer: net.Server; logger: Logger },
): Promise<Runtime> {
  const embedded = config.databaseUrl === undefined;
  let owner: DataDirOwner | undefined;
  let database: DatabaseHandle | undefined;
  try {
    if (embedded) owner = await claimDataDir(config.dataDir, opts.lockServer, opts.role);
    const master = await resolveMasterKey({
      configured: config.masterKey,
      embedded,
      dataDir: config.dataDir,
    });
    if (master.created) {
      opts.logger.warn(
        `generated a development master key in ${master.generatedPath}; back it up, and set REOCLO_MASTER_KEY in production`,
      );
    } else if (!master.key) {
      opts.logger.warn(
        "REOCLO_MASTER_KEY is not set: operations that need SSH keys or registry passwords answer 503",
      );
    }
    database = await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: embedded ? path.join(config.dataDir, "pgdata") : undefined,
    });
    await database.migrate();
    const opened = database;
    return {
      database: opened,
      secrets: new SecretBox(master.key, config.previousMasterKeys),
      async close() {
        await opened.close();
        await owner?.release();
      },
    };
  } catch (err) {
    await database?.close().catch(() => undefined);
    await owner?.release().catch(() => undefined);
    throw err;
  }
}
