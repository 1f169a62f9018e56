/**
 * What the cache did for one request: every entity lookup (after DataLoader de-duplication) is
 * recorded here by the read path, and the headers plugin turns the tally into `X-Cache`,
 * `Cache-Status` and the debug extension.
 */

export type LookupOutcome =
  /** Served from the cache. */
  | 'hit'
  /** Served from a negative entry: the id is known not to exist. Counts as a hit. */
  | 'negative_hit'
  /** Loaded from PostgreSQL by this request. */
  | 'miss'
  /** Waited for another caller's fill (its lock), then read the fill. Counts as a miss. */
  | 'collapsed'
  /** Past its logical TTL, served because PostgreSQL is unavailable. Counts as a hit. */
  | 'stale'
  /** The store was unavailable; loaded from PostgreSQL without it. */
  | 'bypass';

export interface LookupRecord {
  readonly entity: string;
  readonly key: string;
  readonly tier: string;
  readonly outcome: LookupOutcome;
  /** Remaining logical TTL in ms when the value came from the cache (negative when stale). */
  readonly ttlMs: number | undefined;
}

export class CacheReport {
  readonly lookups: LookupRecord[] = [];
  /** Fills and write-throughs this request stored. */
  stored = 0;
  /** Negative entries (unknown ids) this request filled: bounded per request by the read path. */
  negativeFills = 0;
  /** The in-process tier's name once the read path consulted it (L1 on); Cache-Status then lists it. */
  l1Tier: string | undefined = undefined;

  record(record: LookupRecord): void {
    this.lookups.push(record);
  }

  get hits(): number {
    return this.count('hit') + this.count('negative_hit') + this.count('stale');
  }

  get misses(): number {
    return this.count('miss') + this.count('collapsed');
  }

  get bypassed(): number {
    return this.count('bypass');
  }

  count(outcome: LookupOutcome): number {
    let n = 0;
    for (const l of this.lookups) if (l.outcome === outcome) n += 1;
    return n;
  }
}
