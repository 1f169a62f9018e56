/**
 * Everything before a variant is counted or measured: its server started, the reference answers
 * taken from `dataloader`, the caching variants primed with the same requests and checked against
 * them byte for byte, and `cacheside` primed again until it is warm.
 */
import { log, mapConcurrent, post, startServer, type BenchServer } from './harness.js';
import { onCleanup, type BenchEnvironment } from './setup.js';
import { CACHE_TIER, CACHING, REFERENCE, type VariantName } from './variant-names.js';
import type { Workload, WorkloadName } from './workloads.js';
import type { ServerStats } from './server.js';

export type Servers = Map<VariantName, BenchServer>;
/** Per selected workload, in the order they run: indexes into its bodies (a mode's requests). */
export type Coverage = ReadonlyMap<WorkloadName, readonly number[]>;
/** Per workload, the reference body of each distinct request ('' where it was not asked). */
export type Answers = ReadonlyMap<WorkloadName, readonly string[]>;

/**
 * One server per variant, on the environment's database and prefix; `cachesideEnv` is more
 * configuration for the variants that run the cache tier. Each is stopped at cleanup, also when
 * another failed to start.
 */
export async function startVariants(
  env: BenchEnvironment,
  variants: readonly VariantName[],
  cachesideEnv: Readonly<Record<string, string>>,
): Promise<Servers> {
  const servers: Servers = new Map();
  onCleanup(() => stopAll(servers));
  await Promise.all(
    variants.map(async (v) => {
      const spec = env.specOf(v, CACHE_TIER.includes(v) ? { env: cachesideEnv } : {});
      servers.set(v, await startServer(spec));
    }),
  );
  return servers;
}

export async function stopAll(servers: Servers): Promise<void> {
  await Promise.all([...servers.values()].map((s) => s.stop()));
  servers.clear();
}

/**
 * The reference answers, from `dataloader`, then every caching variant primed with the covered
 * requests; each of their answers must be the reference one.
 */
export async function prepareAnswers(
  servers: Servers,
  workloads: Record<WorkloadName, Workload>,
  covered: Coverage,
): Promise<Answers> {
  log(`reference answers from ${REFERENCE} (DataLoaders straight from PostgreSQL)`);
  const expected = new Map<WorkloadName, string[]>();
  for (const [w, indexes] of covered)
    expected.set(w, await reference(servers.get(REFERENCE)!, workloads[w], indexes));
  const caching = CACHING.filter((v) => servers.has(v));
  log(`priming ${caching.join(' and ') || 'nothing'}, checking their answers against ${REFERENCE}`);
  for (const [w, indexes] of covered) {
    for (const v of caching) await prime(servers.get(v)!, workloads[w], indexes, expected.get(w));
  }
  // A fill can be skipped (a store timeout on a busy machine sends a batch to PostgreSQL without
  // filling): cacheside counts as warm only once a whole pass reads no entity from PostgreSQL.
  const cacheside = servers.get('cacheside');
  if (cacheside !== undefined) await primeUntilWarm(cacheside, workloads, covered, expected);
  return expected;
}

/** `server`'s answer to each request of `indexes` (the rest left empty): what every variant must answer. */
export async function reference(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
): Promise<string[]> {
  const expected = new Array<string>(workload.bodies.length).fill('');
  await mapConcurrent(indexes, 16, async (index) => {
    const answer = await post(server.origin, workload.bodies[index]!);
    if (answer.status !== 200 || answer.body.includes('"errors"')) {
      throw new Error(
        `reference answer for ${workload.name} #${index} is not clean: ${answer.status} ${answer.body.slice(0, 300)}`,
      );
    }
    expected[index] = answer.body;
  });
  return expected;
}

/** Sends each request of `indexes` once; with `expected`, each answer must be the expected one. */
export async function prime(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
  expected?: readonly string[],
): Promise<void> {
  await mapConcurrent(indexes, 16, async (index) => {
    const answer = await post(server.origin, workload.bodies[index]!);
    if (answer.status !== 200 || (expected !== undefined && answer.body !== expected[index])) {
      throw new Error(
        `${server.variant} answered ${workload.name} #${index} differently from ${REFERENCE}:\n${answer.status} ${answer.body.slice(0, 300)}\nexpected ${expected?.[index]?.slice(0, 300)}`,
      );
    }
  });
}

/**
 * Primes `indexes` on the response tier until one whole pass is served by it: every request a hit,
 * no store call but its check. A single pass is not enough on a busy machine: a store call past the
 * command timeout sends a lookup to PostgreSQL (a bypass), and an answer with a bypass is not stored.
 */
export function primeUntilServed(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
  expected?: readonly string[],
): Promise<void> {
  return primeUntil(server, workload, indexes, expected, {
    done: ({ store }) =>
      Object.entries(store).every(([call, count]) => call === 'getDependent' || count === 0),
    what: 'executed',
  });
}

/**
 * Primes `indexes` of `workload` until a whole pass runs no SQL: every entity and every page of ids
 * served from the cache. The entity tier's pages of ids live a minute (docs/consistency.md, "Pages"):
 * on a machine where priming every request of every variant takes longer, the counted pages had
 * expired by their count (1 range scan and 2 more round trips per userPage request, 2026-12-04).
 */
export function primeUntilNoSql(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
  expected?: readonly string[],
): Promise<void> {
  return primeUntil(server, workload, indexes, expected, {
    done: ({ sql }) => Object.values(sql).every((count) => count === 0),
    what: 'ran SQL for',
  });
}

// Private:

/** Priming passes over `indexes` until one is `done` by the server's counters (at most five). */
async function primeUntil(
  server: BenchServer,
  workload: Workload,
  indexes: readonly number[],
  expected: readonly string[] | undefined,
  pass: { done: (stats: ServerStats) => boolean; what: string },
): Promise<void> {
  for (let n = 1; ; n += 1) {
    await server.reset();
    await prime(server, workload, indexes, expected);
    const stats = await server.stats();
    if (pass.done(stats)) return;
    if (n === 5) {
      throw new Error(
        `${server.variant} still ${pass.what} ${workload.name} requests after ${n} priming passes (${JSON.stringify({ sql: stats.sql, store: stats.store })})`,
      );
    }
    log(`  ${server.variant} ${pass.what} ${workload.name} requests in priming pass ${n}; priming again`);
  }
}

async function primeUntilWarm(
  server: BenchServer,
  workloads: Record<WorkloadName, Workload>,
  covered: Coverage,
  expected: Answers,
): Promise<void> {
  for (let pass = 1; ; pass += 1) {
    await server.reset();
    for (const [w, indexes] of covered) await prime(server, workloads[w], indexes, expected.get(w));
    const { sql } = await server.stats();
    // Pages of user ids live a minute, less than priming everything takes on a slow machine: only
    // entity loads count here, and the counted pages are primed again right before their count
    // (`primeUntilNoSql`, counters.ts).
    const entityLoads = Object.entries(sql).reduce(
      (n, [query, count]) => n + (query === 'userPage' ? 0 : count),
      0,
    );
    if (entityLoads === 0) return;
    if (pass === 5)
      throw new Error(
        `${server.variant} is still not warm after ${pass} priming passes (${JSON.stringify(sql)})`,
      );
    log(
      `  ${server.variant} loaded ${entityLoads} entities from PostgreSQL in priming pass ${pass}; priming again`,
    );
  }
}
