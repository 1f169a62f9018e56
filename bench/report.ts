/**
 * Turns the raw runs into what bench/RESULTS.md shows: medians per variant, ratios as medians of
 * per-round ratios, the counters and their expected values, the mix and the stampede.
 */
import type { StoreCalls } from './variants.js';
import type { VariantName } from './server.js';
import { WORKLOAD_TITLES, WORKLOADS, type WorkloadName } from './workloads.js';

export interface RunRecord {
  readonly variant: VariantName;
  readonly workload: WorkloadName | 'mix';
  /** 0 for warm-up runs. */
  readonly round: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly bad: number;
  readonly badSamples: readonly string[];
  readonly socketErrors: number;
  readonly bytesPerResponse: number;
  /** CPU of the server process over the run, % of one core. */
  readonly serverCpuPct: number;
  /** CPU of the load generator process, % of one core. */
  readonly loadCpuPct: number;
  /** Whole machine, % of all cores. */
  readonly machineCpuPct: number | undefined;
  /** SQL statements and store round trips per request during the run, counted in the server. */
  readonly sqlPerRequest: number;
  readonly roundTripsPerRequest: number;
  /** Times the server's circuit breaker opened during the run. */
  readonly breakerOpened: number;
  readonly mix?: { reads: number; writes: number; stale: number };
}

export interface CounterRow {
  readonly workload: WorkloadName;
  readonly variant: VariantName;
  readonly requests: number;
  readonly sqlPerRequest: number;
  readonly roundTripsPerRequest: number;
  readonly bytesPerResponse: number;
  readonly sqlByQuery: Record<string, number>;
  readonly storeCalls: StoreCalls;
  /** Answers that differed from B's. */
  readonly mismatches: number;
  /** The same, as the app itself reports it with `x-cache-debug: 1`. */
  debug?: { sqlPerRequest: number; roundTripsPerRequest: number };
}

export interface StampedeRow {
  readonly config: string;
  readonly requests: number;
  readonly userLoads: number;
  readonly profileLoads: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly bad: number;
  /** Circuit-breaker openings over both instances, and store calls it refused. */
  readonly breakerOpened: number;
  readonly shortCircuited: number;
}

export interface BenchResults {
  readonly date: string;
  readonly machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    /** 1-minute load average when the run started and ended. */
    loadAverage?: { atStart: number; atEnd: number };
  };
  readonly settings: {
    rounds: number;
    durationSec: number;
    warmupSec: number;
    connections: number;
    users: number;
    postsPerUser: number;
  };
  readonly runs: readonly RunRecord[];
  readonly counters: readonly CounterRow[];
  readonly mixCounters: Record<
    string,
    {
      write: { sql: number; roundTrips: number };
      readAfterWrite: { sql: number; roundTrips: number; version: number; expectedVersion: number };
    }
  >;
  readonly stampede: readonly StampedeRow[];
  readonly counterProblems: readonly string[];
  readonly wallSeconds: number;
}

export const RATIOS = [
  { name: 'C/A', of: 'C', over: 'A', target: 10, meaning: 'cacheside vs naive N+1 resolvers' },
  { name: 'C/B', of: 'C', over: 'B', target: 2, meaning: 'cacheside (warm) vs DataLoaders alone' },
  { name: 'D/B', of: 'D', over: 'B', target: 0.85, meaning: 'cacheside on the miss path vs DataLoaders alone' },
  { name: 'C/S', of: 'C', over: 'S', target: 0.8, meaning: 'cacheside (warm) vs static in-memory resolvers' },
  { name: 'C/E', of: 'C', over: 'E', target: undefined, meaning: 'cacheside (warm) vs whole-response cache (warm)' },
  // Ceilings: no data layer can beat S, so C/A can be at most S/A and C/B at most S/B.
  { name: 'S/A', of: 'S', over: 'A', target: undefined, meaning: 'the ceiling of C/A' },
  { name: 'S/B', of: 'S', over: 'B', target: undefined, meaning: 'the ceiling of C/B' },
] as const;

type Column = WorkloadName | 'mix';

export interface Summary {
  /** Median over rounds of each variant's figures, per workload. */
  readonly medians: Partial<Record<VariantName, Partial<Record<Column, Medians>>>>;
  /** Median over rounds of the per-round ratio, per workload. */
  readonly ratios: Record<string, Partial<Record<Column, number>>>;
}

export interface Medians {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuPct: number;
  loadCpuPct: number;
  machineCpuPct: number | undefined;
  sqlPerRequest: number;
  roundTripsPerRequest: number;
  breakerOpened: number;
  rounds: number;
  requests: number;
  bad: number;
  stale?: number;
  reads?: number;
  writes?: number;
}

