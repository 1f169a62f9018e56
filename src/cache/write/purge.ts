/**
 * Operators' invalidation (`npm run cache:purge`), and the relay's answer to a change that named no
 * row (the seed: outbox-relay.ts). A purge must stop serving what is cached without giving up the
 * fence: a bare DEL would let a fill that read the row before the purge land after it. So each
 * cached value becomes a tombstone one version newer than itself — an invalidation, which also
 * revokes the key's fill grant. Fills of the current row are refused while that tombstone lives, so
 * it lives only as long as a fill can be in flight (a few seconds); meanwhile reads of the key are
 * answered from PostgreSQL. A key being filled right now (its lock held) gets its grant revoked too.
 *
 * And every stored answer of the response tier must go (`invalidateDependents`: a new generation).
 * A purge is for rows changed behind the cache's back, which keep their version: an answer computed
 * from the old row names the same versions as one computed from the new, so no check of versions
 * tells them apart — once the tombstone has expired and the key is filled again at that version, it
 * would validate. The generation moves *after* the tombstones have landed, so that an answer begun
 * under the new one reads them (test/write-path/cache-purge.test.ts, "purge with the response tier on").
 *
 * And every instance must hear of it (`purgeEntity`, `purgeAll`: what the command line runs). An
 * instance's L1 tier, and the answers it keeps on L1's word, learn of changes only through events, and
 * a purge commits no outbox row for a relay to publish: without its own event, every L1 would go on
 * serving what was purged for up to `CACHE_L1_TTL_MS` (cache-purge.test.ts, "a purge reaches …").
 */
import { encodeEvents } from '../events/invalidation-events.js';
import type { CacheKeys, CachedEntity } from '../entities/keys.js';
import type { EntryFactory } from '../entities/entries.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';
import { keyOfLock } from '../store/key-names.js';

export interface PurgeDeps {
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly entries: EntryFactory;
}

/**
 * Tombstones the given keys' values, and then starts a new answer generation; returns how many values
 * stopped being served.
 */
export async function invalidateKeys(deps: PurgeDeps, keys: readonly string[]): Promise<number> {
  const landed = await tombstone(deps, keys);
  // Whatever landed, or nothing at all (every key evicted): no stored answer survives it.
  await deps.store.invalidateDependents();
  return landed;
}

export async function invalidateEntity(deps: PurgeDeps, entity: CachedEntity, id: number): Promise<number> {
  return invalidateKeys(deps, [deps.keys.entity(entity, id)]);
}

/**
 * The version a purge's event names: above any a row can have. A purge changes no version (the rows it
 * is for were changed behind the cache's back, keeping theirs), and an L1 may hold a key the store has
 * lost since, so there is no version to name but "any you hold is older": every L1 drops the key, and
 * refuses it back for the life of its fence (a minute of reads from the store for one key).
 */
export const PURGED_VERSION = Number.MAX_SAFE_INTEGER;

/**
 * The purge landed in the store, but its event did not go out: the instances' L1 tiers have not heard
 * of it. Running the purge again is safe (it only tombstones what is cached) and sends the event.
 */
export class PurgeNotAnnouncedError extends Error {
  constructor(cause: unknown) {
    super("the purge landed, but its event to the instances' L1 tiers was not published: run it again", {
      cause,
    });
    this.name = 'PurgeNotAnnouncedError';
  }
}

/** `invalidateEntity`, then its event to every instance (the L1 tiers': see above). */
export async function purgeEntity(deps: PurgeDeps, entity: CachedEntity, id: number): Promise<number> {
  const invalidated = await invalidateEntity(deps, entity, id);
  await announce(deps, encodeEvents([{ entity, id, version: PURGED_VERSION }]));
  return invalidated;
}

/** `invalidateAll`, then the event that clears every L1 (the relay's `*` row publishes its own). */
export async function purgeAll(deps: PurgeDeps): Promise<{ visited: number; invalidated: number }> {
  const purged = await invalidateAll(deps);
  await announce(deps, encodeEvents([], { all: true }));
  return purged;
}

/** Last, once the tombstones and the new generation have landed: an L1 that hears of it then reads them. */
async function announce({ store, keys }: PurgeDeps, message: string): Promise<void> {
  try {
    await store.publish(keys.eventsChannel, message);
  } catch (error) {
    throw new PurgeNotAnnouncedError(error);
  }
}

/** Tombstones the given keys' values (one version newer than each); returns how many landed. */
async function tombstone({ store, entries }: PurgeDeps, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const held = await store.getMany(keys);
  const writes: CacheWrite[] = [];
  keys.forEach((key, i) => {
    const entry = held[i];
    if (entry === undefined || entry.kind === 'tombstone') return;
    writes.push({ ...entries.tombstone(key, entry.version + 1), ttlMs: entries.inFlightMs });
  });
  if (writes.length === 0) return 0;
  return (await store.setMany(writes)).filter(Boolean).length;
}

/**
 * Revokes the fill grants of keys being filled now (their locks held): a fill that read the row
 * before the change can no longer land. A tombstone at version 0 does it (every write revokes)
 * without fencing anything out.
 */
async function revokeGrants({ store, entries }: PurgeDeps, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await store.setMany(keys.map((key) => ({ ...entries.tombstone(key, 0), ttlMs: entries.inFlightMs })));
}

/** Every cached value under the namespace, walked with SCAN in batches; every fill in flight revoked. */
export async function invalidateAll(deps: PurgeDeps): Promise<{ visited: number; invalidated: number }> {
  let invalidated = 0;
  // Entity keys only (the user directory's included): `…:lock` and `…:filled` names, stored answers
  // and the write stamp are not entries.
  const isEntity = (key: string) => deps.keys.parse(key) !== undefined;
  const visited = await deps.store.scanKeys(deps.keys.namespace, async (batch) => {
    invalidated += await tombstone(deps, batch.filter(isEntity));
    const locked = batch.map(keyOfLock).filter((key): key is string => key !== undefined && isEntity(key));
    await revokeGrants(deps, locked);
  });
  // Last, once every tombstone has landed; also when the namespace held no entry at all.
  await deps.store.invalidateDependents();
  return { visited, invalidated };
}
