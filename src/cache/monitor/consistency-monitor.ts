/**
 * A consistency monitor in the manner of Meta's Polaris: in the background, each instance samples
 * cached entries and compares their versions with PostgreSQL's. An entry the cache would serve that
 * is older than its row is a *suspect*; if, `graceMs` later, the cache still serves a version older
 * than the one PostgreSQL had then, that is a **violation** — a stale value that no relay and no
 * write-through repaired in time: counted in `cacheside_consistency_violations_total{entity}` and
 * logged with the key and both versions. Every test and benchmark run expects 0.
 *
 * The grace is what separates a bug from the documented windows: a write made by plain SQL reaches
 * the cache within the relay's interval; a mutation's own write is visible before it returns. The
 * monitor reads through the same breaker as requests (it skips a round while the circuit is open:
 * the cache is not being served then) but not through L1 (whose window is documented apart), and
 * it has repositories of its own (no request's counters, no test's hooks).
 *
 * Pages of user ids (src/cache/read/page-reader.ts) have no version of their own: a sampled page the
 * store vouches for (`getDependent`: its directory version is current) is compared with the range
 * PostgreSQL holds, and is a suspect when it names other ids; a violation when, `graceMs` later, the
 * store still vouches for those ids and PostgreSQL's range differs from them then too (an insert or
 * delete whose directory bump never reached the cache: a write that fired no trigger, and no purge).
 *
 * Stored answers (the response tier) are checked too, dependency by dependency (answer-check.ts).
 *
 * Sampling walks the namespace with SCAN, a few keys from each batch, one batch per interval; a full
 * walk of a large cache takes long, and that is the point: the cost is one multi-get and one SQL
 * statement per entity and interval (and one checked read and one range scan per sampled page),
 * whatever the size of the cache.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../observability/logger.js';
import type { UserPageIds, UserPageKey } from '../../db/repositories.js';
import { USER_DIRECTORY_ID, type CachedEntity, type CacheKeys } from '../entities/keys.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import { decodePage } from '../entities/page-codec.js';
import { createAnswerCheck, isBehindRow, type AnswerViolation } from './answer-check.js';
import type { EntitySpecs } from '../entities/specs.js';
import type { CacheEntry, CacheStore } from '../store/contract.js';

export interface ConsistencyMonitorOptions {
  /** The store as requests see it (breaker, no L1). */
  readonly store: CacheStore;
  /** Entity specs over repositories of the monitor's own. */
  readonly specs: EntitySpecs;
  /** A page of user ids from PostgreSQL, through the monitor's own repositories. */
  readonly loadPage: (page: UserPageKey) => Promise<UserPageIds>;
  readonly keys: CacheKeys;
  readonly logger: Logger;
  /** Pause between samples, ms (CONSISTENCY_SAMPLE_INTERVAL_MS). */
  readonly intervalMs: number;
  /** How long a suspect may stay stale before it is a violation, ms (CONSISTENCY_GRACE_MS). */
  readonly graceMs: number;
  /** Keys checked per sample. @default 8 */
  readonly samplesPerRound?: number;
  readonly onCheck?: (entity: CachedEntity | 'userPage' | 'response', count: number) => void;
  readonly onViolation?: (violation: Violation) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

export type Violation =
  | {
      readonly entity: CachedEntity;
      readonly key: string;
      /** The version the cache still serves (0: "no such row"). */
      readonly cachedVersion: number;
      /** The version PostgreSQL had `graceMs` earlier (undefined: the row was gone). */
      readonly currentVersion: number | undefined;
    }
  | {
      readonly entity: 'userPage';
      readonly key: string;
      /** The ids the store still vouches for, and PostgreSQL's range `graceMs` earlier and now. */
      readonly cachedIds: readonly number[];
      readonly currentIds: readonly number[];
    }
  | AnswerViolation;

export interface ConsistencyMonitor {
  start(): void;
  /** Stops sampling; resolves once the round in progress has ended. */
  stop(): Promise<void>;
  /** Checks these keys now, and re-checks the suspects whose grace has passed (tests drive it). */
  check(keys: readonly string[]): Promise<void>;
  /** Violations found since the start. */
  readonly violations: number;
  /** Suspects waiting for their grace to pass. */
  readonly suspects: number;
}

interface Suspect {
  readonly entity: CachedEntity;
  readonly id: number;
  readonly cachedVersion: number;
  readonly currentVersion: number | undefined;
  readonly since: number;
}

interface PageSuspect {
  readonly page: UserPageKey;
  /** The page the store vouched for when it was suspected (`textOf`). */
  readonly cached: string;
  /** The version the user directory was served at just before. */
  readonly directory: number;
  readonly since: number;
}

