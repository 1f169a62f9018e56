/**
 * `npm run bench`: the counters, then every variant under load in interleaved rounds, the
 * read/write mix, the stampede, and RESULTS.md with the raw JSON beside it. bench/README.md,
 * "Method", says why each step is there.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { relative } from 'node:path';
import { signToken } from '../../src/auth/tokens.js';
import { countMix, startAndCount } from '../counters.js';
import { log, post, startLoadProcess } from '../harness.js';
import { measure } from '../measure.js';
import type { BenchOptions } from '../options.js';
import { prime, stopAll } from '../prepare.js';
import { renderMarkdown, RESULTS_DIR, RESULTS_MD } from '../report.js';
import type { BenchResults, RunRecord } from '../results.js';
import { AUTH_SECRET, onCleanup } from '../setup.js';
import { runStampede, STAMPEDE_BODY } from '../stampede.js';
import { ratioName, summarize } from '../summary.js';
import { CACHING, REFERENCE, type VariantName } from '../variant-names.js';
import { buildMixPlan, POSTS_PER_USER, USERS, type WorkloadName } from '../workloads.js';

export async function runFull(options: BenchOptions): Promise<number> {
  const started = performance.now();
  const loadAtStart = loadavg()[0]!;
  const { settings } = options;
  const variants = options.variants;
  const mixVariants = options.mix ? CACHING.filter((v) => variants.includes(v)) : [];
  const { env, servers, workloads, expected, counters, problems } = await startAndCount(options, true);

  log('starting the load generator');
  const load = startLoadProcess();
  onCleanup(() => load.stop());
  for (const [w, bodies] of expected) load.send({ type: 'expect', workload: w, expected: bodies });
  const mixPlan = buildMixPlan();
  const tokens = await Promise.all(
    mixPlan.writers.map(async (id) => [id, await signToken(AUTH_SECRET, id)] as const),
  );
  load.send({ type: 'tokens', tokens });
  const run = async (
    variant: VariantName,
    workload: WorkloadName | 'mix',
    durationSec: number,
    round: number,
  ) => {
    const server = servers.get(variant)!;
    // A stored answer, and a page of user ids, lives at most a tombstone's 60 s and a variant's
    // turns come a minute or more apart: without this, `response-tier` would measure its first pass
    // over expired answers (a miss, an execution and a store each), and `cacheside` its pages' (a
    // directory lookup, a range scan and a store each), not the warm tiers the other warm variants
    // are measured as. Every answer is checked against the reference while priming. The mix is not
    // re-primed: its writes are what it measures. bench/README.md, "Method".
    if ((variant === 'response-tier' || variant === 'cacheside') && workload !== 'mix') {
      const w = workloads[workload];
      await prime(
        server,
        w,
        w.bodies.map((_, i) => i),
        expected.get(workload),
      );
    }
    return measure(load, server, workload, { connections: settings.connections, durationSec, round });
  };

  const warmupCombos = options.workloads.length * variants.length + mixVariants.length;
  log(`warm-up: every variant and workload for ${settings.warmupSec} s (${warmupCombos} runs)`);
  for (const w of options.workloads) for (const v of variants) await run(v, w, settings.warmupSec, 0);
  for (const v of mixVariants) await run(v, 'mix', settings.warmupSec, 0);

  const runs: RunRecord[] = [];
  for (let round = 1; round <= settings.rounds; round += 1) {
    // Each round starts the rotation one further, so no variant always runs first or after the same one.
    const order = rotate(variants, round - 1);
    const mix = mixVariants.length > 0 ? ' + mix' : '';
    log(
      `round ${round}/${settings.rounds}: ${order.join(' ')} × ${options.workloads.length} workloads${mix}, ${settings.durationSec} s each`,
    );
    for (const w of options.workloads) {
      for (const v of order) runs.push(await run(v, w, settings.durationSec, round));
    }
    for (const v of rotate(mixVariants, round - 1))
      runs.push(await run(v, 'mix', settings.durationSec, round));
    const { ratios } = summarize(
      runs.filter((r) => r.round === round),
      1,
    );
    const shown = [ratioName('cacheside', 'dataloader'), ratioName('cacheside', 'static')];
    log(
      `  ${options.workloads.map((w) => `${w}: ${shown.map((name) => `${name} ${fmt(ratios[name]?.[w])}`).join(' ')}`).join('; ')}`,
    );
  }

  let mixCounters: BenchResults['mixCounters'] = {};
  if (mixVariants.length === CACHING.length) {
    log(`mix counters: one write then one read of the same user on ${CACHING.join(' and ')}`);
    mixCounters = await countMix(servers, mixPlan.writers[0]!);
  }

  let stampede: BenchResults['stampede'] = [];
  if (options.stampede) {
    const stampedeExpected = (await post(servers.get(REFERENCE)!.origin, STAMPEDE_BODY)).body;
    // Their pools, connections and CPU would otherwise be there beside the stampede's instances.
    log('stopping the variant servers before the stampede');
    await stopAll(servers);
    stampede = await runStampede(load, env, stampedeExpected);
  }

  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      // Other work on the machine shows here (and as machine CPU above what the variants use).
      loadAverage: { atStart: loadAtStart, atEnd: loadavg()[0]! },
    },
    settings: { ...settings, users: USERS, postsPerUser: POSTS_PER_USER },
    runs,
    counters,
    mixCounters,
    stampede,
    counterProblems: problems,
    wallSeconds: (performance.now() - started) / 1000,
  };
  const markdown = renderMarkdown(results);
  console.log(`\n${markdown}`);
  if (options.write) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = `${RESULTS_DIR}${options.label}-${results.date.replace(/[:.]/g, '-')}.json`;
    writeFileSync(file, `${JSON.stringify(results, null, 1)}\n`);
    writeFileSync(RESULTS_MD, markdown);
    log(`wrote ${relative(process.cwd(), RESULTS_MD)} and ${relative(process.cwd(), file)}`);
  }
  const bad = runs.reduce((n, r) => n + r.bad, 0) + stampede.reduce((n, s) => n + s.bad, 0);
  log(`done in ${results.wallSeconds.toFixed(0)} s`);
  if (bad > 0 || problems.length > 0) {
    console.error(`bench: ${bad} bad responses, ${problems.length} counter problems`);
    return 1;
  }
  return 0;
}

// Private:

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function fmt(value: number | undefined): string {
  return value === undefined ? '—' : value.toFixed(2);
}
