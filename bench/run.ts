/**
 * `npm run bench`: cacheside side by side with the alternatives, as ratios measured in one run.
 * See bench/README.md for what each variant is and how to read the table.
 *
 *   npm run bench                         full run: counters, warm-up, interleaved rounds, mix, stampede
 *   npm run bench -- --quick              counters only, asserted (CI); under a minute, writes nothing
 *   npm run bench -- --profile            CPU profile (node --cpu-prof) of C and S on the hit path
 *   options: --rounds N (3) --duration S (3) --warmup S (2) --connections N (50) --label NAME
 *            --no-write (print only) --verbose (echo the servers' logs)
 *            --variants A,B,… --workloads users20,… --no-mix --no-stampede (partial runs)
 *            --c-env KEY=VALUE,… (configuration for C and D, e.g. CACHE_L1_MAX_ENTRIES=50000)
 *            --render results/FILE.json (rewrite RESULTS.md from a saved run)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { signToken } from '../src/auth/tokens.js';
import { createDatabase } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import {
  machineCpu,
  mapConcurrent,
  post,
  serverOutput,
  startLoadProcess,
  startServer,
  type BenchServer,
  type LoadProcess,
} from './harness.js';
import type { RunResult } from './load.js';
import { profileHitPath } from './profile.js';
import {
  checkCounters,
  renderMarkdown,
  summarize,
  type BenchResults,
  type CounterRow,
  type RunRecord,
  type StampedeRow,
} from './report.js';
import type { ServerSpec, ServerStats, VariantName } from './server.js';
import {
  body,
  buildMixPlan,
  buildWorkloads,
  POSTS_PER_USER,
  USERS,
  WORKLOADS as WORKLOADS_ALL,
  writeBody,
  type Workload,
  type WorkloadName,
} from './workloads.js';

const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const AUTH_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const VARIANTS_ALL: readonly VariantName[] = ['A', 'B', 'C', 'D', 'E', 'S'];
/** Requests per workload in the counters pass (sequential, so the counts are exact). */
const COUNTER_REQUESTS = 10;
const STAMPEDE_REQUESTS = 1000;
const STAMPEDE_USER = 4242;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    label: { type: 'string', default: 'run' },
    'no-write': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    variants: { type: 'string', default: VARIANTS_ALL.join(',') },
    workloads: { type: 'string', default: WORKLOADS_ALL.join(',') },
    'no-mix': { type: 'boolean', default: false },
    'no-stampede': { type: 'boolean', default: false },
    'c-env': { type: 'string', default: '' },
    render: { type: 'string' },
  },
});
serverOutput.echo = args.verbose;
// B is always there: it gives the reference answers.
const VARIANTS = subset('variants', args.variants, VARIANTS_ALL, ['B']);
const WORKLOADS = subset('workloads', args.workloads, WORKLOADS_ALL, []);
const MIX_VARIANTS = args['no-mix'] ? [] : (['C', 'E'] as const).filter((v) => VARIANTS.includes(v));
const settings = {
  rounds: positive('rounds', args.rounds),
  durationSec: positive('duration', args.duration),
  warmupSec: positive('warmup', args.warmup),
  connections: positive('connections', args.connections),
};

const cleanups: (() => Promise<unknown>)[] = [];
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error('\ninterrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
});

