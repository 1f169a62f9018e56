/**
 * A short soak (test/support/soak.ts; `npm run soak` runs the long one): 6 000 operations over two
 * instances with a Redis fault every 750 — each of CLIENT PAUSE, FLUSHALL, an empty restart and
 * memory full under noeviction, twice — and no stale read after an acknowledged write, no monitor
 * violation, no error, and a cache that converges once the faults stop.
 */
import { expect, test } from 'vitest';
import { runSoak } from '../support/soak.js';

test(
  '6 000 mixed operations, a Redis fault every 750: no stale read after an acknowledged write',
  { timeout: 600_000 },
  async () => {
    const report = await runSoak({ operations: 6000, faultEvery: 750 });
    console.log(`[soak] ${JSON.stringify(report)}`);
    expect(report.faults).toEqual({ pause: 2, flushall: 2, restart: 2, oom: 1 });
    expect(report.staleSamples).toEqual([]);
    expect(report.staleReads).toBe(0);
    expect(report.monitorViolations).toBe(0);
    expect(report.errors).toEqual({});
    expect(report.unconverged).toBe(0);
    expect(report.apiWrites).toBeGreaterThan(0);
    expect(report.sqlWrites).toBeGreaterThan(0);
  },
);
