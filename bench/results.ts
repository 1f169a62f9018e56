/**
 * The shape of a run as bench/results/*.json keeps it. RESULTS.md is rendered from this alone
 * (`--render`), so everything the tables show has to be here, and a change to a field is a change
 * to every saved run.
 */
import type { StoreCalls } from './variants.js';
import type { VariantName } from './variant-names.js';
import type { WorkloadName } from './workloads.js';

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
  /** Answers that differed from the reference ones. */
  readonly mismatches: number;
  /** Stale entries the consistency monitor of the variant's server had found by then (must be 0). */
  readonly violations?: number;
  /** The same, as the app itself reports it with `x-cache-debug: 1`. */
  debug?: { sqlPerRequest: number; roundTripsPerRequest: number };
}

/** One write then one read of the same user, one request at a time, on a caching variant. */
export interface MixCounter {
  readonly write: { sql: number; roundTrips: number };
  readonly readAfterWrite: { sql: number; roundTrips: number; version: number; expectedVersion: number };
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

export interface BenchSettings {
  readonly rounds: number;
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly connections: number;
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
  readonly settings: BenchSettings & { users: number; postsPerUser: number };
  readonly runs: readonly RunRecord[];
  readonly counters: readonly CounterRow[];
  /** By variant name (the caching ones). */
  readonly mixCounters: Partial<Record<VariantName, MixCounter>>;
  readonly stampede: readonly StampedeRow[];
  readonly counterProblems: readonly string[];
  readonly wallSeconds: number;
}
