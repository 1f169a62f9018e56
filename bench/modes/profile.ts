/**
 * `--profile`: the cache-hit path under a profiler. `cacheside` (warm) and `static` by default
 * (`--profile-variants`, `--profile-workloads` choose others: `response-tier,response-cache`,
 * `always-miss,dataloader`) run under `node --cpu-prof` on the same workloads; each measured window
 * is bounded by clock marks from the server, so the summary (profile.ts) leaves out startup, priming
 * and warm-up. `static` is there as the floor: what is left of cacheside's CPU above it is what the
 * data layer costs.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { countedBetween, log, startLoadProcess, startServer, type BenchServer } from '../harness.js';
import type { BenchOptions } from '../options.js';
import { prime, reference } from '../prepare.js';
import { renderSummary, summarizeProfile, type ProfileSummary } from '../profile.js';
import { RESULTS_DIR } from '../report.js';
import { onCleanup, openBenchEnvironment } from '../setup.js';
import type { VariantName } from '../variant-names.js';
import { buildWorkloads, WORKLOAD_TITLES } from '../workloads.js';

/** Seconds of load per profiled window. */
const PROFILE_SECONDS = 10;
/** The variants whose answers are the reference, best first: no cache between them and PostgreSQL. */
const REFERENCES: readonly VariantName[] = ['dataloader', 'static', 'naive'];
/** Not committed (bench/.gitignore): open them in Chrome DevTools (Performance) or speedscope. */
const PROFILES_DIR = `${RESULTS_DIR}profiles`;

export async function runProfile(options: BenchOptions): Promise<number> {
  const { variants: profiledVariants, workloads: profiledWorkloads } = options.profiled;
  if (profiledVariants.length === 0 || profiledWorkloads.length === 0) {
    throw new Error('--profile needs at least one variant and one workload to profile');
  }
  const referenceVariant = REFERENCES.find((v) => profiledVariants.includes(v)) ?? profiledVariants[0]!;
  const env = await openBenchEnvironment();
  mkdirSync(PROFILES_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const workloads = buildWorkloads();
  const dirs = new Map<VariantName, string>();
  const servers = new Map<VariantName, BenchServer>();
  onCleanup(() => Promise.all([...servers.values()].map((s) => s.stop())));
  for (const v of profiledVariants) {
    // A directory per server: tsx's loader hooks run on a thread of their own, which writes a
    // profile too; the main thread's is picked afterwards.
    const dir = `${PROFILES_DIR}/${v}-${stamp}`;
    dirs.set(v, dir);
    // A long command timeout: on a busy machine a 200 ms one expires while replies wait in the
    // socket, and the profile would show misses and bypasses instead of the hit path.
    const spec = env.specOf(v, { env: { REDIS_COMMAND_TIMEOUT_MS: '2000' } });
    servers.set(v, await startServer(spec, ['--cpu-prof', `--cpu-prof-dir=${dir}`]));
  }
  const load = startLoadProcess();
  onCleanup(() => load.stop());
  const windows = new Map<string, { variant: VariantName; fromUs: number; toUs: number }>();
  const rps: Record<string, number> = {};
  const cpuPerRequestUs: Record<string, number> = {};
  for (const w of profiledWorkloads) {
    const all = workloads[w].bodies.map((_, i) => i);
    load.send({
      type: 'expect',
      workload: w,
      expected: await reference(servers.get(referenceVariant)!, workloads[w], all),
    });
    for (const v of profiledVariants) await prime(servers.get(v)!, workloads[w], all);
  }
  for (const v of profiledVariants) {
    const server = servers.get(v)!;
    for (const w of profiledWorkloads) {
      await load.run({
        url: server.origin,
        workload: w,
        connections: options.settings.connections,
        durationSec: 3,
      });
      const before = await server.stats();
      const fromUs = await server.mark();
      log(`profiling ${v} on ${WORKLOAD_TITLES[w]} for ${PROFILE_SECONDS} s`);
      const result = await load.run({
        url: server.origin,
        workload: w,
        connections: options.settings.connections,
        durationSec: PROFILE_SECONDS,
      });
      const toUs = await server.mark();
      const counted = countedBetween(before, await server.stats());
      if (result.bad > 0)
        throw new Error(`${v} ${w}: ${result.bad} bad responses, e.g. ${result.badSamples[0]}`);
      rps[`${v} ${w}`] = Math.round(result.rps);
      cpuPerRequestUs[`${v} ${w}`] = Math.round(counted.cpuUs / result.requests);
      log(
        `  ${Math.round(result.rps)} req/s; per request ${Math.round(counted.cpuUs / result.requests)} µs of server CPU, ${(counted.sql / result.requests).toFixed(2)} SQL, ${(counted.roundTrips / result.requests).toFixed(2)} store round trips`,
      );
      windows.set(`${v} ${w}`, { variant: v, fromUs, toUs });
    }
  }
  // The profiles are written when the servers exit.
  await load.stop();
  await Promise.all([...servers.values()].map((s) => s.stop()));

  const report: string[] = ['# Profile of the cache-hit path', ''];
  report.push('| window | req/s (profiler on) | server CPU per request |', '|---|---:|---:|');
  for (const [k, r] of Object.entries(rps)) report.push(`| ${k} | ${r} | ${cpuPerRequestUs[k]} µs |`);
  const summaries: Record<string, ProfileSummary> = {};
  for (const [name, window] of windows) {
    const dir = dirs.get(window.variant)!;
    const candidates = readdirSync(dir).map((f) => summarizeProfile(`${dir}/${f}`, window));
    const summary = candidates.sort((a, b) => b.samples - b.idle - (a.samples - a.idle))[0]!;
    summaries[name] = summary;
    report.push('', renderSummary(`${name} (${basename(dir)}/${basename(summary.file)})`, summary));
  }
  console.log(report.join('\n'));
  writeFileSync(
    `${RESULTS_DIR}profile-${options.label}-${stamp}.json`,
    `${JSON.stringify({ rps, cpuPerRequestUs, summaries }, null, 1)}\n`,
  );
  log(`profiles in ${PROFILES_DIR}; open them in Chrome DevTools (Performance) or speedscope`);
  return 0;
}
