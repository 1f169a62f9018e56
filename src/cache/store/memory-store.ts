/**
 * The in-process driver of CacheStore (see contract.ts for the contract): what `npm start` uses when no
 * Redis is configured, so it keeps every rule of the Redis driver — fences, TTLs, owner-only locks,
 * fill notifications — within one process, and passes the same conformance suite.
 *
 * Entries, tombstones and locks share one keyspace, as they do in Redis, bounded by `maxEntries`:
 * expired keys are dropped when touched, and beyond the bound the least recently used key is
 * evicted, so a long-running server cannot grow without limit.
 */
import { StoreUnavailableError } from './errors.js';
import { fillChannelOf, lockKeyOf } from './key-names.js';
import { assertCacheWrite, assertLockToken, assertPurgePrefix, assertTtlMs } from './contract.js';
import type {
  Dependency,
  DependentRead,
  LockAttempt,
  CacheEntry,
  CacheStore,
  CacheWrite,
  FillOutcome,
  MessageListener,
  Unsubscribe,
} from './contract.js';

export interface MemoryStoreOptions {
  /** The clock, epoch milliseconds; tests pass a fake one to expire keys without waiting. @default Date.now */
  readonly now?: () => number;
  /** Most keys (entries, tombstones and locks) held at once; the least recently used go first. @default 100_000 */
  readonly maxEntries?: number;
  /** Receives exceptions thrown by fill and message listeners, which no caller awaits. @default ignore */
  readonly onError?: (error: Error) => void;
}

type Slot =
  | { readonly type: 'entry'; entry: CacheEntry; expiresAt: number }
  | { readonly type: 'lock'; readonly token: string; readonly expiresAt: number }
  | {
      readonly type: 'dependent';
      readonly generation: string;
      readonly payload: Uint8Array;
      readonly dependencies: readonly Dependency[];
      readonly expiresAt: number;
    };

