/**
 * The per-request counters: each workload's first distinct requests, sent one at a time to every
 * variant, with the SQL statements and store round trips each server counted. Sequential requests
 * share nothing, so the counts are exact and deterministic: what a request costs, not noise. That is
 * why `--quick` asserts them against EXPECTED and CI runs it, and why the full run starts with them.
 */
import { signToken } from '../src/auth/tokens.js';
import { countedBetween, log, post } from './harness.js';
import {
  prepareAnswers,
  primeUntilNoSql,
  primeUntilServed,
  startVariants,
  type Answers,
  type Coverage,
  type Servers,
} from './prepare.js';
import type { CounterRow, MixCounter } from './results.js';
import { AUTH_SECRET, openBenchEnvironment, type BenchEnvironment } from './setup.js';
import { CACHING, REFERENCE, type VariantName } from './variant-names.js';
import { buildMixPlan, buildWorkloads, writeBody, type Workload, type WorkloadName } from './workloads.js';

/** Requests per workload in the counters pass. */
const COUNTER_REQUESTS = 10;

/**
 * What the counters must be, per request: they are deterministic (sequential requests, warm caching
 * variants, an always-miss that always misses), so any difference is a change in what a request
 * costs, and the quick mode fails.
 */
const EXPECTED: Partial<
  Record<VariantName, Partial<Record<WorkloadName, { sql: number; roundTrips: number }>>>
> = {
  // N+1: the root, then one statement per parent for profile and posts (and per post for author).
  naive: {
    users20: { sql: 41, roundTrips: 0 },
    userPage: { sql: 101, roundTrips: 0 },
    zipf: { sql: 3, roundTrips: 0 },
  },
  // One statement per DataLoader batch: user, profile, post ids, posts (+ the page query).
  dataloader: {
    users20: { sql: 4, roundTrips: 0 },
    userPage: { sql: 5, roundTrips: 0 },
    zipf: { sql: 4, roundTrips: 0 },
  },
  // Warm: one MGET per batch and no SQL; a page of ids is one checked read (it depends on the user
  // directory's version: src/cache/read/page-reader.ts).
  cacheside: {
    users20: { sql: 0, roundTrips: 4 },
    userPage: { sql: 0, roundTrips: 5 },
    zipf: { sql: 0, roundTrips: 4 },
  },
  // Warm, the whole answer: one checked read and nothing else; a page's id range is covered by the
  // user directory's version, one more dependency of that read.
  'response-tier': {
    users20: { sql: 0, roundTrips: 1 },
    userPage: { sql: 0, roundTrips: 1 },
    zipf: { sql: 0, roundTrips: 1 },
  },
  // Every batch misses: MGET, lock-and-read, SQL, fill under the grant (which releases it) — 3 round
  // trips and 1 statement (4 before the lock read the key in the same step). A page: its check, the
  // directory's batch, its range, its store — 5 round trips and 2 statements.
  'always-miss': {
    users20: { sql: 4, roundTrips: 12 },
    userPage: { sql: 6, roundTrips: 17 },
    zipf: { sql: 4, roundTrips: 12 },
  },
  'response-cache': {
    users20: { sql: 0, roundTrips: 0 },
    userPage: { sql: 0, roundTrips: 0 },
    zipf: { sql: 0, roundTrips: 0 },
  },
  static: {
    users20: { sql: 0, roundTrips: 0 },
    userPage: { sql: 0, roundTrips: 0 },
    zipf: { sql: 0, roundTrips: 0 },
  },
};

export interface Counted {
  readonly env: BenchEnvironment;
  readonly servers: Servers;
  /** The workloads the answers and counters were taken on (`buildWorkloads`, built once). */
  readonly workloads: Record<WorkloadName, Workload>;
  readonly expected: Answers;
  readonly counters: CounterRow[];
  readonly problems: string[];
}

/**
 * What `--quick` does and the full run starts with: a fresh database, a server per variant, the
 * reference answers, priming and the counters. With `primeAll`, every distinct request is answered
 * and primed (the full run checks every response against them); without it only the counted ones,
 * which is all the quick mode sends.
 */
