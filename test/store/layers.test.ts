/**
 * Store layers (src/cache/store/layers/forward.ts): a CacheStore that wraps another forwards every
 * member of the contract it does not change — the optional `onReconnect` hook included, exactly when
 * the inner store has it.
 *
 * The hook is how the L1 tier learns that the subscriber connection was lost and invalidation events
 * may have been missed (it clears itself). The circuit breaker used to forward members by hand and
 * dropped it, so anything connected through the breaker never heard of a reconnect. Here the loss is
 * real: the Redis store's subscriber connection is killed with CLIENT KILL, ioredis reconnects and
 * re-subscribes, and the hook must reach the listener through every layer, and through the whole
 * stack the app builds.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { l1Layer } from '../../src/cache/read/l1-layer.js';
import { createL1Tier } from '../../src/cache/read/l1-tier.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { createCircuitBreaker } from '../../src/cache/store/layers/circuit-breaker.js';
import { STORE_CALLS } from '../../src/cache/store/layers/forward.js';
import { instrumentStore } from '../../src/cache/store/layers/instrumentation.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createRedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { createChaosStore } from '../support/chaos-store.js';
import { createTestApp, REDIS_URL } from '../support/app.js';
import { purgeKeys, uniquePrefix } from '../support/redis.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';

const PREFIX = uniquePrefix('layers');

const LAYERS: Record<string, (inner: CacheStore) => CacheStore> = {
  'circuit breaker': (inner) => createCircuitBreaker(inner),
  instrumentation: (inner) => instrumentStore(inner),
  'L1 layer': (inner) => l1Layer(inner, createL1Tier({ maxEntries: 10, ttlMs: 1000 })),
  'chaos double': (inner) => createChaosStore(inner),
  'the app’s stack: L1 over instrumentation over breaker': (inner) =>
    l1Layer(instrumentStore(createCircuitBreaker(inner)), createL1Tier({ maxEntries: 10, ttlMs: 1000 })),
};

const opened: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const store of opened.reverse()) await store.close().catch(() => {});
});

/** A Redis store whose connections carry a name of their own, so a test can find and kill them. */
function namedRedisStore(): { store: CacheStore; connectionName: string } {
  const connectionName = `cs-layers-${randomBytes(4).toString('hex')}`;
  const store = createRedisStore({
    connections: createRedisConnections({ url: REDIS_URL, commandTimeoutMs: 5000, connectionName }),
    dependentKeys: createCacheKeys(PREFIX).dependents,
  });
  opened.push(store);
  return { store, connectionName };
}

/** Kills the subscriber connection named `<connectionName>:subscriber`; returns how many were killed. */
async function killSubscriber(connectionName: string): Promise<number> {
  const admin = new Redis(REDIS_URL);
  try {
    const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    const ids = list
      .split('\n')
      .filter((line) => line.includes(` name=${connectionName}:subscriber `))
      .map((line) => /^id=(\d+)/.exec(line)?.[1])
      .filter((id): id is string => id !== undefined);
    for (const id of ids) await admin.call('CLIENT', 'KILL', 'ID', id);
    return ids.length;
  } finally {
    admin.disconnect();
  }
}

/** Resolves on the next call of the returned listener. */
function nextCall(): { listener: () => void; called: Promise<void> } {
  let listener!: () => void;
  const called = new Promise<void>((resolve) => (listener = resolve));
  return { listener, called };
}

describe.each(Object.entries(LAYERS))('%s', (_name, wrap) => {
  it('forwards every call of the contract, and the tier name', () => {
    const layered = wrap(createMemoryStore());
    for (const method of STORE_CALLS) expect(typeof layered[method], method).toBe('function');
    expect(layered.tier).toBe('cacheside-memory');
  });

  it('has no onReconnect over a store that cannot lose messages (memory)', () => {
    expect(wrap(createMemoryStore()).onReconnect).toBeUndefined();
  });

  it('passes a reconnect of the Redis subscriber connection on to its listener', async () => {
    const { store, connectionName } = namedRedisStore();
    const layered = wrap(store);
    expect(layered.onReconnect).toBeTypeOf('function');
    const reconnect = nextCall();
    layered.onReconnect!(reconnect.listener);
    // The subscriber connection exists once something subscribes.
    await layered.subscribe(`${PREFIX}:channel`, () => {});
    expect(await killSubscriber(connectionName)).toBe(1);
    await reconnect.called;
  });
});

describe('the app wires L1 to reconnects through its layered store', () => {
  it('clears L1 when the subscriber connection is lost and comes back', async () => {
    const { store, connectionName } = namedRedisStore();
    const t = await createTestApp({
      label: 'layers_app',
      store,
      env: { CACHE_L1_MAX_ENTRIES: '1000', CACHE_L1_TTL_MS: '600000' },
    });
    try {
      const read = () => t.gql(`{ user(id: "3") { name profile { bio } } }`);
      expect((await read()).body.errors).toBeUndefined();
      // The second read is answered by L1: it holds the user and the profile.
      expect((await read()).headers.get('cache-status')).toMatch(/^cacheside-l1; hit/);
      expect(t.app.l1!.size).toBeGreaterThan(0);

      const cleared = nextCall();
      const off = t.app.store.onReconnect!(cleared.listener);
      expect(await killSubscriber(connectionName)).toBe(1);
      await cleared.called;
      off();
      expect(t.app.l1!.size).toBe(0);
    } finally {
      await t.close();
      // A store handed in is the test's: so are its keys.
      await purgeKeys(`${t.prefix}:`);
    }
  });
});
