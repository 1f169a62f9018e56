/**
 * An interleaved A/B of server configurations, for trying a change to the hit path before making it:
 * every configuration runs as its own server on one fresh database, all are primed twice, then each
 * round runs each workload on each server in turn. Prints req/s, server CPU and p99 per run, and the
 * medians. bench/README.md quotes its results ("Measured and rejected", "Proposed").
 *
 *   tsx bench/compare.ts '[{"name":"C","spec":{"variant":"C"}},
 *                          {"name":"C-L1","spec":{"variant":"C","env":{"CACHE_L1_MAX_ENTRIES":"50000"}}}]' \
 *                        [users20,zipf] [rounds]
 *
 * `spec` is a partial ServerSpec (server.ts): variant, env, autoPipelining; the first configuration
 * gives the expected answers. `env.BENCH_EXPERIMENT=no-als` disables AsyncLocalStorage (experiment
 * only: per-request counts stop working).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { createDatabase } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import { mapConcurrent, post, startLoadProcess, startServer, type BenchServer } from './harness.js';
import { median } from './report.js';
import type { ServerSpec } from './server.js';
import { buildWorkloads, POSTS_PER_USER, USERS, type WorkloadName } from './workloads.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const configs = JSON.parse(process.argv[2] ?? '[]') as { name: string; spec: Partial<ServerSpec> }[];
const workloadNames = (process.argv[3] ?? 'users20,zipf').split(',') as WorkloadName[];
const rounds = Number(process.argv[4] ?? 3);
if (configs.length === 0) {
  console.error('usage: tsx bench/compare.ts \'[{"name":"C","spec":{"variant":"C"}}, …]\' [workloads] [rounds]');
  process.exit(2);
}

const tag = randomBytes(4).toString('hex');
const name = `cs_bench_cmp_${tag}`;
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
await admin`create database ${admin(name)}`;
const url = new URL(ADMIN_URL);
url.pathname = `/${name}`;
const servers: BenchServer[] = [];
const load = startLoadProcess();
try {
  const database = await createDatabase({ kind: 'postgres', url: url.toString() }, { poolSize: 2 });
  await migrateDatabase({ kind: 'postgres', url: url.toString() }, database);
  await seedDatabase(database.db, { users: USERS, postsPerUser: POSTS_PER_USER });
  await database.close();

  for (const config of configs) {
    servers.push(
      await startServer({
        variant: 'C',
        databaseUrl: url.toString(),
        redisUrl: REDIS_URL,
        prefix: `bench_cmp_${tag}`,
        authSecret: 'bench-secret-0123456789abcdef0123456789abcdef',
        ...config.spec,
      }),
    );
  }
  const workloads = buildWorkloads();
  for (const w of workloadNames) {
    const all = workloads[w].bodies.map((_, i) => i);
    const expected = await mapConcurrent(all, 16, async (i) => (await post(servers[0]!.origin, workloads[w].bodies[i]!)).body);
    load.send({ type: 'expect', workload: w, expected });
    for (let pass = 0; pass < 2; pass += 1) {
      for (const server of servers) await mapConcurrent(all, 16, (i) => post(server.origin, workloads[w].bodies[i]!));
    }
  }

  const rps: Record<string, number[]> = {};
  for (let round = 1; round <= rounds; round += 1) {
    for (const w of workloadNames) {
      for (const [i, server] of servers.entries()) {
        const before = await server.stats();
        const result = await load.run({ url: server.origin, workload: w, connections: 50, durationSec: 3 });
        const after = await server.stats();
        const cpuPct = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / (result.wallMs * 10);
        (rps[`${configs[i]!.name} ${w}`] ??= []).push(result.rps);
        console.log(
          `round ${round} ${configs[i]!.name.padEnd(12)} ${w.padEnd(8)} ${result.rps.toFixed(0).padStart(6)} req/s  server CPU ${cpuPct.toFixed(0)} %  p99 ${result.latencyMs.p99} ms  bad ${result.bad}`,
        );
      }
    }
  }
  console.log('\nmedian req/s:');
  for (const [key, values] of Object.entries(rps)) console.log(`  ${key.padEnd(24)} ${median(values).toFixed(0)}  (${values.map((v) => v.toFixed(0)).join(', ')})`);
} finally {
  await load.stop();
  await Promise.all(servers.map((s) => s.stop()));
  await admin`drop database if exists ${admin(name)} with (force)`;
  await admin.end();
  const redis = new Redis(REDIS_URL);
  for (let cursor = '0'; ; ) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `bench_cmp_${tag}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    if ((cursor = next) === '0') break;
  }
  redis.disconnect();
}
