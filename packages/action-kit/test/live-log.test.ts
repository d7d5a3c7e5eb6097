import { describe, expect, it } from "vitest";
import { LiveLog } from "../src/live-log";

const capture = () => {
  const writes: string[] = [];
  return { writes, log: new LiveLog({ write: (t: string) => writes.push(t) }) };
};

describe("LiveLog", () => {
  it("writes whole lines as they complete and keeps a partial line until its newline", () => {
    const { writes, log } = capture();
    log.write("stdout", "building");
    expect(writes).toEqual([]);
    log.write("stderr", "warning: slow\n");
    log.write("stdout", " done\nnext");
    const token = /^::stop-commands::(.+)\n$/.exec(writes[0] ?? "")?.[1];
    expect(token).toBeDefined();
    expect(writes.slice(1)).toEqual(["warning: slow\n", "building done\n"]);
    log.close();
    expect(writes.slice(3)).toEqual(["next\n", `::${token}::\n`]);
  });

  it("writes a partial line that grows past 64 KiB without waiting for its newline", () => {
    const { writes, log } = capture();
    log.write("stdout", "x".repeat(70_000));
    expect(writes[1]).toBe("x".repeat(70_000) + "\n");
  });

  it("writes nothing, not even the command guard, when the command printed nothing", () => {
    const { writes, log } = capture();
    log.close();
    expect(writes).toEqual([]);
  });
});
