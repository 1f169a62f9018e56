/**
 * Operators' invalidation (`npm run cache:purge`), and the relay's answer to a change that named no
 * row (the seed: outbox-relay.ts). A purge must stop serving what is cached without giving up the
 * fence: a bare DEL would let a fill that read the row before the purge land after it. So each
 * cached value becomes a tombstone one version newer than itself — an invalidation, which also
 * revokes the key's fill grant. Fills of the current row are refused while that tombstone lives, so
 * it lives only as long as a fill can be in flight (a few seconds); meanwhile reads of the key are
 * answered from PostgreSQL. A key being filled right now (its lock held) gets its grant revoked too.
 */
import type { CacheKeys, CachedEntity } from '../entities/keys.js';
import type { EntryFactory } from '../entities/entries.js';
import type { CacheStore, CacheWrite } from '../store/contract.js';
import { keyOfLock } from '../store/key-names.js';

/** Entity keys only: `…:lock` and `…:filled` names are not entries. */
const ENTITY_KEY = /:(user|profile|post):\{[1-9][0-9]*\}(:posts)?$/;

export interface PurgeDeps {
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly entries: EntryFactory;
}

/** Tombstones the given keys' values; returns how many values stopped being served. */
export async function invalidateKeys(
  { store, entries }: PurgeDeps,
  keys: readonly string[],
): Promise<number> {
  if (keys.length === 0) return 0;
  const held = await store.getMany(keys);
  const writes: CacheWrite[] = [];
  keys.forEach((key, i) => {
    const entry = held[i];
    if (entry === undefined || entry.kind === 'tombstone') return;
    const tombstone = entries.tombstone(key, entry.version + 1);
    writes.push({ ...tombstone, ttlMs: entries.inFlightMs });
  });
  if (writes.length === 0) return 0;
  return (await store.setMany(writes)).filter(Boolean).length;
}

export async function invalidateEntity(deps: PurgeDeps, entity: CachedEntity, id: number): Promise<number> {
  return invalidateKeys(deps, [deps.keys.entity(entity, id)]);
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
  const visited = await deps.store.scanKeys(deps.keys.namespace, async (batch) => {
    invalidated += await invalidateKeys(
      deps,
      batch.filter((key) => ENTITY_KEY.test(key)),
    );
    const locked = batch
      .map(keyOfLock)
      .filter((key): key is string => key !== undefined && ENTITY_KEY.test(key));
    await revokeGrants(deps, locked);
  });
  return { visited, invalidated };
}