async function main(): Promise<number> {
  if (args.render !== undefined) {
    // Re-renders bench/RESULTS.md from a saved run (after a change to the report, not to the product).
    const markdown = renderMarkdown(JSON.parse(readFileSync(args.render, 'utf8')) as BenchResults);
    console.log(markdown);
    if (!args['no-write']) writeFileSync(`${BENCH_DIR}RESULTS.md`, markdown);
    return 0;
  }
  const started = performance.now();
  const loadAtStart = loadavg()[0]!;
  const tag = randomBytes(4).toString('hex');
  log(`dataset: ${USERS} users × ${POSTS_PER_USER} posts in a fresh database; Redis prefix bench_${tag}`);
  const data = await createBenchDatabase(tag);
  const prefix = `bench_${tag}`;
  cleanups.push(() => purgeRedis(`${prefix}`));

  const specOf = (variant: VariantName, extra: Partial<ServerSpec> = {}): ServerSpec => ({
    variant,
    databaseUrl: data.url,
    redisUrl: REDIS_URL,
    prefix,
    authSecret: AUTH_SECRET,
    ...extra,
  });

  if (args.profile) {
    await profileHitPath({
      // A long command timeout: on a busy machine a 200 ms one expires while replies wait in the
      // socket, and the profile would show misses and bypasses instead of the hit path.
      startServer: (variant, flags) => startServer(specOf(variant, { env: { REDIS_COMMAND_TIMEOUT_MS: '2000' } }), flags),
      startLoad: () => startLoadProcess(),
      prime: (server, workload) => prime(server, workload, workload.bodies.map((_, i) => i)),
      reference: (server, workload) => reference(server, workload, workload.bodies.map((_, i) => i)),
      outDir: `${BENCH_DIR}results/profiles`,
      label: args.label ?? 'run',
      connections: settings.connections,
      log,
    });
    return 0;
  }

  const workloads = buildWorkloads();
  const mixPlan = buildMixPlan();

  log(`starting servers ${VARIANTS.join(', ')} and the load generator`);
  const servers = new Map<VariantName, BenchServer>();
  const stopServers = () => Promise.all([...servers.values()].map((s) => s.stop()));
  cleanups.push(stopServers);
  // --c-env KEY=VALUE,…: C (and D) with more configuration, e.g. CACHE_L1_MAX_ENTRIES=50000.
  const cEnv = Object.fromEntries(
    (args['c-env'] ?? '')
      .split(',')
      .filter(Boolean)
      .map((pair) => pair.split('=') as [string, string]),
  );
  const variantSpec = (v: VariantName) => specOf(v, v === 'C' || v === 'D' ? { env: cEnv } : {});
  for (const server of await Promise.all(VARIANTS.map((v) => startServer(variantSpec(v))))) {
    servers.set(server.variant, server);
  }
  const B = servers.get('B')!;

  // The quick mode counts over the first requests only; the full run primes and checks everything.
  const counted = Object.fromEntries(
    WORKLOADS.map((w) => [w, firstDistinct(workloads[w], COUNTER_REQUESTS)]),
  ) as Record<WorkloadName, number[]>;
  const covered = (w: WorkloadName) =>
    args.quick ? counted[w] : workloads[w].bodies.map((_, i) => i);

  log('reference answers from B (DataLoaders straight from PostgreSQL)');
  const expected = {} as Record<WorkloadName, string[]>;
  for (const w of WORKLOADS) expected[w] = await reference(B, workloads[w], covered(w));
  log('priming C (Redis) and E (response cache), checking their answers against B');
  for (const w of WORKLOADS) {
    for (const v of (['C', 'E'] as const).filter((x) => VARIANTS.includes(x))) {
      await prime(servers.get(v)!, workloads[w], covered(w), expected[w]);
    }
  }
  // A fill can be skipped (a store timeout on a busy machine sends a batch to PostgreSQL without
  // filling): C counts as warm only once a whole pass reads no entity from PostgreSQL.
  if (VARIANTS.includes('C')) await primeUntilWarm(servers.get('C')!, workloads, covered, expected);

  log('counters: sequential requests, SQL statements and store round trips counted in each server');
  const counters = await countAll(servers, workloads, counted, expected);
  const problems = checkCounters(counters);

  if (args.quick) {
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

  const load = startLoadProcess();
  cleanups.push(() => load.stop());
  for (const w of WORKLOADS) load.send({ type: 'expect', workload: w, expected: expected[w] });
  const tokens = await Promise.all(mixPlan.writers.map(async (id) => [id, await signToken(AUTH_SECRET, id)] as const));
  load.send({ type: 'tokens', tokens });

  const runs: RunRecord[] = [];
  const measure = async (variant: VariantName, workload: WorkloadName | 'mix', durationSec: number, round: number) => {
    const server = servers.get(variant)!;
    const before = await server.stats();
    const machineBefore = machineCpu();
    const result = await load.run({
      url: server.origin,
      workload,
      connections: settings.connections,
      durationSec,
    });
    const after = await server.stats();
    const machineAfter = machineCpu();
    const record = toRecord(variant, workload, round, result, before, after, machineBefore, machineAfter);
    if (record.bad > 0) {
      console.error(`  ${variant} ${workload}: ${record.bad} bad responses, e.g. ${result.badSamples[0]}`);
    }
    return record;
  };

  const warmupCombos = WORKLOADS.length * VARIANTS.length + MIX_VARIANTS.length;
  log(`warm-up: every variant and workload for ${settings.warmupSec} s (${warmupCombos} runs)`);
  for (const w of WORKLOADS) for (const v of VARIANTS) await measure(v, w, settings.warmupSec, 0);
  for (const v of MIX_VARIANTS) await measure(v, 'mix', settings.warmupSec, 0);

  for (let round = 1; round <= settings.rounds; round += 1) {
    // Each round starts the rotation one further, so no variant always runs first or after the same one.
    const order = rotate(VARIANTS, round - 1);
    log(`round ${round}/${settings.rounds}: ${order.join(' ')} × ${WORKLOADS.length} workloads + mix, ${settings.durationSec} s each`);
    for (const w of WORKLOADS) {
      for (const v of order) runs.push(await measure(v, w, settings.durationSec, round));
    }
    for (const v of rotate(MIX_VARIANTS, round - 1)) {
      runs.push(await measure(v, 'mix', settings.durationSec, round));
    }
    const line = summarize(runs.filter((r) => r.round === round), 1);
    log(`  ${WORKLOADS.map((w) => `${w}: C/B ${fmt(line.ratios['C/B']?.[w])} C/S ${fmt(line.ratios['C/S']?.[w])}`).join('; ')}`);
  }

  log('mix counters: one write then one read of the same user on C and E');
  const mixCounters = MIX_VARIANTS.length === 2 ? await countMix(servers, mixPlan.writers[0]!) : {};

  const stampedeExpected = (await post(B.origin, stampedeBody())).body;
  log('stopping the variant servers before the stampede');
  await stopServers();
  servers.clear();
  const stampede = args['no-stampede'] ? [] : await runStampede(load, specOf, prefix, stampedeExpected);

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
  if (!args['no-write']) {
    mkdirSync(`${BENCH_DIR}results`, { recursive: true });
    const file = `${BENCH_DIR}results/${args.label}-${results.date.replace(/[:.]/g, '-')}.json`;
    writeFileSync(file, `${JSON.stringify(results, null, 1)}\n`);
    writeFileSync(`${BENCH_DIR}RESULTS.md`, markdown);
    log(`wrote bench/RESULTS.md and ${file.slice(BENCH_DIR.length - 'bench/'.length)}`);
  }
  const bad = runs.reduce((n, r) => n + r.bad, 0) + stampede.reduce((n, s) => n + s.bad, 0);
  log(`done in ${results.wallSeconds.toFixed(0)} s`);
  if (bad > 0 || problems.length > 0) {
    console.error(`bench: ${bad} bad responses, ${problems.length} counter problems`);
    return 1;
  }
  return 0;
}

// Setup and teardown:

async function createBenchDatabase(tag: string): Promise<{ url: string }> {
  const name = `cs_bench_${tag}`;
  await admin((sql) => sql`create database ${sql(name)}`);
  cleanups.push(() => admin((sql) => sql`drop database if exists ${sql(name)} with (force)`));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  const database = await createDatabase({ kind: 'postgres', url }, { poolSize: 2 });
  try {
    await migrateDatabase({ kind: 'postgres', url }, database);
    const t = performance.now();
    await seedDatabase(database.db, { users: USERS, postsPerUser: POSTS_PER_USER });
    log(`seeded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  } finally {
    await database.close();
  }
  return { url };
}

async function admin(run: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = postgres(ADMIN_URL, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function purgeRedis(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function cleanup(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) {
    await step().catch((error: unknown) => console.error('cleanup:', error));
  }
}

// Priming and counting:

/** The first `n` distinct request indexes in the order the workload walks them. */
function firstDistinct(workload: Workload, n: number): number[] {
  const seen = new Set<number>();
  for (const index of workload.sequence) {
    seen.add(index);
    if (seen.size === n) break;
  }
  return [...seen];
}

/** B's answer to each request of `indexes` (the rest left empty): what every variant must answer. */
async function reference(server: BenchServer, workload: Workload, indexes: readonly number[]): Promise<string[]> {
  const expected = new Array<string>(workload.bodies.length).fill('');
  await mapConcurrent(indexes, 16, async (index) => {
    const answer = await post(server.origin, workload.bodies[index]!);
    if (answer.status !== 200 || answer.body.includes('"errors"')) {
      throw new Error(`reference answer for ${workload.name} #${index} is not clean: ${answer.status} ${answer.body.slice(0, 300)}`);
    }
    expected[index] = answer.body;
  });
  return expected;
}

