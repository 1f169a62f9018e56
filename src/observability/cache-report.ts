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
  /**
   * The version of the answer (the value's, 0 for "no such id"), `undefined` when the key could not
   * be answered: what the response tier names as the response's dependency on this key.
   */
  readonly version: number | undefined;
  /** True when the answer was "no such id" (a negative entry, or no row). */
  readonly absent: boolean;
  /**
   * True when the answer is what the store held (a hit, a re-read) or what a fill stored or renewed
   * (the store held that version already): false for a load whose fill did not land (fenced,
   * revoked — it lost a race with a write — or never sent),
   * an answer the response tier does not store, since the store does not hold what it read.
   */
  readonly cached: boolean;
}

/** What the response tier did for the request (src/cache/response/response-tier.ts). */
export type ResponseOutcome =
  /**
   * Served a stored response: no execution. `checked`: what vouched for it — the store (one round
   * trip), or L1's events for a copy kept in process (none).
   */
  | { readonly outcome: 'hit'; readonly dependencies: number; readonly checked: 'store' | 'l1' }
  /** Executed: nothing stored under the key, or a dependency had changed (`failed`). */
  | {
      readonly outcome: 'miss';
      readonly failed?: string;
      readonly stored: boolean;
      readonly skipped?: string;
    };

export class CacheReport {
  readonly lookups: LookupRecord[] = [];
  /** Fills and write-throughs this request stored (a fill that renewed the version held counts). */
  stored = 0;
  /** Negative entries (unknown ids) this request filled: bounded per request by the read path. */
  negativeFills = 0;
  /** The in-process tier's name once the read path consulted it (L1 on); Cache-Status then lists it. */
  l1Tier: string | undefined = undefined;
  /**
   * Set by the response tier before it executes an answer it may store: a page of users then reads
   * the user directory's version first, which the answer depends on (src/cache/read/page-reader.ts).
   */
  pagesNeedDirectory = false;
  /** Pages of user ids this request read from PostgreSQL (userPage), itself or by joining a load. */
  pageReads = 0;
  /** Pages of user ids the store vouched for (src/cache/read/page-reader.ts): no SQL. */
  pageHits = 0;
  /** Pages of user ids this request stored: bounded per request by the page reader. */
  pageFills = 0;
  /** Set when the response tier was consulted. */
  response: ResponseOutcome | undefined = undefined;

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