export async function startAndCount(
  options: {
    readonly variants: readonly VariantName[];
    readonly workloads: readonly WorkloadName[];
    readonly cachesideEnv: Readonly<Record<string, string>>;
  },
  primeAll: boolean,
): Promise<Counted> {
  const env = await openBenchEnvironment();
  const workloads = buildWorkloads();
  log(`starting servers ${options.variants.join(', ')}`);
  const servers = await startVariants(env, options.variants, options.cachesideEnv);
  const counted: Coverage = new Map(
    options.workloads.map((w) => [w, firstDistinct(workloads[w], COUNTER_REQUESTS)]),
  );
  const covered: Coverage = primeAll
    ? new Map(options.workloads.map((w) => [w, workloads[w].bodies.map((_, i) => i)]))
    : counted;
  const expected = await prepareAnswers(servers, workloads, covered);
  log('counters: sequential requests, SQL statements and store round trips counted in each server');
  const counters = await countAll(servers, options.variants, workloads, counted, expected, primeAll);
  return { env, servers, workloads, expected, counters, problems: checkCounters(counters) };
}

/** One write then one read of the same user on each caching variant, one request at a time. */
export async function countMix(
  servers: Servers,
  userId: number,
): Promise<Partial<Record<VariantName, MixCounter>>> {
  const token = await signToken(AUTH_SECRET, userId);
  // The mix's own read, so that response-cache has it cached (its key is the document and variables).
  const read = buildMixPlan().readBody(userId);
  const out: Partial<Record<VariantName, MixCounter>> = {};
  for (const variant of CACHING) {
    const server = servers.get(variant)!;
    await post(server.origin, read);
    await server.reset();
    const written = JSON.parse(
      (
        await post(server.origin, writeBody(`counted write on ${variant}`), {
          authorization: `Bearer ${token}`,
          'x-cache-debug': '1',
        })
      ).body,
    ) as {
      data: { updateProfile: { version: number } };
      extensions?: { cache?: { sqlStatements: number; storeRoundTrips: number } };
    };
    await server.reset();
    const answer = JSON.parse((await post(server.origin, read)).body) as {
      data: { user: { profile: { version: number } } };
    };
    const { sql, roundTrips } = countedBetween(undefined, await server.stats());
    out[variant] = {
      write: {
        sql: written.extensions?.cache?.sqlStatements ?? Number.NaN,
        roundTrips: written.extensions?.cache?.storeRoundTrips ?? Number.NaN,
      },
      readAfterWrite: {
        sql,
        roundTrips,
        version: answer.data.user.profile.version,
        expectedVersion: written.data.updateProfile.version,
      },
    };
  }
  return out;
}

/** The counter table `--quick` prints (test/deploy/bench-quick.test.ts reads it back). */
export function renderCounterLines(rows: readonly CounterRow[]): string {
  const lines = [
    `${'workload'.padEnd(10)} ${'variant'.padEnd(14)} SQL/req  round trips/req  bytes/resp  (x-cache-debug: SQL, round trips)`,
  ];
  for (const r of rows) {
    lines.push(
      `${r.workload.padEnd(10)} ${r.variant.padEnd(14)} ${r.sqlPerRequest.toFixed(1).padStart(7)}  ${r.roundTripsPerRequest.toFixed(1).padStart(15)}  ${r.bytesPerResponse.toFixed(0).padStart(10)}  ${r.debug ? `${r.debug.sqlPerRequest.toFixed(1)}, ${r.debug.roundTripsPerRequest.toFixed(1)}` : '—'}`,
    );
  }
  return lines.join('\n');
}

// Private:

/** The first `n` distinct request indexes in the order the workload walks them. */
function firstDistinct(workload: Workload, n: number): number[] {
  const seen = new Set<number>();
  for (const index of workload.sequence) {
    seen.add(index);
    if (seen.size === n) break;
  }
  return [...seen];
}