async function prime(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
  expected?: readonly string[],
): Promise<void> {
  await mapConcurrent(indexes, 16, async (index) => {
    const answer = await post(server.origin, workload.bodies[index]!);
    if (answer.status !== 200 || (expected !== undefined && answer.body !== expected[index])) {
      throw new Error(
        `${server.variant} answered ${workload.name} #${index} differently from B:\n${answer.status} ${answer.body.slice(0, 300)}\nexpected ${expected?.[index]?.slice(0, 300)}`,
      );
    }
  });
}

async function primeUntilWarm(
  server: BenchServer,
  workloads: Record<WorkloadName, Workload>,
  covered: (w: WorkloadName) => number[],
  expected: Record<WorkloadName, string[]>,
): Promise<void> {
  for (let pass = 1; ; pass += 1) {
    await server.reset();
    for (const w of WORKLOADS) await prime(server, workloads[w], covered(w), expected[w]);
    const { sql } = await server.stats();
    // The page query (`userPage`) is never cached: every other statement is an entity load.
    const entityLoads = Object.entries(sql).reduce((n, [query, count]) => n + (query === 'userPage' ? 0 : count), 0);
    if (entityLoads === 0) return;
    if (pass === 5) throw new Error(`C is still not warm after ${pass} priming passes (${JSON.stringify(sql)})`);
    log(`  C loaded ${entityLoads} entities from PostgreSQL in priming pass ${pass}; priming again`);
  }
}

