/**
 * Short soaks (test/support/soak.ts; `npm run soak` runs the long one): 6 000 operations over two
 * instances with a Redis fault every 750 — each of CLIENT PAUSE, FLUSHALL, an empty restart and
 * memory full under noeviction, twice — and no stale read after an acknowledged write, no monitor
 * violation, no error, and a cache that converges once the faults stop. The second is read-mostly,
 * so that with the response tier on most of its hits are served on the write stamp (a write moves
 * it for every answer). With the write-through's stamp removed (scripts.ts, WRITE), both fail with the
 * tier on: 946 and 596 stale reads in one run.
 */
import { expect, test } from 'vitest';
import { runSoak, type SoakReport } from '../support/soak.js';

function expectClean(report: SoakReport): void {
  console.log(`[soak] ${JSON.stringify(report)}`);
  expect(report.faults).toEqual({ pause: 2, flushall: 2, restart: 2, oom: 1 });
  expect(report.staleSamples).toEqual([]);
  expect(report.staleReads).toBe(0);
  expect(report.monitorViolations).toBe(0);
  expect(report.errors).toEqual({});
  expect(report.unconverged).toBe(0);
  expect(report.pageReads).toBeGreaterThan(0);
  expect(report.apiWrites).toBeGreaterThan(0);
  expect(report.sqlWrites).toBeGreaterThan(0);
  expect(report.sqlApplied).toBeGreaterThan(0); // the causal checks had something to check
  expect(report.userChurns).toBeGreaterThan(0);
  expect(report.churnPageReads).toBeGreaterThan(0);
}

test(
  '6 000 mixed operations, a Redis fault every 750: no stale read after an acknowledged write',
  { timeout: 600_000 },
  async () => {
    expectClean(await runSoak({ operations: 6000, faultEvery: 750 }));
  },
);

// Run by both projects (CI counts a skipped test as failed): with the tier off it soaks the entity
// tier under a lighter write load.
test(
  'read-mostly: 6 000 operations, 1 % writes and a plain-SQL write every 200, a Redis fault every 750',
  { timeout: 600_000 },
  async () => {
    expectClean(await runSoak({ operations: 6000, faultEvery: 750, writeShare: 0.01, sqlWriteEvery: 200 }));
  },
);

// L1 on both instances: read-your-writes on the writer's instance at once, on the other for a key L1
// answered once L1's window has passed since the write returned (the lagging reads inside it are
// counted); a key Redis answered, at once.
test(
  'with L1: 6 000 mixed operations, a Redis fault every 750: no read older than L1 allows',
  { timeout: 600_000 },
  async () => {
    const report = await runSoak({ operations: 6000, faultEvery: 750, l1: true });
    expectClean(report);
    expect(report.l1TtlMs).toBe(1000);
    expect(report.l1Served).toBeGreaterThan(0); // L1 was on, and answered
  },
);
