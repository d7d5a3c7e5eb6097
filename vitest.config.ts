import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "service/test/**/*.test.ts", "actions/*/test/**/*.test.ts"],
    // Every test talks to real sshd and PostgreSQL; give each one a bound, never a sleep.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});