async function countAll(
  servers: Map<VariantName, BenchServer>,
  workloads: Record<WorkloadName, Workload>,
  counted: Record<WorkloadName, number[]>,
  expected: Record<WorkloadName, string[]>,
): Promise<CounterRow[]> {
  const rows: CounterRow[] = [];
  for (const w of WORKLOADS) {
    for (const variant of VARIANTS) {
      const server = servers.get(variant)!;
      await server.reset();
      let bytes = 0;
      let mismatches = 0;
      for (const index of counted[w]) {
        const answer = await post(server.origin, workloads[w].bodies[index]!);
        bytes += Buffer.byteLength(answer.body);
        if (answer.status !== 200 || answer.body !== expected[w][index]) mismatches += 1;
      }
      const stats = await server.stats();
      const n = counted[w].length;
      const sql = Object.values(stats.sql).reduce((a, b) => a + b, 0);
      const roundTrips = Object.values(stats.store).reduce((a, b) => a + b, 0);
      const row: CounterRow = {
        workload: w,
        variant,
        requests: n,
        sqlPerRequest: sql / n,
        roundTripsPerRequest: roundTrips / n,
        bytesPerResponse: bytes / n,
        sqlByQuery: stats.sql,
        storeCalls: stats.store,
        mismatches,
      };
      // The app's own per-request accounting (x-cache-debug: 1) must agree with the servers' counts.
      if (variant !== 'E') {
        let debugSql = 0;
        let debugTrips = 0;
        for (const index of counted[w]) {
          const answer = await post(server.origin, workloads[w].bodies[index]!, { 'x-cache-debug': '1' });
          const cache = (JSON.parse(answer.body) as { extensions?: { cache?: { sqlStatements: number; storeRoundTrips: number } } })
            .extensions?.cache;
          debugSql += cache?.sqlStatements ?? Number.NaN;
          debugTrips += cache?.storeRoundTrips ?? Number.NaN;
        }
        row.debug = { sqlPerRequest: debugSql / n, roundTripsPerRequest: debugTrips / n };
      }
      rows.push(row);
    }
  }
  return rows;
}

