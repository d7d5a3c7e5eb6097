import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { decodeMasterKey } from "../config";

export interface MasterKeyResolution {
  key: Buffer | undefined;
  /** Set when the key was generated or read from the data directory (development only). */
  generatedPath?: string;
  created?: boolean;
}

export const masterKeyFile = (dataDir: string) => path.join(dataDir, "master.key");

/**
 * The master key comes from REOCLO_MASTER_KEY; only with the embedded database is one generated
 * into the data directory (mode 0600), because that deployment is a single development instance,
 * and only by the service at its start (`generate`): the admin command line only reads it.
 */
export async function resolveMasterKey(opts: {
  configured: Buffer | undefined;
  embedded: boolean;
  dataDir: string;
  generate: boolean;
}): Promise<MasterKeyResolution> {
  if (opts.configured) return { key: opts.configured };
  if (!opts.embedded) return { key: undefined };
  const file = masterKeyFile(opts.dataDir);
  try {
    const text = (await fs.readFile(file, "utf8")).trim();
    const key = decodeMasterKey(text);
    if (!key) throw new Error(`${file} does not hold a 32-byte hex key; restore it or set REOCLO_MASTER_KEY`);
    return { key, generatedPath: file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (!opts.generate) return { key: undefined };
  const key = randomBytes(32);
  await fs.writeFile(file, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  return { key, generatedPath: file, created: true };
}
