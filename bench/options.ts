/**
 * The command line of `npm run bench`, parsed and checked before anything starts, so that a typo in
 * a variant name fails in a second instead of after a database has been created and seeded.
 */
import { parseArgs } from 'node:util';
import type { BenchSettings } from './results.js';
import { REFERENCE, VARIANTS, type VariantName } from './variant-names.js';
import { WORKLOADS, type WorkloadName } from './workloads.js';

export type Mode = 'full' | 'quick' | 'profile' | 'render';

export interface BenchOptions {
  readonly mode: Mode;
  /** `--render FILE`: the saved run to render. */
  readonly renderFile: string | undefined;
  readonly settings: BenchSettings;
  /** Names the result files: results/<label>-<date>.json, results/profile-<label>-<date>.json. */
  readonly label: string;
  /** Write RESULTS.md and results/ (off with --no-write). */
  readonly write: boolean;
  readonly verbose: boolean;
  readonly variants: readonly VariantName[];
  readonly workloads: readonly WorkloadName[];
  /** `--profile`: the variants and workloads profiled (`--profile-variants`, `--profile-workloads`). */
  readonly profiled: {
    readonly variants: readonly VariantName[];
    readonly workloads: readonly WorkloadName[];
  };
  readonly mix: boolean;
  readonly stampede: boolean;
  /** `--cacheside-env KEY=VALUE,…`: more configuration for the variants that run the cache tier. */
  readonly cachesideEnv: Readonly<Record<string, string>>;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values: args } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      render: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      label: { type: 'string', default: 'run' },
      'no-write': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      variants: { type: 'string', default: VARIANTS.join(',') },
      workloads: { type: 'string', default: WORKLOADS.join(',') },
      'profile-variants': { type: 'string', default: 'cacheside,static' },
      'profile-workloads': { type: 'string', default: 'users20,zipf' },
      'no-mix': { type: 'boolean', default: false },
      'no-stampede': { type: 'boolean', default: false },
      'cacheside-env': { type: 'string', default: '' },
    },
  });
  return {
    mode: args.render !== undefined ? 'render' : args.profile ? 'profile' : args.quick ? 'quick' : 'full',
    renderFile: args.render,
    settings: {
      rounds: positive('rounds', args.rounds),
      durationSec: positive('duration', args.duration),
      warmupSec: positive('warmup', args.warmup),
      connections: positive('connections', args.connections),
    },
    label: args.label,
    write: !args['no-write'],
    verbose: args.verbose,
    // The reference variant is always there: it gives the answers every other one is checked against.
    variants: subset('variants', args.variants, VARIANTS, [REFERENCE]),
    workloads: subset('workloads', args.workloads, WORKLOADS, []),
    profiled: {
      variants: subset('profile-variants', args['profile-variants'], VARIANTS, []),
      workloads: subset('profile-workloads', args['profile-workloads'], WORKLOADS, []),
    },
    mix: !args['no-mix'],
    stampede: !args['no-stampede'],
    cachesideEnv: keyValues('cacheside-env', args['cacheside-env']),
  };
}

// Private:

function subset<T extends string>(name: string, value: string, all: readonly T[], always: readonly T[]): T[] {
  const wanted = new Set(
    value
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );
  for (const x of wanted)
    if (!all.includes(x as T))
      throw new Error(`--${name}: unknown ${JSON.stringify(x)}; choose from ${all.join(', ')}`);
  return all.filter((x) => wanted.has(x) || always.includes(x));
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

function keyValues(name: string, value: string): Record<string, string> {
  const pairs = value.split(',').filter(Boolean);
  return Object.fromEntries(
    pairs.map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new Error(`--${name}: expected KEY=VALUE, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}
