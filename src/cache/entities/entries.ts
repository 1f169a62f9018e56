/**
 * Builds the writes the cache stores: values, negative entries and tombstones, each with its logical
 * expiry (`staleAt`) and its physical TTL (for a value, logical + stale grace, so an expired entry
 * can still be served while PostgreSQL is down; a negative entry has no grace). TTLs get ±10 %
 * jitter so keys filled together do not expire together.
 */
import type { CacheConfig } from '../../config.js';
import type { EntitySpec } from './entity-spec.js';
import type { CacheWrite } from '../store/contract.js';

const JITTER = 0.1;
const EMPTY = new Uint8Array(0);

export interface EntryFactory {
  /** A fill or write-through of `value`, or a negative entry for `null`. */
  fill<T>(spec: EntitySpec<T>, key: string, value: T | null): CacheWrite;
  /** Marks versions below `version` as stale; lives long enough to outlast any fill in flight. */
  tombstone(key: string, version: number): CacheWrite;
  /** How long a tombstone lives, ms. */
  readonly tombstoneTtlMs: number;
  /** The shortest time that still outlasts every fill in flight (a lock's life or a waiter's wait), ms. */
  readonly inFlightMs: number;
}

export interface EntryFactoryOptions {
  readonly config: CacheConfig;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default Math.random */
  readonly random?: () => number;
}

export function createEntryFactory({
  config,
  now = Date.now,
  random = Math.random,
}: EntryFactoryOptions): EntryFactory {
  const graceMs = config.staleGraceSeconds * 1000;
  // A fill can be in flight for at most a lock's lifetime (or a lock wait, for a waiter that gave up);
  // a tombstone that outlives both fences every fill that read the row before the change.
  const inFlightMs = 2 * Math.max(config.lockTtlMs, config.lockWaitMs);
  const tombstoneMs = Math.max(60_000, inFlightMs);
  const jittered = (seconds: number) => Math.round(seconds * 1000 * (1 - JITTER + 2 * JITTER * random()));

  return {
    tombstoneTtlMs: tombstoneMs,
    inFlightMs,
    fill(spec, key, value) {
      const logicalMs = jittered(value === null ? config.negativeTtlSeconds : spec.ttlSeconds);
      const staleAt = now() + logicalMs;
      const entry =
        value === null
          ? { kind: 'negative' as const, version: 0, staleAt, payload: EMPTY }
          : {
              kind: 'value' as const,
              version: spec.versionOf(value),
              staleAt,
              payload: spec.codec.encode(value),
            };
      // A negative entry gets no stale grace: serving "no such id" past its TTL helps nobody while
      // PostgreSQL is down, and without grace an anonymous client's unknown ids leave Redis sooner.
      return { key, entry, ttlMs: value === null ? logicalMs : logicalMs + graceMs };
    },
    tombstone(key, version) {
      return {
        key,
        entry: { kind: 'tombstone', version, staleAt: now(), payload: EMPTY },
        ttlMs: tombstoneMs,
      };
    },
  };
}