export function summarize(runs: readonly RunRecord[], minRound = 1): Summary {
  const measured = runs.filter((r) => r.round >= minRound);
  const medians: Summary['medians'] = {};
  for (const r of measured) {
    const byWorkload = (medians[r.variant] ??= {});
    if (byWorkload[r.workload] !== undefined) continue;
    const same = measured.filter((x) => x.variant === r.variant && x.workload === r.workload);
    const machine = same.map((x) => x.machineCpuPct).filter((x): x is number => x !== undefined);
    byWorkload[r.workload] = {
      rps: median(same.map((x) => x.rps)),
      p50Ms: median(same.map((x) => x.p50Ms)),
      p99Ms: median(same.map((x) => x.p99Ms)),
      serverCpuPct: median(same.map((x) => x.serverCpuPct)),
      loadCpuPct: median(same.map((x) => x.loadCpuPct)),
      machineCpuPct: machine.length > 0 ? median(machine) : undefined,
      sqlPerRequest: median(same.map((x) => x.sqlPerRequest ?? Number.NaN)),
      roundTripsPerRequest: median(same.map((x) => x.roundTripsPerRequest ?? Number.NaN)),
      breakerOpened: same.reduce((n, x) => n + (x.breakerOpened ?? 0), 0),
      rounds: same.length,
      requests: same.reduce((n, x) => n + x.requests, 0),
      bad: same.reduce((n, x) => n + x.bad, 0),
      ...(r.mix
        ? {
            stale: same.reduce((n, x) => n + (x.mix?.stale ?? 0), 0),
            reads: same.reduce((n, x) => n + (x.mix?.reads ?? 0), 0),
            writes: same.reduce((n, x) => n + (x.mix?.writes ?? 0), 0),
          }
        : {}),
    };
  }

  const ratios: Summary['ratios'] = {};
  const rounds = [...new Set(measured.map((r) => r.round))];
  for (const ratio of RATIOS) {
    const columns: Partial<Record<Column, number>> = {};
    for (const w of [...WORKLOADS, 'mix'] as Column[]) {
      const perRound: number[] = [];
      for (const round of rounds) {
        const of = measured.find((r) => r.round === round && r.workload === w && r.variant === ratio.of);
        const over = measured.find((r) => r.round === round && r.workload === w && r.variant === ratio.over);
        if (of && over && over.rps > 0) perRound.push(of.rps / over.rps);
      }
      if (perRound.length > 0) columns[w] = median(perRound);
    }
    ratios[ratio.name] = columns;
  }
  return { medians, ratios };
}

/**
 * What the counters must be: they are deterministic (sequential requests, a warm C and E, a D that
 * always misses), so any change here is a change in what a request costs, and the quick mode fails.
 * Per request: SQL statements and store round trips.
 */
const EXPECTED: Partial<Record<VariantName, Partial<Record<WorkloadName, { sql: number; roundTrips: number }>>>> = {
  // N+1: the root, then one statement per parent for profile and posts (and per post for author).
  A: { users20: { sql: 41, roundTrips: 0 }, userPage: { sql: 101, roundTrips: 0 }, zipf: { sql: 3, roundTrips: 0 } },
  // One statement per DataLoader batch: user, profile, post ids, posts (+ the page query).
  B: { users20: { sql: 4, roundTrips: 0 }, userPage: { sql: 5, roundTrips: 0 }, zipf: { sql: 4, roundTrips: 0 } },
  // Warm: one MGET per batch and no SQL; a page's id range is always read from PostgreSQL.
  C: { users20: { sql: 0, roundTrips: 4 }, userPage: { sql: 1, roundTrips: 4 }, zipf: { sql: 0, roundTrips: 4 } },
  // Every batch misses: MGET, lock, re-read, SQL, fill, release — 5 round trips and 1 statement.
  D: { users20: { sql: 4, roundTrips: 20 }, userPage: { sql: 5, roundTrips: 20 }, zipf: { sql: 4, roundTrips: 20 } },
  E: { users20: { sql: 0, roundTrips: 0 }, userPage: { sql: 0, roundTrips: 0 }, zipf: { sql: 0, roundTrips: 0 } },
  S: { users20: { sql: 0, roundTrips: 0 }, userPage: { sql: 0, roundTrips: 0 }, zipf: { sql: 0, roundTrips: 0 } },
};

