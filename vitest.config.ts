import { defineConfig } from 'vitest/config';

/**
 * The suites that prove the guarantees (consistency, faults, stampede, L1, the response tier's
 * own, the request rules): run a second time with the response tier in front of every app they build
 * (TEST_RESPONSE_CACHE, read by test/support/app.ts), since its guarantees must be the entity
 * tier's (docs/consistency.md, "The response tier").
 */
const GUARANTEE_SUITES = [
  'test/write-path/**/*.test.ts',
  'test/resilience/**/*.test.ts',
  'test/read-path/stampede.test.ts',
  'test/read-path/l1-coherence.test.ts',
  'test/read-path/response-tier.test.ts',
  // The request rules too (GraphQL over HTTP, tokens, limits, queries): the tier answers an anonymous
  // query before it is parsed, so each rule must still hold with stored answers in front of it.
  'test/api/graphql-over-http.test.ts',
  'test/api/auth.test.ts',
  'test/api/limits.test.ts',
  'test/api/cost-limit.test.ts',
  'test/api/queries.test.ts',
];

export default defineConfig({
  test: {
    // Every file creates its own database and Redis prefix (and picks free ports for any server it
    // starts), so files may run in parallel, both projects' included; two workers match the two
    // cores of the machine this runs on.
    pool: 'forks',
    maxWorkers: 2,
    // Liveness bounds for a test that hangs, not budgets: tests wait for conditions, never for time,
    // and a busy machine (npm run test:loaded: the suite beside a busy loop per core) is slow.
    // seed.test.ts's PGlite seeding once crossed a 30 s bound at a load average of 5–8.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'suite', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'response-tier', include: GUARANTEE_SUITES, env: { TEST_RESPONSE_CACHE: 'on' } },
      },
    ],
  },
});