async function countAll(
  servers: Servers,
  variants: readonly VariantName[],
  workloads: Record<WorkloadName, Workload>,
  counted: Coverage,
  expected: Answers,
  /**
   * Prime the counted requests on the response tier right before counting them there, until a whole
   * pass is served by it (`primeUntilServed`), and on the entity tier until a pass runs no SQL
   * (`primeUntilNoSql`: its pages of ids live a minute). A stored answer lives at most
   * RESPONSE_CACHE_TTL_SECONDS (30 s), less than priming every request of every variant takes; and
   * a single pass right before was not enough either: in two full runs on 2026-12-03, 4 and 8 of 10
   * userPage requests executed again at their count, every entity a hit (a third run did not repeat
   * it). A store call past its timeout on a busy machine is one way to leave an answer unstored (its
   * lookup becomes a bypass); a pass served whole proves they are stored, whatever the cause.
   */
  primeFirst: boolean,
): Promise<CounterRow[]> {
  const rows: CounterRow[] = [];
  for (const [w, indexes] of counted) {
    for (const variant of variants) {
      const server = servers.get(variant)!;
      if (primeFirst && variant === 'response-tier') {
        await primeUntilServed(server, workloads[w], indexes, expected.get(w));
      }
      // Its pages of ids live a minute, less than priming everything may take (prepare.ts).
      if (primeFirst && variant === 'cacheside') {
        await primeUntilNoSql(server, workloads[w], indexes, expected.get(w));
      }
      await server.reset();
      let bytes = 0;
      let mismatches = 0;
      for (const index of indexes) {
        const answer = await post(server.origin, workloads[w].bodies[index]!);
        bytes += Buffer.byteLength(answer.body);
        if (answer.status !== 200 || answer.body !== expected.get(w)![index]) mismatches += 1;
      }
      const stats = await server.stats();
      const { sql, roundTrips } = countedBetween(undefined, stats);
      const n = indexes.length;
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
        violations: stats.violations,
      };
      // The app's own per-request accounting (x-cache-debug: 1) must agree with the servers' counts;
      // response-cache answers from its cache without running our code, so it has none to give.
      if (variant !== 'response-cache') {
        let debugSql = 0;
        let debugTrips = 0;
        for (const index of indexes) {
          const answer = await post(server.origin, workloads[w].bodies[index]!, { 'x-cache-debug': '1' });
          const cache = (
            JSON.parse(answer.body) as {
              extensions?: { cache?: { sqlStatements: number; storeRoundTrips: number } };
            }
          ).extensions?.cache;
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

function checkCounters(rows: readonly CounterRow[]): string[] {
  const problems: string[] = [];
  for (const row of rows) {
    const at = `${row.variant} ${row.workload}`;
    const want = EXPECTED[row.variant]?.[row.workload];
    if (row.mismatches > 0) problems.push(`${at}: ${row.mismatches} answers differ from ${REFERENCE}'s`);
    if ((row.violations ?? 0) > 0)
      problems.push(`${at}: the consistency monitor found ${row.violations} stale entries`);
    if (want !== undefined) {
      if (row.sqlPerRequest !== want.sql) {
        problems.push(
          `${at}: ${row.sqlPerRequest} SQL statements per request, expected ${want.sql} (${JSON.stringify(row.sqlByQuery)})`,
        );
      }
      if (row.roundTripsPerRequest !== want.roundTrips) {
        problems.push(
          `${at}: ${row.roundTripsPerRequest} store round trips per request, expected ${want.roundTrips} (${JSON.stringify(row.storeCalls)})`,
        );
      }
    }
    if (row.debug !== undefined) {
      if (row.debug.sqlPerRequest !== row.sqlPerRequest) {
        problems.push(
          `${at}: x-cache-debug reports ${row.debug.sqlPerRequest} SQL statements per request, the server counted ${row.sqlPerRequest}`,
        );
      }
      if (row.debug.roundTripsPerRequest !== row.roundTripsPerRequest) {
        problems.push(
          `${at}: x-cache-debug reports ${row.debug.roundTripsPerRequest} round trips per request, the store counted ${row.roundTripsPerRequest}`,
        );
      }
    }
  }
  const bytes = new Map<WorkloadName, Set<string>>();
  for (const row of rows)
    (bytes.get(row.workload) ?? bytes.set(row.workload, new Set()).get(row.workload)!).add(
      row.bytesPerResponse.toFixed(1),
    );
  for (const [w, sizes] of bytes)
    if (sizes.size > 1)
      problems.push(`${w}: response sizes differ between variants (${[...sizes].join(', ')})`);
  return problems;
}
