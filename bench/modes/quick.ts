/**
 * `--quick`: the counters only, asserted, for CI (test/deploy/bench-quick.test.ts). It measures no
 * speed, so it passes on a machine however busy, and fails exactly when a request's cost changed.
 */
import { renderCounterLines, startAndCount } from '../counters.js';
import type { BenchOptions } from '../options.js';

export async function runQuick(options: BenchOptions): Promise<number> {
  const started = performance.now();
  const { counters, problems } = await startAndCount(options, false);
  console.log(renderCounterLines(counters));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (problems.length > 0) {
    console.error(`\nbench --quick: ${problems.length} counter check(s) failed:\n- ${problems.join('\n- ')}`);
    console.log(`\nbench --quick: failed in ${seconds} s`);
    return 1;
  }
  console.log(`\nbench --quick: every counter as expected (${seconds} s)`);
  return 0;
}
