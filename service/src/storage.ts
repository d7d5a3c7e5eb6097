import type net from "node:net";
import type { Config } from "./config";
import { openDatabase, type DatabaseHandle } from "./db/database";
import { claimDataDir, pgliteDirOf, requireEmbeddedDatabase, type DataDirOwner } from "./db/data-dir";
import { ServiceError } from "./errors";
import type { Logger } from "./logger";
import { masterKeyFile, resolveMasterKey } from "./secrets/master-key";
import { SecretBox } from "./secrets/secret-box";

export interface Storage {
  readonly database: DatabaseHandle;
  readonly secrets: SecretBox;
  close(): Promise<void>;
}

export interface OpenStorageOptions {
  role: string;
  lockServer: net.Server;
  logger: Logger;
  /**
   * Open only storage that exists (the admin command line): never create the data directory, the
   * embedded database, its schema or a master key, which only the service does at its first start;
   * say where it looked instead. An existing schema still gets any pending migrations.
   */
  existingOnly?: boolean;
}

/**
 * Opens storage for the service or the admin command line. On the embedded database it first
 * claims the data directory (the admin socket is the lock), so no second process opens it.
 */
export async function openStorage(config: Config, opts: OpenStorageOptions): Promise<Storage> {
  const embedded = config.databaseUrl === undefined;
  const existingOnly = opts.existingOnly ?? false;
  let owner: DataDirOwner | undefined;
  let database: DatabaseHandle | undefined;
  try {
    if (embedded) {
      if (existingOnly) await requireEmbeddedDatabase(config.dataDir);
      owner = await claimDataDir(config.dataDir, opts.lockServer, opts.role, { create: !existingOnly });
    }
    const master = await resolveMasterKey({
      configured: config.masterKey,
      embedded,
      dataDir: config.dataDir,
      generate: !existingOnly,
    });
    if (master.created) {
      opts.logger.warn(
        `generated a development master key in ${master.generatedPath}; back it up, and set REOCLO_MASTER_KEY in production`,
      );
    } else if (!master.key) {
      opts.logger.warn(
        `REOCLO_MASTER_KEY is not set${embedded ? ` and ${masterKeyFile(config.dataDir)} does not exist` : ""}: operations that need SSH keys or registry passwords answer 503`,
      );
    }
    database = await openDatabase({
      databaseUrl: config.databaseUrl,
      pgliteDir: embedded ? pgliteDirOf(config.dataDir) : undefined,
    });
    if (existingOnly) await requireSchema(database, config);
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

/** The schema is the service's to create, at its first start: refuse a database without it. */
async function requireSchema(database: DatabaseHandle, config: Config): Promise<void> {
  // Drizzle's migration journal and one of Reoclo's own tables: another application's schema is not ours.
  const [row] = await database.query<{ present: boolean }>(
    "select to_regclass('drizzle.__drizzle_migrations') is not null and to_regclass('organisations') is not null as present",
    [],
  );
  if (row?.present) return;
  const where = config.databaseUrl
    ? "The database DATABASE_URL names has no Reoclo schema yet: the service has not been started on it. Start the service once with this DATABASE_URL (it creates the schema at its start)"
    : `${config.dataDir} holds no Reoclo schema yet: the service has not finished a first start on it. Start it once with this REOCLO_DATA_DIR`;
  throw new ServiceError(
    "database_not_initialised",
    `${where}, then run reoclo-admin again. Nothing was changed.`,
  );
}
