import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { AppError } from "../errors";

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
 */
export async function claimDataDir(dataDir: string, server: net.Server, role: string): Promise<DataDirOwner> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fs.chmod(dataDir, 0o700);
  const socketPath = adminSocketPath(dataDir);
  try {
    await listen(server, socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    if (await socketIsLive(socketPath)) {
      throw new AppError(
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