export function checkCounters(rows: readonly CounterRow[]): string[] {
  const problems: string[] = [];
  for (const row of rows) {
    const at = `${row.variant} ${row.workload}`;
    const want = EXPECTED[row.variant]?.[row.workload];
    if (row.mismatches > 0) problems.push(`${at}: ${row.mismatches} answers differ from B's`);
    if (want !== undefined) {
      if (row.sqlPerRequest !== want.sql) {
        problems.push(`${at}: ${row.sqlPerRequest} SQL statements per request, expected ${want.sql} (${JSON.stringify(row.sqlByQuery)})`);
      }
      if (row.roundTripsPerRequest !== want.roundTrips) {
        problems.push(`${at}: ${row.roundTripsPerRequest} store round trips per request, expected ${want.roundTrips} (${JSON.stringify(row.storeCalls)})`);
      }
    }
    if (row.debug !== undefined) {
      if (row.debug.sqlPerRequest !== row.sqlPerRequest) {
        problems.push(`${at}: x-cache-debug reports ${row.debug.sqlPerRequest} SQL statements per request, the server counted ${row.sqlPerRequest}`);
      }
      if (row.debug.roundTripsPerRequest !== row.roundTripsPerRequest) {
        problems.push(`${at}: x-cache-debug reports ${row.debug.roundTripsPerRequest} round trips per request, the store counted ${row.roundTripsPerRequest}`);
      }
    }
  }
  const bytes = new Map<WorkloadName, Set<string>>();
  for (const row of rows) (bytes.get(row.workload) ?? bytes.set(row.workload, new Set()).get(row.workload)!).add(row.bytesPerResponse.toFixed(1));
  for (const [w, sizes] of bytes) if (sizes.size > 1) problems.push(`${w}: response sizes differ between variants (${[...sizes].join(', ')})`);
  return problems;
}

