/**
 * `npm run bench`: cacheside side by side with the alternatives, as ratios measured in one run.
 * See bench/README.md for what each variant is and how to read the table. This file only picks the
 * mode; each lives in bench/modes/.
 *
 *   npm run bench                         full run: counters, warm-up, interleaved rounds, mix, stampede
 *   npm run bench -- --quick              counters only, asserted (CI); under a minute, writes nothing
 *   npm run bench -- --profile            CPU profile (node --cpu-prof) of cacheside and static on the hit path
 *                                         (--profile-variants A,B --profile-workloads W,…: others)
 *   npm run bench -- --render results/FILE.json   rewrite RESULTS.md from a saved run
 *   options: --rounds N (3) --duration S (3) --warmup S (2) --connections N (50) --label NAME
 *            --no-write (print only) --verbose (echo the servers' logs)
 *            --variants naive,dataloader,… --workloads users20,… --no-mix --no-stampede (partial runs)
 *            --cacheside-env KEY=VALUE,… (configuration for cacheside and always-miss,
 *            e.g. CACHE_L1_MAX_ENTRIES=50000)
 */
import { serverOutput } from './harness.js';
import { runFull } from './modes/full.js';
import { runProfile } from './modes/profile.js';
import { runQuick } from './modes/quick.js';
import { runRender } from './modes/render.js';
import { parseOptions, type BenchOptions, type Mode } from './options.js';
import { cleanup } from './setup.js';

const MODES: Record<Mode, (options: BenchOptions) => number | Promise<number>> = {
  full: runFull,
  quick: runQuick,
  profile: runProfile,
  render: runRender,
};

let interrupted = false;
process.on('SIGINT', () => {
  // A second Ctrl-C leaves at once, even if a cleanup step hangs.
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error('\ninterrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
});

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  serverOutput.echo = options.verbose;
  return MODES[options.mode](options);
}

main()
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    console.error(error);
    await cleanup();
    process.exit(1);
  });
