/**
 * An interleaved comparison of server configurations, for trying a change to the hit path before making it:
 * every configuration runs as its own server on one fresh database, all are primed twice, then each
 * round runs each workload on each server in turn, so that the machine's ups and downs fall on all
 * of them alike. Prints req/s, server CPU (and per request) and p99 per run, and the medians. bench/README.md quotes
 * its results ("Profile of the cache-hit path").
 *
 *   tsx bench/compare.ts '[{"name":"cacheside","spec":{"variant":"cacheside"}},
 *                          {"name":"cacheside-L1","spec":{"variant":"cacheside","env":{"CACHE_L1_MAX_ENTRIES":"50000"}}}]' \
 *                        [users20,zipf] [rounds]
 *
 * `spec` is a partial ServerSpec (server.ts), `cacheside` unless it names a variant; the first
 * configuration gives the expected answers.
 */
import {
  countedBetween,
  mapConcurrent,
  post,
  startLoadProcess,
  startServer,
  type BenchServer,
} from './harness.js';
import type { ServerSpec } from './server.js';
import { cleanup, onCleanup, openBenchEnvironment } from './setup.js';
import { median } from './summary.js';
import { buildWorkloads, type WorkloadName } from './workloads.js';

const configs = JSON.parse(process.argv[2] ?? '[]') as { name: string; spec: Partial<ServerSpec> }[];
const workloadNames = (process.argv[3] ?? 'users20,zipf').split(',') as WorkloadName[];
const rounds = Number(process.argv[4] ?? 3);
if (configs.length === 0) {
  console.error(
    'usage: tsx bench/compare.ts \'[{"name":"cacheside","spec":{"variant":"cacheside"}}, …]\' [workloads] [rounds]',
  );
  process.exit(2);
}

try {
  const env = await openBenchEnvironment('cmp_');
  const servers: BenchServer[] = [];
  onCleanup(() => Promise.all(servers.map((s) => s.stop())));
  for (const config of configs) servers.push(await startServer(env.specOf('cacheside', config.spec)));
  const load = startLoadProcess();
  onCleanup(() => load.stop());

  const workloads = buildWorkloads();
  for (const w of workloadNames) {
    const all = workloads[w].bodies.map((_, i) => i);
    const expected = await mapConcurrent(
      all,
      16,
      async (i) => (await post(servers[0]!.origin, workloads[w].bodies[i]!)).body,
    );
    load.send({ type: 'expect', workload: w, expected });
    for (let pass = 0; pass < 2; pass += 1) {
      for (const server of servers)
        await mapConcurrent(all, 16, (i) => post(server.origin, workloads[w].bodies[i]!));
    }
  }

  const rps: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  for (let round = 1; round <= rounds; round += 1) {
    for (const w of workloadNames) {
      for (const [i, server] of servers.entries()) {
        const before = await server.stats();
        const result = await load.run({ url: server.origin, workload: w, connections: 50, durationSec: 3 });
        const { cpuUs } = countedBetween(before, await server.stats());
        const cpuPct = cpuUs / (result.wallMs * 10);
        // CPU per request holds when other work shares the machine, where req/s swings.
        const cpuPerRequest = cpuUs / Math.max(1, result.rps * (result.wallMs / 1000));
        (rps[`${configs[i]!.name} ${w}`] ??= []).push(result.rps);
        (cpu[`${configs[i]!.name} ${w}`] ??= []).push(cpuPerRequest);
        console.log(
          `round ${round} ${configs[i]!.name.padEnd(12)} ${w.padEnd(8)} ${result.rps.toFixed(0).padStart(6)} req/s  server CPU ${cpuPct.toFixed(0)} % (${cpuPerRequest.toFixed(0)} µs/req)  p99 ${result.latencyMs.p99} ms  bad ${result.bad}`,
        );
      }
    }
  }
  console.log('\nmedian req/s:');
  for (const [key, values] of Object.entries(rps))
    console.log(
      `  ${key.padEnd(24)} ${median(values).toFixed(0)}  (${values.map((v) => v.toFixed(0)).join(', ')})`,
    );
  console.log('\nmedian server CPU µs per request:');
  for (const [key, values] of Object.entries(cpu))
    console.log(
      `  ${key.padEnd(24)} ${median(values).toFixed(0)}  (${values.map((v) => v.toFixed(0)).join(', ')})`,
    );
} finally {
  await cleanup();
}
