import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Every file creates its own database and Redis prefix, so files may run in parallel; two
    // workers match the two cores of the machine this runs on.
    pool: 'forks',
    maxWorkers: 2,
    // Liveness bounds for a test that hangs, not budgets: tests wait for conditions, never for time,
    // and a busy machine (npm run test:loaded: the suite beside a busy loop per core) is slow.
    // seed.test.ts's PGlite seeding once crossed a 30 s bound at a load average of 5–8.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
