import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { ServiceError } from "../errors";

// PGlite allows one process per data directory. Whoever opens it first listens on
// `admin.sock` there: binding a Unix socket is atomic, so the socket is the lock, and the
// service also serves the admin command line through it (mode 0600, directory 0700).

export const ADMIN_SOCKET_NAME = "admin.sock";
const OWNER_FILE = "owner.json";

export interface DataDirOwner {
  readonly dataDir: string;
  readonly socketPath: string;
  release(): Promise<void>;
}

export const adminSocketPath = (dataDir: string) => path.join(dataDir, ADMIN_SOCKET_NAME);
/** Where the embedded database lives inside the data directory. */
export const pgliteDirOf = (dataDir: string) => path.join(dataDir, "pgdata");

const missingAsUndefined = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return undefined;
  throw err;
};

const POINT_THE_ADMIN_CLI =
  "run reoclo-admin from the directory where you ran `npm start`, or set REOCLO_DATA_DIR to the service's data directory (DATABASE_URL, if the service runs on PostgreSQL)";

/**
 * For the admin command line, which never creates storage: the data directory must exist and hold
 * the embedded database the service created at its first start (PGlite writes PG_VERSION when it
 * initialises a directory; opened without it, PGlite would initialise a new, empty one).
 */
export async function requireEmbeddedDatabase(dataDir: string): Promise<void> {
  const dir = await fs.stat(dataDir).catch(missingAsUndefined);
  if (!dir?.isDirectory()) {
    throw new ServiceError(
      "data_dir_not_found",
      `No Reoclo data directory at ${dataDir} (reoclo-admin looks in REOCLO_DATA_DIR, default ./.reoclo from the current directory), and no service answers there: ${POINT_THE_ADMIN_CLI}. Nothing was created.`,
    );
  }
  const database = await fs.stat(path.join(pgliteDirOf(dataDir), "PG_VERSION")).catch(missingAsUndefined);
  if (!database) {
    throw new ServiceError(
      "database_not_initialised",
      `${dataDir} holds no Reoclo database: the service creates it at its first start, and has not been started on this directory. Start it once with this REOCLO_DATA_DIR, or ${POINT_THE_ADMIN_CLI}. Nothing was created.`,
    );
  }
}

/** Connects to the socket; true when a live process answers on it. */
export function socketIsLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

function listen(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(socketPath);
  });
}

async function describeOwner(dataDir: string): Promise<string> {
  try {
    const owner = JSON.parse(await fs.readFile(path.join(dataDir, OWNER_FILE), "utf8")) as {
      pid?: number;
      role?: string;
    };
    return `${owner.role ?? "another process"} (pid ${owner.pid ?? "unknown"})`;
  } catch {
    return "another process";
  }
}

/**
 * Takes ownership of the embedded data directory by listening on its admin socket with
 * `server`; a live owner gives a clear `data_dir_in_use` error, a stale socket is replaced.
 * The directory is created unless `opts.create` is false (the admin command line).
 */
export async function claimDataDir(
  dataDir: string,
  server: net.Server,
  role: string,
  opts: { create?: boolean } = {},
): Promise<DataDirOwner> {
  if (opts.create ?? true) await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fs.chmod(dataDir, 0o700);
  const socketPath = adminSocketPath(dataDir);
  try {
    await listen(server, socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    if (await socketIsLive(socketPath)) {
      throw new ServiceError(
        "data_dir_in_use",
        `The embedded database in ${dataDir} is in use by ${await describeOwner(dataDir)}; stop it first, or set DATABASE_URL to run several instances on PostgreSQL.`,
      );
    }
    // Left behind by a process that died: nobody answers on it.
    await fs.rm(socketPath, { force: true });
    await listen(server, socketPath);
  }
  await fs.chmod(socketPath, 0o600);
  await fs.writeFile(path.join(dataDir, OWNER_FILE), JSON.stringify({ pid: process.pid, role }) + "\n", {
    mode: 0o600,
  });
  return {
    dataDir,
    socketPath,
    async release() {
      await fs.rm(path.join(dataDir, OWNER_FILE), { force: true });
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(socketPath, { force: true });
    },
  };
}