export function createMemoryStore(options: MemoryStoreOptions = {}): CacheStore {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const onError = options.onError ?? (() => {});
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new TypeError(`memory store maxEntries must be a positive integer, got ${String(maxEntries)}`);
  }
  // Map order is recency order: a read or write moves the key to the end, eviction takes the front.
  const slots = new Map<string, Slot>();
  // The answer generation (contract.ts, invalidateDependents): a counter no restart can bring back,
  // since the entries it guards live in this process only.
  let generations = 0;
  const generation = () => `g${generations}`;
  const channels = new Map<string, Set<MessageListener>>();
  let closed = false;

  const live = (key: string): Slot | undefined => {
    const slot = slots.get(key);
    if (slot && slot.expiresAt <= now()) {
      slots.delete(key);
      return undefined;
    }
    return slot;
  };
  const touch = (key: string, slot: Slot) => {
    slots.delete(key);
    slots.set(key, slot);
    while (slots.size > maxEntries) slots.delete(slots.keys().next().value as string);
  };
  const open = (operation: string) => {
    if (closed) throw new StoreUnavailableError(`cache store ${operation} failed: the store is closed`);
  };

  const publish = (channel: string, message: string) => {
    // Delivered later, as a server would: never inside the publisher's call, and to the listeners
    // present when it was published.
    const listeners = [...(channels.get(channel) ?? [])];
    queueMicrotask(() => {
      for (const listener of listeners) {
        try {
          listener(channel, message);
        } catch (error) {
          onError(error instanceof Error ? error : new Error(String(error)));
        }
      }
    });
  };
  const subscribe = (channel: string, listener: MessageListener): Unsubscribe => {
    // Wrapped so that the same function added twice is two listeners, removed one at a time.
    const own: MessageListener = (ch, message) => listener(ch, message);
    let listeners = channels.get(channel);
    if (!listeners) channels.set(channel, (listeners = new Set()));
    listeners.add(own);
    return async () => {
      listeners.delete(own);
      if (listeners.size === 0 && channels.get(channel) === listeners) channels.delete(channel);
    };
  };

  /** The fence of contract.ts#setMany: whether the write landed, renewed the held entry, or neither. */
  const fence = ({ key, entry, ttlMs }: CacheWrite): 'landed' | 'renewed' | 'refused' => {
    const expiresAt = now() + ttlMs;
    const slot = live(key);
    const held = slot?.type === 'entry' ? slot.entry : undefined;
    if (held) {
      const admits =
        held.kind === 'tombstone'
          ? entry.version > held.version || (entry.version === held.version && entry.kind !== 'tombstone')
          : entry.version > held.version;
      if (!admits) {
        if (held.kind !== 'tombstone' && entry.kind !== 'tombstone' && entry.version === held.version) {
          // A refill of the same row: the held entry stays, its expiry moves as the writer asked.
          // A tombstone naming the held version (a duplicated event) has no expiry of its own to give.
          touch(key, { type: 'entry', entry: { ...held, staleAt: entry.staleAt }, expiresAt });
          return 'renewed';
        }
        return 'refused';
      }
    }
    touch(key, { type: 'entry', entry: copyEntry(entry), expiresAt });
    return 'landed';
  };
  const holds = (key: string, token: string) => {
    const slot = live(lockKeyOf(key));
    return slot?.type === 'lock' && slot.token === token;
  };
  const releaseLock = (key: string) => {
    slots.delete(lockKeyOf(key));
    publish(fillChannelOf(key), key);
  };

  return {
    tier: 'cacheside-memory',

    async getMany(keys) {
      open('getMany');
      return keys.map((key) => {
        const slot = live(key);
        if (slot?.type !== 'entry') return undefined;
        touch(key, slot);
        return copyEntry(slot.entry);
      });
    },

    async setMany(writes) {
      open('setMany');
      writes.forEach(assertCacheWrite);
      return writes.map((write) => {
        const landed = fence(write) === 'landed';
        // An invalidation revokes the key's fill grant, whoever holds it, and wakes its waiters.
        if (live(lockKeyOf(write.key))?.type === 'lock') releaseLock(write.key);
        return landed;
      });
    },

    async fillMany(fills, token) {
      open('fillMany');
      fills.forEach(assertCacheWrite);
      assertLockToken(token);
      return fills.map((fill): FillOutcome => {
        if (!holds(fill.key, token)) return 'revoked';
        const fenced = fence(fill);
        releaseLock(fill.key);
        if (fenced === 'landed') return 'stored';
        return fenced === 'renewed' ? 'renewed' : 'fenced';
      });
    },

    async setDependent({ key, payload, dependencies, ttlMs, generation: writtenIn }) {
      open('setDependent');
      assertTtlMs(ttlMs, `ttlMs of ${key}`);
      touch(key, {
        type: 'dependent',
        generation: writtenIn,
        payload: payload.slice(),
        dependencies: dependencies.map((d) => ({ ...d })),
        expiresAt: now() + ttlMs,
      });
    },

    async getDependent(key, at): Promise<DependentRead> {
      open('getDependent');
      const slot = live(key);
      if (slot?.type !== 'dependent' || slot.generation !== generation()) {
        return { status: 'absent', generation: generation() };
      }
      touch(key, slot);
      let freshUntil = Number.POSITIVE_INFINITY;
      for (const dependency of slot.dependencies) {
        const held = live(dependency.key);
        const current =
          held?.type === 'entry' &&
          held.entry.kind === dependency.kind &&
          held.entry.version === dependency.version &&
          held.entry.staleAt > at;
        if (!current) return { status: 'outdated', failed: { ...dependency }, generation: generation() };
        freshUntil = Math.min(freshUntil, held.entry.staleAt);
      }
      const { dependencies } = slot;
      return {
        status: 'current',
        payload: slot.payload.slice(),
        dependencies: dependencies.length,
        generation: generation(),
        freshUntil,
        listDependencies: () => dependencies.map((d) => ({ ...d })),
      };
    },

    async invalidateDependents() {
      open('invalidateDependents');
      generations += 1;
    },

    async ttlMany(keys) {
      open('ttlMany');
      return keys.map((key) => {
        const slot = live(key);
        return slot ? slot.expiresAt - now() : -1;
      });
    },

    async acquireLocks(keys, token, ttlMs) {
      open('acquireLocks');
      assertLockToken(token);
      assertTtlMs(ttlMs, 'lock ttlMs');
      return keys.map((key): LockAttempt => {
        const lockKey = lockKeyOf(key);
        const acquired = live(lockKey) === undefined;
        if (acquired) touch(lockKey, { type: 'lock', token, expiresAt: now() + ttlMs });
        // The read of getMany, entry for entry (a read counts as a use for the eviction order).
        const slot = live(key);
        if (slot?.type !== 'entry') return { acquired, entry: undefined };
        touch(key, slot);
        return { acquired, entry: copyEntry(slot.entry) };
      });
    },

    async releaseLocks(keys, token) {
      open('releaseLocks');
      assertLockToken(token);
      return keys.map((key) => {
        // Compare-and-delete: a holder whose lock expired must not release the next holder's lock.
        if (!holds(key, token)) return false;
        releaseLock(key);
        return true;
      });
    },

    async onFill(key, listener) {
      open('onFill');
      return subscribe(fillChannelOf(key), () => listener(key));
    },

    async subscribe(channel, listener) {
      open('subscribe');
      return subscribe(channel, listener);
    },

    async publish(channel, message) {
      open('publish');
      publish(channel, message);
    },

    async scanKeys(prefix, onBatch) {
      open('scanKeys');
      assertPurgePrefix(prefix);
      const keys = [...slots.keys()].filter((key) => key.startsWith(prefix) && live(key) !== undefined);
      for (let i = 0; i < keys.length; i += 500) await onBatch(keys.slice(i, i + 500));
      return keys.length;
    },

    async purgePrefix(prefix) {
      open('purgePrefix');
      assertPurgePrefix(prefix);
      let removed = 0;
      for (const key of [...slots.keys()]) {
        if (!key.startsWith(prefix)) continue;
        if (live(key)) removed += 1;
        slots.delete(key);
      }
      return removed;
    },

    async close() {
      closed = true;
      slots.clear();
      channels.clear();
    },
  };
}

// Private:

/** Entries are copied in and out, as bytes sent to and read from Redis would be. */
function copyEntry(entry: CacheEntry): CacheEntry {
  return { kind: entry.kind, version: entry.version, staleAt: entry.staleAt, payload: entry.payload.slice() };
}