export function createConsistencyMonitor(options: ConsistencyMonitorOptions): ConsistencyMonitor {
  const { store, specs, keys, logger, intervalMs, graceMs } = options;
  const samplesPerRound = options.samplesPerRound ?? 8;
  const now = options.now ?? Date.now;
  const suspects = new Map<string, Suspect>();
  const pageSuspects = new Map<string, PageSuspect>();
  const directoryKey = keys.entity('userDirectory', USER_DIRECTORY_ID);
  let violations = 0;
  let running = false;
  let loop: Promise<void> | undefined;
  let stopping = new AbortController();
  /** Sleeps `intervalMs`, or less when stopped; never keeps the process alive. */
  const pause = () => sleep(intervalMs, undefined, { ref: false, signal: stopping.signal }).catch(() => {});

  /** The version an entry would be served at, or undefined when it would not be served. */
  const servedVersion = (entry: CacheEntry | undefined, at: number) =>
    entry !== undefined && entry.kind !== 'tombstone' && entry.staleAt > at ? entry.version : undefined;

  // Per entity, so that each spec's rows and versions keep their own types.
  const versionsOf: Record<CachedEntity, (ids: readonly number[]) => Promise<Map<number, number>>> = {
    user: (ids) => rowVersions(specs.user, ids),
    profile: (ids) => rowVersions(specs.profile, ids),
    post: (ids) => rowVersions(specs.post, ids),
    userPosts: (ids) => rowVersions(specs.userPosts, ids),
    userDirectory: (ids) => rowVersions(specs.userDirectory, ids),
  };

  /** Current versions of the rows behind the keys, from PostgreSQL, by key (absent: no row). */
  async function currentVersions(parsed: readonly { entity: CachedEntity; id: number }[]) {
    // A set per entity: several sampled answers may have read one key.
    const byEntity = new Map<CachedEntity, Set<number>>();
    for (const { entity, id } of parsed) {
      const ids = byEntity.get(entity) ?? new Set<number>();
      byEntity.set(entity, ids.add(id));
    }
    const versions = new Map<string, number>();
    for (const [entity, ids] of byEntity) {
      const found = await versionsOf[entity]([...ids]);
      for (const [id, version] of found) versions.set(keys.entity(entity, id), version);
    }
    return versions;
  }

  const answers = createAnswerCheck({
    store,
    keys,
    logger,
    graceMs,
    now,
    currentVersions,
    onCheck: () => options.onCheck?.('response', 1),
    onViolation(violation) {
      violations += 1;
      options.onViolation?.(violation);
    },
  });

  /** The page the store vouches for under `key` now, or undefined when it would not be served. */
  async function servedPage(key: string, page: UserPageKey): Promise<UserPageIds | undefined> {
    const read = await store.getDependent(key, now());
    return read.status === 'current' ? decodePage(read.payload, page) : undefined;
  }

  /** The version the user directory is served at now, or undefined (absent, tombstoned, expired). */
  async function directoryVersion(): Promise<number | undefined> {
    const [entry] = await store.getMany([directoryKey]);
    return servedVersion(entry, now());
  }

  /**
   * Sampled pages against PostgreSQL's ranges, and suspects whose grace has passed, again. A suspect
   * is a violation only while the directory is still served at the version it had when the page was
   * suspected: a page vouched for under a newer one is another computation, even with the same ids —
   * an insert and its delete, both relayed, then another insert still in its relay's window, would
   * otherwise count (test/write-path/consistency-monitor.test.ts, "… recomputed under a newer
   * directory …"). Versions never go backwards, so the same version means no bump in between.
   */
  async function checkPages(sample: readonly string[]): Promise<void> {
    const due = [...pageSuspects].filter(([, s]) => now() - s.since >= graceMs);
    const sampled = sample.flatMap((key) => {
      const page = pageSuspects.has(key) ? undefined : keys.parsePage(key);
      return page === undefined ? [] : [{ key, page }];
    });
    if (due.length === 0 && sampled.length === 0) return;
    // Read before the pages: a page current at its check was computed under this version or a
    // later one.
    const directory = await directoryVersion();
    for (const [key, suspect] of due) {
      const served = directory === suspect.directory ? await servedPage(key, suspect.page) : undefined;
      // Still the suspected ids: is PostgreSQL's range still another one (not changed back meanwhile)?
      const current =
        served !== undefined && textOf(served) === suspect.cached
          ? await options.loadPage(suspect.page)
          : undefined;
      // Forgotten only once checked: a store or PostgreSQL failing above keeps the suspect for the
      // next round.
      pageSuspects.delete(key);
      if (served === undefined || current === undefined || textOf(current) === suspect.cached) continue;
      violations += 1;
      const violation = { entity: 'userPage', key, cachedIds: served.ids, currentIds: current.ids } as const;
      logger.warn(
        violation,
        'consistency violation: the cache serves a page of ids other than PostgreSQL has',
      );
      options.onViolation?.(violation);
    }
    if (directory === undefined) return;
    for (const { key, page } of sampled) {
      const served = await servedPage(key, page);
      if (served === undefined) continue;
      const current = await options.loadPage(page);
      options.onCheck?.('userPage', 1);
      if (textOf(current) !== textOf(served)) {
        pageSuspects.set(key, { page, cached: textOf(served), directory, since: now() });
      }
    }
  }

  async function check(sample: readonly string[]): Promise<void> {
    await checkEntities(sample);
    // After the entities: a page or answer check that fails leaves this round's entity sample done.
    await checkPages(sample);
    await answers.check(sample);
  }

  async function checkEntities(sample: readonly string[]): Promise<void> {
    const parsed = sample.flatMap((key) => {
      const named = keys.parse(key);
      return named && !suspects.has(key) ? [{ key, ...named }] : [];
    });
    const due = [...suspects].filter(([, s]) => now() - s.since >= graceMs).map(([key]) => key);
    if (parsed.length === 0 && due.length === 0) return;
    const entries = await store.getMany([...parsed.map((p) => p.key), ...due]);
    const at = now();

    // Re-checks: still serving something older than PostgreSQL had a grace ago?
    due.forEach((key, i) => {
      const suspect = suspects.get(key)!;
      suspects.delete(key);
      const served = servedVersion(entries[parsed.length + i], at);
      if (served === undefined) return;
      const stale =
        suspect.currentVersion === undefined
          ? served <= suspect.cachedVersion
          : served < suspect.currentVersion;
      if (!stale) return;
      violations += 1;
      const violation = {
        entity: suspect.entity,
        key,
        cachedVersion: served,
        currentVersion: suspect.currentVersion,
      };
      logger.warn(violation, 'consistency violation: the cache serves a version older than a committed one');
      options.onViolation?.(violation);
    });

    // New samples: which would be served older than their row?
    const served = parsed.filter((_, i) => servedVersion(entries[i], at) !== undefined);
    if (served.length === 0) return;
    const current = await currentVersions(served);
    const checked = new Map<CachedEntity, number>();
    for (const { entity } of served) checked.set(entity, (checked.get(entity) ?? 0) + 1);
    for (const [entity, count] of checked) options.onCheck?.(entity, count);
    for (const sample of served) {
      const cachedVersion = servedVersion(entries[parsed.indexOf(sample)], at)!;
      const currentVersion = current.get(sample.key);
      const negative = entries[parsed.indexOf(sample)]!.kind === 'negative';
      if (isBehindRow(negative, cachedVersion, currentVersion))
        suspects.set(sample.key, { ...sample, cachedVersion, currentVersion, since: at });
    }
  }

  async function run(): Promise<void> {
    while (running) {
      try {
        await store.scanKeys(keys.namespace, async (batch) => {
          if (!running) throw STOPPED;
          await check(pick(batch, samplesPerRound)).catch((error: unknown) => {
            // The store or PostgreSQL failed: no sample this round, whatever it was.
            logger.debug({ err: error }, 'consistency sample skipped');
          });
          await pause();
        });
        // An empty or fully walked namespace: the suspects still get their re-check.
        await check([]).catch(() => {});
      } catch (error) {
        if (error !== STOPPED) logger.debug({ err: error }, 'consistency walk interrupted');
      }
      if (running) await pause();
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopping = new AbortController();
      loop = run();
    },
    async stop() {
      running = false;
      stopping.abort();
      await loop;
      loop = undefined;
    },
    check,
    get violations() {
      return violations;
    },
    get suspects() {
      return suspects.size + pageSuspects.size + answers.suspects;
    },
  };
}

// Private:

const STOPPED = Symbol('stopped');

async function rowVersions<T>(spec: EntitySpec<T>, ids: readonly number[]): Promise<Map<number, number>> {
  const rows = await spec.load(ids);
  return new Map([...rows].map(([id, row]) => [id, spec.versionOf(row)]));
}

/** A page as comparable text: its ids and whether more follow. */
function textOf({ ids, hasMore }: UserPageIds): string {
  return `${hasMore ? 1 : 0}:${ids.join(',')}`;
}

/** Up to `n` distinct elements of `items`, at random. */
function pick<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  const chosen = new Set<number>();
  while (chosen.size < n) chosen.add(Math.floor(Math.random() * items.length));
  return [...chosen].map((i) => items[i]!);
}
