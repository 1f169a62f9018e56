/**
 * The L1 tier's two connections to the rest of the cache:
 *
 * - `l1Layer(store)`: the store as the read path and the write-through see it, with L1 kept in step
 *   with what they read, fill and write (L1 only ever holds what the store held or accepted a moment
 *   ago);
 * - `connectL1`: invalidation events from the other instances, and the subscriber connection coming
 *   back after a loss (events may have been missed meanwhile).
 */
import type { InvalidationSubscriber } from '../events/invalidation-subscriber.js';
import type { CacheKeys } from '../entities/keys.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';
import { forwardStore } from '../store/layers/forward.js';
import type { L1Tier } from './l1-tier.js';

/**
 * Keeps `l1` coherent with the other instances: invalidation events evict (and fence) older entries;
 * the subscriber connection coming back (events may have been missed meanwhile) clears it. Returns a
 * function that disconnects it.
 */
export function connectL1(
  l1: L1Tier,
  deps: {
    readonly invalidations: InvalidationSubscriber;
    /** The store whose subscriber connection carries the events; its layers forward `onReconnect`. */
    readonly store: CacheStore;
    readonly keys: CacheKeys;
  },
): () => void {
  const offEvents = deps.invalidations.onEvents(({ events, all }) => {
    if (all) return l1.clear();
    for (const event of events) l1.invalidate(deps.keys.entity(event.entity, event.id), event.version);
  });
  const offReconnect = deps.store.onReconnect?.(() => l1.clear()) ?? (() => {});
  // Started while Redis was down: whatever L1 took meanwhile was never covered by events.
  const offLateStart = deps.invalidations.onLateStart(() => l1.clear());
  return () => {
    offEvents();
    offReconnect();
    offLateStart();
  };
}

/**
 * The store with L1 kept in step: entries it reads or stores are offered, tombstones it reads or
 * stores invalidate, and a write it refused or failed invalidates at the write's version.
 */
export function l1Layer(store: CacheStore, l1: L1Tier): CacheStore {
  const now = l1.now;
  return forwardStore(store, {
    async getMany(keys) {
      const since = now();
      const generation = l1.generation;
      const found = await store.getMany(keys);
      found.forEach((entry, i) => entry !== undefined && l1.offer(keys[i]!, entry, since, generation));
      return found;
    },
    async setMany(writes) {
      const since = now();
      const generation = l1.generation;
      let landed: boolean[];
      try {
        landed = await store.setMany(writes);
      } catch (error) {
        // The write may or may not have landed; either way its version is committed in PostgreSQL
        // (a fill read it, a write-through wrote it), so anything older must go — the writer's own
        // L1 included, or it would serve the old value after its own mutation returned.
        fenceAll(l1, writes);
        throw error;
      }
      // Landed or refused, the store holds this version or a newer one: fenced first, so that a read
      // begun before the write cannot put an older version back even once the entry offered here is
      // pushed out of L1 by other reads (the writer's own read-your-writes; test/read-path/l1-tier.test.ts,
      // "a write-through fences …").
      writes.forEach((write, i) => {
        l1.invalidate(write.key, write.entry.version);
        if (landed[i]) l1.offer(write.key, write.entry, since, generation);
      });
      return landed;
    },
    async fillMany(fills, token) {
      const since = now();
      const generation = l1.generation;
      // A fill that failed (or did not land) tells L1 nothing it must forget: the value was read from
      // PostgreSQL, and whatever the store holds reaches L1 by reads and events.
      const outcomes = await store.fillMany(fills, token);
      fills.forEach((fill, i) => {
        if (outcomes[i] === 'stored') l1.offer(fill.key, fill.entry, since, generation);
        // Fenced or renewed: the store holds this version or a newer one (renewed: this version, with
        // the bytes it held, which L1 learns by reading them).
        else if (outcomes[i] === 'fenced' || outcomes[i] === 'renewed')
          l1.invalidate(fill.key, fill.entry.version);
      });
      return outcomes;
    },
  });
}

// Private:

function fenceAll(l1: L1Tier, writes: readonly CacheWrite[]): void {
  for (const write of writes) l1.invalidate(write.key, write.entry.version);
}
