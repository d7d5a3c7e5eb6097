import { describe, expect, it } from "vitest";
import { isUuid, rebootRequestSchema, UUID_PATTERN } from "@reoclo/protocol";
import { SERVER_ID } from "./helpers.js";

// UUID_PATTERN is what the service and the actions check ids with before a request; it must
// accept exactly what the request schemas accept, or one would refuse what the other lets by.
describe("UUID_PATTERN", () => {
  // [id, accepted]: the expected answer is stated, so both agreeing on a wrong one fails too.
  const ids: [string, boolean][] = [
    [SERVER_ID, true],
    [SERVER_ID.toUpperCase(), true],
    ["00000000-0000-0000-0000-000000000000", true],
    ["3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7", false],
    ["3f2b8c1e9a4d4e6f8b1a2c3d4e5f6a7b", false],
    ["{3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7b}", false],
    ["3f2b8c1e-9a4d-4e6f-8b1a-2c3d4e5f6a7g", false],
    [` ${SERVER_ID}`, false],
    ["", false],
  ];

  it.each(ids)("agrees with the request schemas on %j (accepted: %s)", (id, accepted) => {
    expect(UUID_PATTERN.test(id)).toBe(accepted);
    expect(rebootRequestSchema.safeParse({ server_id: id }).success).toBe(accepted);
    expect(isUuid(id)).toBe(accepted);
  });

  it("is false for anything but a string", () => {
    expect(isUuid(undefined)).toBe(false);
    expect(isUuid(42)).toBe(false);
  });
});