async function countMix(servers: Map<VariantName, BenchServer>, userId: number) {
  const token = await signToken(AUTH_SECRET, userId);
  // The mix's own read, so that E has it cached (its key is the document and variables).
  const read = buildMixPlan().readBody(userId);
  const out: Record<string, { write: { sql: number; roundTrips: number }; readAfterWrite: { sql: number; roundTrips: number; version: number; expectedVersion: number } }> = {};
  for (const variant of ['C', 'E'] as const) {
    const server = servers.get(variant)!;
    await post(server.origin, read);
    await server.reset();
    const written = JSON.parse(
      (await post(server.origin, writeBody(`counted write on ${variant}`), { authorization: `Bearer ${token}`, 'x-cache-debug': '1' })).body,
    ) as { data: { updateProfile: { version: number } }; extensions?: { cache?: { sqlStatements: number; storeRoundTrips: number } } };
    await server.reset();
    const answer = JSON.parse((await post(server.origin, read)).body) as { data: { user: { profile: { version: number } } } };
    const stats = await server.stats();
    out[variant] = {
      write: {
        sql: written.extensions?.cache?.sqlStatements ?? Number.NaN,
        roundTrips: written.extensions?.cache?.storeRoundTrips ?? Number.NaN,
      },
      readAfterWrite: {
        sql: Object.values(stats.sql).reduce((a, b) => a + b, 0),
        roundTrips: Object.values(stats.store).reduce((a, b) => a + b, 0),
        version: answer.data.user.profile.version,
        expectedVersion: written.data.updateProfile.version,
      },
    };
  }
  return out;
}

// The stampede:

function stampedeBody(): string {
  return body(`query Cold($id: ID!) { user(id: $id) { id name profile { displayName location } } }`, {
    id: String(STAMPEDE_USER),
  });
}

async function runStampede(
  load: LoadProcess,
  specOf: (variant: VariantName, extra?: Partial<ServerSpec>) => ServerSpec,
  prefix: string,
  expected: string,
): Promise<StampedeRow[]> {
  // With the default 200 ms Redis command timeout, a burst this size can hold the event loop longer
  // than that: replies already received count as timeouts, the breaker opens and reads go to
  // PostgreSQL. The 2 s rows show the locks themselves, without that.
  const slowTimeout = { REDIS_COMMAND_TIMEOUT_MS: '2000' };
  const configs: { name: string; variant: VariantName; locksOff?: boolean; env?: Record<string, string> }[] = [
    { name: 'C, locks on', variant: 'C' },
    { name: 'C, locks off', variant: 'C', locksOff: true },
    { name: 'C, locks on, 2 s command timeout', variant: 'C', env: slowTimeout },
    { name: 'C, locks off, 2 s command timeout', variant: 'C', locksOff: true, env: slowTimeout },
    { name: 'B, no cache', variant: 'B' },
  ];
  const rows: StampedeRow[] = [];
  for (const [i, config] of configs.entries()) {
    // A fresh key prefix: the key is cold in Redis; fresh processes: cold in memory.
    const spec = specOf(config.variant, {
      prefix: `${prefix}_stampede${i}`,
      relay: false,
      trackIds: true,
      ...(config.locksOff ? { locksOff: true } : {}),
      ...(config.env ? { env: config.env } : {}),
    });
    const pair = await Promise.all([startServer(spec), startServer(spec)]);
    try {
      log(`stampede: ${STAMPEDE_REQUESTS} concurrent requests for user ${STAMPEDE_USER} over two instances, ${config.name}`);
      const result = await load.burst({
        origins: pair.map((s) => s.origin),
        total: STAMPEDE_REQUESTS,
        body: stampedeBody(),
        expected,
      });
      const stats = await Promise.all(pair.map((s) => s.stats()));
      const loadsOf = (key: string) => stats.reduce((n, s) => n + (s.loads[key] ?? 0), 0);
      rows.push({
        config: config.name,
        requests: result.requests,
        userLoads: loadsOf(`users:${STAMPEDE_USER}`),
        profileLoads: loadsOf(`profiles:${STAMPEDE_USER}`),
        p50Ms: result.latencyMs.p50,
        p99Ms: result.latencyMs.p99,
        maxMs: result.latencyMs.max,
        bad: result.bad,
        breakerOpened: stats.reduce((n, s) => n + s.breaker.opened, 0),
        shortCircuited: stats.reduce((n, s) => n + s.breaker.shortCircuited, 0),
      });
      if (result.bad > 0) console.error(`  stampede ${config.name}: ${result.bad} bad, e.g. ${result.badSamples[0]}`);
    } finally {
      await Promise.all(pair.map((s) => s.stop()));
      await purgeRedis(spec.prefix);
    }
  }
  return rows;
}