export function renderMarkdown(results: BenchResults): string {
  const { medians, ratios } = summarize(results.runs);
  const s = results.settings;
  const out: string[] = [];
  const cols = WORKLOADS.map((w) => WORKLOAD_TITLES[w]);
  out.push('# Benchmark results');
  out.push('');
  out.push(
    `Generated by \`npm run bench\` on ${results.date.slice(0, 16).replace('T', ' ')} UTC — ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}. ` +
      `${s.users} users × ${s.postsPerUser} posts on PostgreSQL and Redis on this machine; ${s.connections} connections, no pipelining; ` +
      `warm-up ${s.warmupSec} s per variant and workload, then ${s.rounds} interleaved rounds of ${s.durationSec} s each; ` +
      `every response checked. Whole run: ${Math.round(results.wallSeconds)} s. What the variants are and how to read this: [README.md](README.md).`,
  );
  const load = results.machine.loadAverage;
  if (load !== undefined) {
    out.push('');
    out.push(
      `1-minute load average ${load.atStart.toFixed(1)} when the run started (before its own processes) and ${load.atEnd.toFixed(1)} at its end (its own included), on ${results.machine.cpus} cores` +
        (load.atStart >= 1
          ? ': other work was running on the machine, so absolute figures are low and the ratios noisier than on a quiet one.'
          : '.'),
    );
  }
  out.push('');
  out.push('## Ratios (throughput, median of per-round ratios)');
  out.push('');
  out.push(`| ratio | ${cols.join(' | ')} | ${WORKLOAD_TITLES.mix} | target |`);
  out.push(`|---|${cols.map(() => '---:').join('|')}|---:|---|`);
  for (const ratio of RATIOS) {
    const row = ratios[ratio.name] ?? {};
    const target = ratio.target === undefined ? '—' : `≥ ${ratio.target}`;
    const cells = WORKLOADS.map((w) => cell(row[w], ratio.target));
    out.push(`| ${ratio.name} | ${cells.join(' | ')} | ${ratio.name === 'C/E' ? cell(row.mix, undefined) : '—'} | ${target} |`);
  }
  out.push('');
  out.push('✗ marks a ratio below its target. S/A and S/B are ceilings: S is the framework with no data access at all, so C/A ≤ S/A and C/B ≤ S/B.');
  out.push('');

  out.push('## Throughput and latency (median over rounds)');
  out.push('');
  out.push('| workload | variant | req/s | p50 ms | p99 ms | server CPU | load-gen CPU | machine CPU | SQL/req | round trips/req | responses checked | bad |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const w of [...WORKLOADS, 'mix'] as Column[]) {
    for (const v of ['A', 'B', 'C', 'D', 'E', 'S'] as VariantName[]) {
      const m = medians[v]?.[w];
      if (m === undefined) continue;
      out.push(
        `| ${WORKLOAD_TITLES[w]} | ${v} | ${m.rps.toFixed(0)} | ${m.p50Ms.toFixed(0)} | ${m.p99Ms.toFixed(0)} | ${m.serverCpuPct.toFixed(0)} % | ${m.loadCpuPct.toFixed(0)} % | ${m.machineCpuPct === undefined ? '—' : `${m.machineCpuPct.toFixed(0)} %`} | ${dec(m.sqlPerRequest)} | ${dec(m.roundTripsPerRequest)} | ${m.requests} | ${m.bad} |`,
      );
    }
  }
  out.push('');
  out.push(
    'CPU: server and load generator in % of one core; machine in % of all cores (PostgreSQL, Redis and anything else running included). ' +
      'SQL/req and round trips/req: counted in the server during the runs (medians); under load concurrent requests share in-process flights, so D can sit below its sequential counters.',
  );
  const breakerRuns = results.runs.filter((r) => r.round > 0 && (r.breakerOpened ?? 0) > 0);
  if (breakerRuns.length > 0) {
    out.push('');
    out.push(`The cache circuit breaker opened during ${breakerRuns.length} measured run(s): ${breakerRuns.map((r) => `${r.variant} ${r.workload} round ${r.round}`).join(', ')}.`);
  }
  out.push('');

  out.push('## 95/5 read/write mix: stale answers');
  out.push('');
  out.push('| variant | req/s | p99 ms | reads | writes | stale reads |');
  out.push('|---|---:|---:|---:|---:|---:|');
  for (const v of ['C', 'E'] as VariantName[]) {
    const m = medians[v]?.mix;
    if (m === undefined) continue;
    out.push(`| ${v} | ${m.rps.toFixed(0)} | ${m.p99Ms.toFixed(0)} | ${m.reads} | ${m.writes} | ${m.stale} |`);
  }
  out.push('');
  out.push(
    'A read is stale when it shows a profile version older than one a write had already returned before the read was sent (counted over all measured rounds).',
  );
  const mc = results.mixCounters;
  if (mc.C && mc.E) {
    out.push(
      `Read, write, read the same user, one request at a time: C's write ran ${plural(mc.C.write.sql, 'SQL statement')} and ${plural(mc.C.write.roundTrips, 'store round trip')}; the read after it answered version ${mc.C.readAfterWrite.version} (written: ${mc.C.readAfterWrite.expectedVersion}) with ${plural(mc.C.readAfterWrite.sql, 'SQL statement')}. ` +
        `E, asked the same (read, write, read): the read after the write answered version ${mc.E.readAfterWrite.version} (written: ${mc.E.readAfterWrite.expectedVersion}).`,
    );
  }
  out.push('');

  out.push('## Counters per request (deterministic: sequential requests, warm C and E)');
  out.push('');
  out.push('| workload | variant | SQL statements | Redis round trips | response bytes |');
  out.push('|---|---|---:|---:|---:|');
  for (const row of results.counters) {
    out.push(
      `| ${WORKLOAD_TITLES[row.workload]} | ${row.variant} | ${num(row.sqlPerRequest)} | ${num(row.roundTripsPerRequest)} | ${row.bytesPerResponse.toFixed(0)} |`,
    );
  }
  out.push('');
  out.push(
    results.counterProblems.length === 0
      ? 'Every counter is as expected, and the app\'s own `x-cache-debug: 1` accounting agrees with the counts taken in the servers.'
      : `Counter problems:\n\n${results.counterProblems.map((p) => `- ${p}`).join('\n')}`,
  );
  out.push('');

  out.push(`## Stampede: ${results.stampede[0]?.requests ?? 0} concurrent requests for one cold user over two instances`);
  out.push('');
  out.push('| configuration | SQL loads of the user | SQL loads of its profile | p50 ms | p99 ms | max ms | breaker opened | store calls refused | bad |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of results.stampede) {
    out.push(
      `| ${row.config} | ${row.userLoads} | ${row.profileLoads} | ${row.p50Ms.toFixed(0)} | ${row.p99Ms.toFixed(0)} | ${row.maxMs.toFixed(0)} | ${row.breakerOpened} | ${row.shortCircuited} | ${row.bad} |`,
    );
  }
  out.push('');
  return `${out.join('\n')}\n`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function cell(value: number | undefined, target: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '—';
  const text = value >= 10 ? value.toFixed(1) : value.toFixed(2);
  return target !== undefined && value < target ? `${text} ✗` : text;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function dec(value: number): string {
  return Number.isNaN(value) ? '—' : value.toFixed(value >= 10 ? 0 : 1);
}

function num(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
