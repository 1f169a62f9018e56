/**
 * The consistency monitor's check of stored answers (the response tier, src/cache/response/): an
 * answer the store vouches for now (`getDependent` finds every dependency at the kind and version it
 * names) is compared, dependency by dependency, with PostgreSQL's rows. One that read a version older
 * than its row (or "no such id" for a row that exists, or a value for a row that is gone) is a
 * suspect; if, `graceMs` later, the store still vouches for an answer under that key that names the
 * same old version, that is a violation (`entity="response"`): an answer served older than a
 * committed row.
 *
 * Why a separate check when every dependency is an entity key the entity check samples too: the
 * answer is served on the store's check of its dependencies, not on the entity entries themselves —
 * on a single Redis, mostly on the write stamp alone (src/cache/store/redis/write-stamp.ts) — so a
 * fault in that check would serve old answers over entries that are all current, and only this check
 * can see it. It reads what requests read: the store through the breaker, not L1 (answers kept in
 * process have L1's documented window).
 *
 * Cost: one `getDependent` per sampled answer, and one SQL statement per kind of entity they read
 * (at most five per interval, for all the answers of the sample together).
 */
import type { Logger } from '../../observability/logger.js';
import type { CachedEntity, CacheKeys } from '../entities/keys.js';
import type { CacheStore, Dependency } from '../store/contract.js';

export interface AnswerCheckDeps {
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly logger: Logger;
  readonly graceMs: number;
  readonly now: () => number;
  /** PostgreSQL's versions of the rows behind entity keys, by key (absent: no row). */
  readonly currentVersions: (
    parsed: readonly { entity: CachedEntity; id: number }[],
  ) => Promise<Map<string, number>>;
  /** An answer was compared with PostgreSQL (for `cacheside_consistency_checks_total{entity="response"}`). */
  readonly onCheck: () => void;
  readonly onViolation: (violation: AnswerViolation) => void;
}

export interface AnswerViolation {
  readonly entity: 'response';
  /** The stored answer's key. */
  readonly key: string;
  /** The first dependency still behind its row, the version the answer read (0: "no such id"), and the row's a grace earlier (undefined: gone). */
  readonly dependency: string;
  readonly cachedVersion: number;
  readonly currentVersion: number | undefined;
}

export interface AnswerCheck {
  /** Checks the answers among `sample` and re-checks the suspects whose grace has passed. */
  check(sample: readonly string[]): Promise<void>;
  readonly suspects: number;
}

interface AnswerSuspect {
  /** The dependencies found behind their rows, with PostgreSQL's versions then (undefined: no row). */
  readonly behind: ReadonlyMap<string, number | undefined>;
  readonly since: number;
}

export function createAnswerCheck(deps: AnswerCheckDeps): AnswerCheck {
  const { store, keys, logger, graceMs, now } = deps;
  const suspects = new Map<string, AnswerSuspect>();

  /** The dependencies of the answer the store vouches for under `key` now, or undefined. */
  async function servedDependencies(key: string): Promise<readonly Dependency[] | undefined> {
    const read = await store.getDependent(key, now());
    return read.status === 'current' ? read.listDependencies() : undefined;
  }

  async function recheck(key: string, suspect: AnswerSuspect): Promise<void> {
    const served = await servedDependencies(key);
    // Forgotten only once checked: a store failing above keeps the suspect for the next round.
    suspects.delete(key);
    const still = served?.find(
      (dependency) =>
        suspect.behind.has(dependency.key) && isBehind(dependency, suspect.behind.get(dependency.key)),
    );
    if (still === undefined) return;
    const violation: AnswerViolation = {
      entity: 'response',
      key,
      dependency: still.key,
      cachedVersion: still.kind === 'negative' ? 0 : still.version,
      currentVersion: suspect.behind.get(still.key),
    };
    logger.warn(
      violation,
      'consistency violation: the cache serves an answer that read a version older than a committed one',
    );
    deps.onViolation(violation);
  }

  /**
   * The sampled answers the store vouches for, against PostgreSQL: one `getDependent` each, then one
   * statement per kind of entity for all of them together.
   */
  async function sample(answerKeys: readonly string[]): Promise<void> {
    const served: { key: string; named: { dependency: Dependency; entity: CachedEntity; id: number }[] }[] =
      [];
    for (const key of answerKeys) {
      const dependencies = await servedDependencies(key);
      if (dependencies === undefined) continue;
      const named = dependencies.flatMap((dependency) => {
        const parsed = keys.parse(dependency.key);
        return parsed === undefined ? [] : [{ dependency, ...parsed }];
      });
      served.push({ key, named });
    }
    if (served.length === 0) return;
    const current = await deps.currentVersions(served.flatMap(({ named }) => named));
    for (const { key, named } of served) {
      deps.onCheck();
      const behind = new Map<string, number | undefined>();
      for (const { dependency } of named) {
        const version = current.get(dependency.key);
        if (isBehind(dependency, version)) behind.set(dependency.key, version);
      }
      if (behind.size > 0) suspects.set(key, { behind, since: now() });
    }
  }

  return {
    async check(keysSampled) {
      const due = [...suspects].filter(([, s]) => now() - s.since >= graceMs);
      for (const [key, suspect] of due) await recheck(key, suspect);
      await sample(keysSampled.filter((key) => keys.isResponse(key) && !suspects.has(key)));
    },
    get suspects() {
      return suspects.size;
    },
  };
}

// Private:

/** Whether a dependency names less than PostgreSQL's row (`current`, undefined: no row) has. */
function isBehind(dependency: Dependency, current: number | undefined): boolean {
  return isBehindRow(dependency.kind === 'negative', dependency.version, current);
}

/**
 * Whether what the cache serves is behind PostgreSQL's row (`current`, undefined: no row): "no such
 * id" once the row exists, a value once the row is newer, or gone. The entity check's rule too.
 */
export function isBehindRow(negative: boolean, version: number, current: number | undefined): boolean {
  return negative ? current !== undefined : current === undefined || version < current;
}
