/**
 * The chaos double (test/support/chaos-store.ts) over the memory driver: while healthy it keeps the
 * store contract (test/support/store-contract.ts); then its controls: failing every call or the next
 * n, aiming faults at chosen methods, delays and timeouts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createChaosStore } from '../support/chaos-store.js';
import { StoreTimeoutError } from '../../src/cache/store/errors.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { describeStoreContract, memoryHarness, storeKeySpace, write } from '../support/store-contract.js';

const keySpace = storeKeySpace('chaosstore');
const PREFIX = keySpace.prefix;
const { freshKey } = keySpace;

describeStoreContract(
  'chaos(memory), healthy',
  async () => {
    const inner = memoryHarness();
    const store = createChaosStore(inner.store);
    return { ...inner, store, peer: store };
  },
  keySpace,
);

describe('chaos store', () => {
  const inner = () => createMemoryStore();
  let chaos: ReturnType<typeof createChaosStore>;
  afterEach(async () => {
    await chaos.close();
  });

  it('fails every method with StoreUnavailableError until healed', async () => {
    chaos = createChaosStore(inner());
    const key = freshKey();
    await chaos.setMany([write(key, 'value', 1)]);
    chaos.chaos.failAll();
    const calls: (() => Promise<unknown>)[] = [
      () => chaos.getMany([key]),
      () => chaos.setMany([write(key, 'value', 2)]),
      () => chaos.ttlMany([key]),
      () => chaos.acquireLocks([key], 't', 1000),
      () => chaos.releaseLocks([key], 't'),
      () => chaos.onFill(key, () => {}),
      () => chaos.publish('c', 'm'),
      () => chaos.subscribe('c', () => {}),
      () => chaos.purgePrefix(PREFIX),
    ];
    for (const call of calls) {
      await expect(call()).rejects.toMatchObject({
        code: 'CACHE_STORE_UNAVAILABLE',
        name: 'StoreUnavailableError',
      });
    }
    expect(chaos.chaos.injected).toBe(calls.length);
    chaos.chaos.heal();
    expect((await chaos.getMany([key]))[0]?.version).toBe(1);
    expect(chaos.tier).toBe('cacheside-memory');
  });

  it('fails exactly the next n calls', async () => {
    chaos = createChaosStore(inner());
    chaos.chaos.failNext(2);
    const outcomes = await Promise.allSettled([0, 1, 2, 3].map(() => chaos.getMany([freshKey()])));
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    expect(chaos.chaos.injected).toBe(2);
  });

  it('aims faults at chosen methods and throws the error it is given', async () => {
    chaos = createChaosStore(inner());
    const custom = new StoreTimeoutError('custom');
    chaos.chaos.failAll(custom, { methods: ['getMany'] });
    await expect(chaos.getMany([freshKey()])).rejects.toBe(custom);
    expect(await chaos.setMany([write(freshKey(), 'value', 1)])).toEqual([true]);
  });

  it('delays calls, or times them out like a command timeout', async () => {
    chaos = createChaosStore(inner());
    const key = freshKey();
    await chaos.setMany([write(key, 'value', 4)]);
    chaos.chaos.delay(20);
    expect((await chaos.getMany([key]))[0]?.version).toBe(4);
    chaos.chaos.delay(60_000, { timeoutMs: 20, methods: ['getMany'] });
    await expect(chaos.getMany([key])).rejects.toMatchObject({ code: 'CACHE_STORE_TIMEOUT' });
    expect(await chaos.ttlMany([key])).toHaveLength(1);
    chaos.chaos.heal();
    expect((await chaos.getMany([key]))[0]?.version).toBe(4);
  });
});