// Helpers:

function toRecord(
  variant: VariantName,
  workload: WorkloadName | 'mix',
  round: number,
  result: RunResult,
  before: ServerStats,
  after: ServerStats,
  machineBefore: { busy: number; total: number } | undefined,
  machineAfter: { busy: number; total: number } | undefined,
): RunRecord {
  const wallUs = result.wallMs * 1000;
  const serverUs = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
  const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
  const perRequest = (n: number) => (result.requests === 0 ? 0 : n / result.requests);
  const machine =
    machineBefore && machineAfter && machineAfter.total > machineBefore.total
      ? ((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)) * 100
      : undefined;
  return {
    variant,
    workload,
    round,
    rps: result.rps,
    p50Ms: result.latencyMs.p50,
    p99Ms: result.latencyMs.p99,
    requests: result.requests,
    bad: result.bad,
    badSamples: result.badSamples,
    socketErrors: result.socketErrors,
    bytesPerResponse: result.bytesPerResponse,
    serverCpuPct: (serverUs / wallUs) * 100,
    loadCpuPct: (result.loadCpuUs / wallUs) * 100,
    machineCpuPct: machine,
    // Under load (not deterministic: concurrent requests share flights and the relay runs too).
    sqlPerRequest: perRequest(total(after.sql) - total(before.sql)),
    roundTripsPerRequest: perRequest(total({ ...after.store }) - total({ ...before.store })),
    breakerOpened: after.breaker.opened - before.breaker.opened,
    ...(result.mix ? { mix: result.mix } : {}),
  };
}

function renderCounterLines(rows: readonly CounterRow[]): string {
  const lines = ['workload   variant  SQL/req  round trips/req  bytes/resp  (x-cache-debug: SQL, round trips)'];
  for (const r of rows) {
    lines.push(
      `${r.workload.padEnd(10)} ${r.variant.padEnd(8)} ${r.sqlPerRequest.toFixed(1).padStart(7)}  ${r.roundTripsPerRequest.toFixed(1).padStart(15)}  ${r.bytesPerResponse.toFixed(0).padStart(10)}  ${r.debug ? `${r.debug.sqlPerRequest.toFixed(1)}, ${r.debug.roundTripsPerRequest.toFixed(1)}` : '—'}`,
    );
  }
  return lines.join('\n');
}

function subset<T extends string>(name: string, value: string | undefined, all: readonly T[], always: readonly T[]): T[] {
  const wanted = new Set((value ?? '').split(',').map((x) => x.trim()).filter(Boolean));
  for (const x of wanted) if (!all.includes(x as T)) throw new Error(`--${name}: unknown ${JSON.stringify(x)}; choose from ${all.join(', ')}`);
  return all.filter((x) => wanted.has(x) || always.includes(x));
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

function fmt(value: number | undefined): string {
  return value === undefined ? '—' : value.toFixed(2);
}

function log(message: string): void {
  console.error(`[bench] ${message}`);
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
