/**
 * The small vocabulary shared by the two halves of the read path (cache-aside.ts: hits and
 * in-process flights; miss-resolver.ts: locks, loads and fills) and the L1 tier: what a resolved
 * key is, what a miss carries, and which entries may be served.
 */
import type { LookupOutcome } from '../../observability/cache-report.js';
import type { Logger } from '../../observability/logger.js';
import type { EntitySpec } from '../entities/entity-spec.js';
import type { CacheEntry } from '../store/contract.js';

/** A resolved key: its value (or the error that stands for it), how it was obtained, its remaining logical TTL. */
export interface Resolution<T> {
  readonly value: T | null;
  readonly outcome: LookupOutcome;
  readonly ttlMs: number | undefined;
  /** Set when the key could not be answered (PostgreSQL down and nothing stale to serve). */
  readonly error?: Error;
  /** The tier that answered, when not the store (the in-process L1). */
  readonly tier?: string;
  /**
   * When the read that produced the value was issued, on the instance's read clock (cache-aside's
   * `tick`): a load from PostgreSQL, or a re-read of the store. Another request may take this result
   * only if it was already waiting then (cache-aside.ts, joined flights), or if it was waiting when
   * the fill of this value was sent and that fill landed (`filledAt`). Unset: not shareable.
   */
  readonly readAt?: number;
  /** When the fill that stored this value under its grant was sent (read clock); unset if none landed. */
  readonly filledAt?: number;
}

export interface Miss {
  readonly id: number;
  readonly key: string;
  /** A logically expired entry still held within the grace period: served if PostgreSQL is down. */
  readonly stale: CacheEntry | undefined;
  /** When the lookup that found `stale` was issued (read clock). */
  readonly staleReadAt?: number;
}

/** A servable entry's value, or `undefined` if the entry must be treated as a miss. */
export function decodeEntry<T>(
  spec: EntitySpec<T>,
  entry: CacheEntry,
  logger: Logger,
): { value: T | null } | undefined {
  if (entry.kind === 'negative') return { value: null };
  if (entry.kind !== 'value') return undefined;
  try {
    return { value: spec.codec.decode(entry.payload) };
  } catch (error) {
    // A value this code cannot read (corrupt, or written by an incompatible build) is a miss: the
    // fill that follows replaces it.
    logger.warn({ err: error, entity: spec.entity }, 'undecodable cache entry treated as a miss');
    return undefined;
  }
}

/** The value of an entry that is servable and not past its logical expiry at `at`. */
export function freshValue<T>(
  spec: EntitySpec<T>,
  entry: CacheEntry | undefined,
  at: number,
  logger: Logger,
): { value: T | null } | undefined {
  if (entry === undefined || entry.staleAt <= at) return undefined;
  return decodeEntry(spec, entry, logger);
}
