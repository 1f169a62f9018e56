/**
 * The memory driver: the store contract (test/support/store-contract.ts) on a fake clock, then what
 * only the memory driver has: its bound on entries, and listener isolation without Redis.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import {
  describeStoreContract,
  expectListenerIsolation,
  memoryHarness,
  storeKeySpace,
  write,
} from '../support/store-contract.js';

const keySpace = storeKeySpace('memorystore');
const { freshKey } = keySpace;

describeStoreContract('memory', async () => memoryHarness(), keySpace);

describe('memory driver', () => {
  it('holds at most maxEntries keys, evicting the least recently used', async () => {
    const store = createMemoryStore({ maxEntries: 3 });
    const [a, b, c, d] = [freshKey(), freshKey(), freshKey(), freshKey()];
    await store.setMany([write(a, 'value', 1), write(b, 'value', 1), write(c, 'value', 1)]);
    await store.getMany([a]);
    await store.setMany([write(d, 'value', 1)]);
    expect((await store.getMany([a, b, c, d])).map(Boolean)).toEqual([true, false, true, true]);

    const many = Array.from({ length: 1000 }, freshKey);
    await store.setMany(many.map((key) => write(key, 'value', 1)));
    expect((await store.getMany(many)).filter(Boolean)).toHaveLength(3);
    await store.close();
  });

  it('reports a throwing listener to onError and still calls the others', async () => {
    const errors: Error[] = [];
    const store = createMemoryStore({ onError: (error) => errors.push(error) });
    await expectListenerIsolation(store, errors, freshKey());
    await store.close();
  });
});
