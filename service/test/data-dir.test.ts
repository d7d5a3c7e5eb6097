import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { adminSocketPath, claimDataDir } from "../src/db/data-dir";

describe("one owner of the embedded data directory", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "reoclo-owner-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a second owner while the first is alive, naming it", async () => {
    const first = await claimDataDir(dir, net.createServer(), "reoclo service");
    await expect(claimDataDir(dir, net.createServer(), "reoclo-admin")).rejects.toMatchObject({
      code: "data_dir_in_use",
      detail: expect.stringContaining(`reoclo service (pid ${process.pid})`) as string,
    });
    await first.release();
    const second = await claimDataDir(dir, net.createServer(), "reoclo-admin");
    await second.release();
  });

  it("takes over a socket left behind by a process that died", async () => {
    await writeFile(adminSocketPath(dir), ""); // a dead socket: nothing answers on it
    const owner = await claimDataDir(dir, net.createServer(), "reoclo service");
    await owner.release();
  });
});
