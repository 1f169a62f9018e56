/**
 * From raw runs to the figures RESULTS.md shows: medians per variant and workload, and ratios as
 * medians of per-round ratios, so that a disturbance hitting a whole round cancels out.
 */
import type { RunRecord } from './results.js';
import type { VariantName } from './variant-names.js';
import { WORKLOADS, type WorkloadName } from './workloads.js';

export interface Ratio {
  /** `of/over`, e.g. `cacheside/dataloader`: how the tables, the logs and README.md name it. */
  readonly name: string;
  readonly of: VariantName;
  readonly over: VariantName;
  readonly target: number | undefined;
  readonly meaning: string;
  /** Also shown for the read/write mix (only the caching variants run it). */
  readonly mix?: boolean;
}

export function ratioName(of: VariantName, over: VariantName): string {
  return `${of}/${over}`;
}

const ratio = (
  of: VariantName,
  over: VariantName,
  target: number | undefined,
  meaning: string,
  mix = false,
): Ratio => ({
  name: ratioName(of, over),
  of,
  over,
  target,
  meaning,
  mix,
});

export const RATIOS: readonly Ratio[] = [
  ratio('cacheside', 'naive', 10, 'cacheside vs naive N+1 resolvers'),
  ratio('cacheside', 'dataloader', 2, 'cacheside (warm) vs DataLoaders alone'),
  ratio('always-miss', 'dataloader', 0.85, 'cacheside on the miss path vs DataLoaders alone'),
  ratio('cacheside', 'static', 0.8, 'cacheside (warm) vs static in-memory resolvers'),
  ratio('cacheside', 'response-cache', undefined, 'cacheside (warm) vs whole-response cache (warm)', true),
  ratio(
    'response-tier',
    'static',
    1,
    'cacheside with the response tier (warm) vs static in-memory resolvers',
  ),
  ratio(
    'response-tier',
    'response-cache',
    1,
    'the response tier vs a whole-response cache that serves stale answers',
    true,
  ),
  // Ceilings: no data layer can beat static, so cacheside/naive is at most static/naive, and so on.
  ratio('static', 'naive', undefined, 'the ceiling of cacheside/naive'),
  ratio('static', 'dataloader', undefined, 'the ceiling of cacheside/dataloader'),
];

export type Column = WorkloadName | 'mix';
export const COLUMNS: readonly Column[] = [...WORKLOADS, 'mix'];

export interface Summary {
  /** Median over rounds of each variant's figures, per workload. */
  readonly medians: Partial<Record<VariantName, Partial<Record<Column, Medians>>>>;
  /** Median over rounds of the per-round ratio, per workload, by ratio name. */
  readonly ratios: Record<string, Partial<Record<Column, number>>>;
  /**
   * The same ratios of server CPU per request (`of` ÷ `over`: below 1, `of` spends less CPU on a
   * request). It holds on a busy machine, where req/s swings with whatever else runs.
   */
  readonly cpuRatios: Record<string, Partial<Record<Column, number>>>;
}

/**
 * Server CPU per request in µs: the server's CPU share of one core over the run, divided by the
 * requests it answered per second (so it needs no field that older saved runs lack).
 */
export function cpuUsPerRequest(run: Pick<RunRecord, 'serverCpuPct' | 'rps'>): number {
  return run.rps > 0 ? ((run.serverCpuPct / 100) * 1e6) / run.rps : Number.NaN;
}

export interface Medians {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuPct: number;
  /** Server CPU per request, µs (`cpuUsPerRequest`). */
  serverCpuUsPerRequest: number;
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
      serverCpuUsPerRequest: median(same.map(cpuUsPerRequest)),
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

  const rounds = [...new Set(measured.map((r) => r.round))];
  /** Median over rounds of figure(of) / figure(over), per column, for every ratio. */
  const perRoundRatios = (figure: (run: RunRecord) => number) => {
    const table: Record<string, Partial<Record<Column, number>>> = {};
    for (const ratio of RATIOS) {
      const columns: Partial<Record<Column, number>> = {};
      for (const w of COLUMNS) {
        const perRound: number[] = [];
        for (const round of rounds) {
          const of = measured.find((r) => r.round === round && r.workload === w && r.variant === ratio.of);
          const over = measured.find(
            (r) => r.round === round && r.workload === w && r.variant === ratio.over,
          );
          const value = of && over ? figure(of) / figure(over) : Number.NaN;
          if (Number.isFinite(value)) perRound.push(value);
        }
        if (perRound.length > 0) columns[w] = median(perRound);
      }
      table[ratio.name] = columns;
    }
    return table;
  };
  return { medians, ratios: perRoundRatios((r) => r.rps), cpuRatios: perRoundRatios(cpuUsPerRequest) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
