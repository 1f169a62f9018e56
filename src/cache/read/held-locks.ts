/**
 * The stampede locks one miss resolution holds: taken and released with one unique token, so only
 * this caller can release them (the store's compare-and-delete), and never released twice. A lock is
 * also the caller's grant to fill the key (`fillMany`), revoked by any write to it.
 */
import { randomUUID } from 'node:crypto';
import type { CacheEntry, CacheStore } from '../store/contract.js';

export interface HeldLocks {
  /** The grant's token: what `fillMany` must present. */
  readonly token: string;
  /** True while this caller holds the lock of `key`. */
  has(key: string): boolean;
  /**
   * Tries to take the locks of the keys not held yet and reads them in the same step (one round
   * trip): what each of those keys held right after, by key.
   */
  acquire(keys: readonly string[]): Promise<Map<string, CacheEntry | undefined>>;
  /**
   * Releases the locks of keys, which wakes their waiters. A failure is reported, not thrown: it
   * only costs the waiters a wait up to the lock's TTL, and the values were already answered.
   */
  release(keys: readonly string[]): Promise<void>;
  /** Forgets keys whose locks are gone already (a fill released them, or lost them). */
  forget(keys: readonly string[]): void;
  /** Releases whatever is still held (the `finally` of a resolution). */
  releaseAll(): Promise<void>;
}

export function createHeldLocks(
  store: CacheStore,
  lockTtlMs: number,
  onReleaseError: (error: unknown) => void,
): HeldLocks {
  const token = randomUUID();
  const held = new Set<string>();

  const release = async (keys: readonly string[]) => {
    if (keys.length === 0) return;
    for (const key of keys) held.delete(key);
    await store.releaseLocks(keys, token).catch(onReleaseError);
  };

  return {
    token,
    has: (key) => held.has(key),
    async acquire(keys) {
      const free = keys.filter((key) => !held.has(key));
      const read = new Map<string, CacheEntry | undefined>();
      if (free.length === 0) return read;
      const attempts = await store.acquireLocks(free, token, lockTtlMs);
      free.forEach((key, i) => {
        const { acquired, entry } = attempts[i]!;
        if (acquired) held.add(key);
        read.set(key, entry);
      });
      return read;
    },
    release,
    forget(keys) {
      for (const key of keys) held.delete(key);
    },
    releaseAll: () => release([...held]),
  };
}
