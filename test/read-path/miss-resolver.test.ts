/**
 * The read path's back half (src/cache/read/miss-resolver.ts), built directly: createMissResolver over
 * the in-process memory store, with the real profile spec over the real repositories of a private,
 * seeded PostgreSQL database. Two resolvers over one store are two instances: each has its own lock
 * tokens, and they meet only through the store (locks, fills, fill notifications), as two servers
 * meet in Redis.
 *
 * How the tests look: the repositories' `beforeQuery` hook logs every SQL statement and can hold a
 * load (so a holder keeps its lock as long as the test wants) or throw (PostgreSQL down); a recording
 * wrapper shows a resolver's store calls; lock keys are checked in the store itself (`ttlMany` of
 * `<key>:lock`, -1 when absent) after every resolution.
 *
 * Clocks: a fake one, except where a waiter must give up (the deadline is real time by design: the
 * wait is a timer); that test uses a short `lockWaitMs` because crossing it is the point.
 *
 * Seed: users 1..30, each with a profile at version 1.
 */
import { setImmediate as settle } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import { createBypassLoads } from '../../src/cache/read/bypass.js';
import { createMissResolver } from '../../src/cache/read/miss-resolver.js';
import type { Miss, Resolution } from '../../src/cache/read/resolution.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { lockKeyOf } from '../../src/cache/store/key-names.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { type CacheConfig } from '../../src/config.js';
import { DatabaseUnavailableError } from '../../src/db/errors.js';
import type { ProfileRow } from '../../src/db/schema.js';
import { CacheReport } from '../../src/observability/cache-report.js';
import { createChaosStore } from '../support/chaos-store.js';
import { fakeClock, gate, readPathFixture, spyStore } from '../support/unit-kit.js';

const fixture = readPathFixture('miss_resolver', 30);
const { config: baseConfig, keys, logger, loads, hooks } = fixture;
const TTL_MS = baseConfig.ttlSeconds * 1000;
const GRACE_MS = baseConfig.staleGraceSeconds * 1000;

interface Instance {
  /** The resolver's view of the store: every call it makes is recorded. */
  readonly store: ReturnType<typeof spyStore>;
  readonly waits: number[];
  readonly timeouts: number[];
  readonly storeErrors: string[];
  resolve(
    misses: readonly Miss[],
  ): Promise<{ resolved: Map<number, Resolution<ProfileRow>>; report: CacheReport }>;
}

/** One "instance": a resolver of its own over the shared `store`, with its events recorded. */
function instance(
  store: CacheStore,
  options: { config?: Partial<CacheConfig>; now: () => number },
): Instance {
  const config = { ...baseConfig, ...options.config };
  const spied = spyStore(store);
  const waits: number[] = [];
  const timeouts: number[] = [];
  const storeErrors: string[] = [];
  const specs = createEntitySpecs({ keys, repositories: fixture.repositories, config });
  let clock = 0;
  const tick = () => ++clock;
  const resolver = createMissResolver({
    store: spied,
    config,
    logger,
    now: options.now,
    // No jitter: every TTL is exact.
    entries: createEntryFactory({ config, now: options.now, random: () => 0.5 }),
    tick,
    bypass: createBypassLoads(tick),
    events: {
      lockWait: (_entity, n) => waits.push(n),
      lockWaitTimeout: (_entity, n) => timeouts.push(n),
      storeError: (_error, operation) => storeErrors.push(operation),
    },
  });
  return {
    store: spied,
    waits,
    timeouts,
    storeErrors,
    async resolve(misses) {
      const report = new CacheReport();
      const resolved = await resolver.resolve(specs.profile, misses, report);
      return { resolved, report };
    },
  };
}

const keyOf = (id: number) => keys.entity('profile', id);
const miss = (id: number, stale?: Miss['stale']): Miss => ({ id, key: keyOf(id), stale });
const profileLoads = (id: number) => loads.filter((l) => l.query === 'profiles' && l.ids.includes(id));

/** `[outcome, version]` per id, or `[outcome, error name]` for a key that could not be answered. */
function summary(resolved: ReadonlyMap<number, Resolution<ProfileRow>>, ids: readonly number[]) {
  return ids.map((id) => {
    const r = resolved.get(id)!;
    return [r.outcome, r.error ? r.error.name : r.value === null ? null : r.value.version];
  });
}

/** Remaining TTL of each id's lock key in the store: -1 means no lock is left. */
const lockTtls = (store: CacheStore, ids: readonly number[]) =>
  store.ttlMany(ids.map((id) => lockKeyOf(keyOf(id))));

describe('miss resolver over the memory store', () => {
  test('the lock holder loads under its lock in one statement, then fills under it, which releases it', async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    const a = instance(store, { now: clock.now });
    let locksDuringLoad: number[] = [];
    hooks.before = async () => {
      locksDuringLoad = await lockTtls(store, [1, 2]);
    };

    const { resolved, report } = await a.resolve([miss(1), miss(2)]);

    expect(summary(resolved, [1, 2])).toEqual([
      ['miss', 1],
      ['miss', 1],
    ]);
    expect(loads).toEqual([{ query: 'profiles', ids: [1, 2] }]);
    // While PostgreSQL ran the load, both locks were held (full TTL: the fake clock stood still).
    expect(locksDuringLoad).toEqual([baseConfig.lockTtlMs, baseConfig.lockTtlMs]);
    expect(report.stored).toBe(2);
    expect((await store.getMany([keyOf(1), keyOf(2)])).map((e) => [e?.kind, e?.version])).toEqual([
      ['value', 1],
      ['value', 1],
    ]);
    expect(await lockTtls(store, [1, 2])).toEqual([-1, -1]);
    expect(a.waits).toEqual([]);
    // The lock read the keys in the same step; the fill is made under the grant the locks are, and
    // releases them: one round trip each, for both keys.
    expect(a.store.spy.methods()).toEqual(['acquireLocks', 'fillMany']);
  });

  test('the holder re-reads under its lock: a fill that landed since the caller’s read is collapsed, with no SQL', async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    const a = instance(store, { now: clock.now });
    const b = instance(store, { now: clock.now });
    // The caller read the key (a miss); then another instance loaded and filled it; then the caller
    // gets to its lock.
    await b.resolve([miss(3)]);
    loads.length = 0;

    const { resolved, report } = await a.resolve([miss(3)]);

    expect(summary(resolved, [3])).toEqual([['collapsed', 1]]);
    expect(resolved.get(3)!.ttlMs).toBe(TTL_MS);
    expect(loads).toEqual([]);
    expect(report.stored).toBe(0);
    // It took the lock, found the fill in the same step, and let the lock go at once.
    expect(a.store.spy.methods()).toEqual(['acquireLocks', 'releaseLocks']);
    expect(await lockTtls(store, [3])).toEqual([-1]);
  });

  test('a second instance waits for the holder’s fill and is woken by it: collapsed, one SQL load in total', async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    // A long wait: if the fill did not wake the waiter, it would give up and load (a second SQL load,
    // a lockWaitTimeout) and the test would fail on that, not on time.
    const config = { lockWaitMs: 10_000 };
    const a = instance(store, { now: clock.now, config });
    const b = instance(store, { now: clock.now, config });
    const held = gate();
    hooks.before = (query, ids) => (ids.includes(4) ? held.wait() : undefined);

    const holder = a.resolve([miss(4)]);
    await held.reached; // a holds the lock and is inside its load
    delete hooks.before;
    const waiter = b.resolve([miss(4)]);
    // b found the lock taken, subscribed to the fill, re-read (nothing yet): it is now waiting.
    while (b.store.spy.count('getMany') === 0) await settle();
    await settle();
    expect(b.store.spy.methods()).toEqual(['acquireLocks', 'onFill', 'getMany']);
    expect(b.waits).toEqual([1]);
    held.open();

    const [fromA, fromB] = await Promise.all([holder, waiter]);
    expect(summary(fromA.resolved, [4])).toEqual([['miss', 1]]);
    expect(summary(fromB.resolved, [4])).toEqual([['collapsed', 1]]);
    expect(profileLoads(4)).toHaveLength(1);
    expect(b.timeouts).toEqual([]);
    // The waiter read the holder's fill; it stored nothing of its own.
    expect(b.store.spy.count('setMany')).toBe(0);
    expect(fromB.report.stored).toBe(0);
    expect(await lockTtls(store, [4])).toEqual([-1]);
  });

  test('a waiter gives up after lockWaitMs and loads itself without filling; the holder’s lock stays the holder’s', async () => {
    // Real time: the wait for a fill is a timer, and crossing its deadline is what this test is about.
    const store = createMemoryStore();
    const config = { lockWaitMs: 50, lockTtlMs: 60_000 };
    const a = instance(store, { now: Date.now, config });
    const b = instance(store, { now: Date.now, config });
    const held = gate();
    hooks.before = (query, ids) => (ids.includes(5) ? held.wait() : undefined);

    let holderDone = false;
    const holder = a.resolve([miss(5)]).finally(() => (holderDone = true));
    try {
      await held.reached;
      delete hooks.before;

      const fromB = await b.resolve([miss(5)]);

      expect(summary(fromB.resolved, [5])).toEqual([['miss', 1]]);
      expect(b.waits).toEqual([1]);
      expect(b.timeouts).toEqual([1]);
      // Without a grant the waiter answers but does not fill: its value could be the late fill
      // that a write (revoking the holder's grant) must be able to stop.
      expect(fromB.report.stored).toBe(0);
      expect(b.store.spy.count('fillMany')).toBe(0);
      expect(profileLoads(5)).toHaveLength(2);
      // The holder is still inside its load, and its lock is still its own: the waiter could not
      // release a lock it never took (compare-and-delete).
      expect(holderDone).toBe(false);
      expect((await lockTtls(store, [5]))[0]).toBeGreaterThan(0);
      expect(b.store.spy.count('releaseLocks')).toBe(0);
    } finally {
      held.open();
    }
    const fromA = await holder;
    // The holder still holds its grant: its fill is the one that lands.
    expect(summary(fromA.resolved, [5])).toEqual([['miss', 1]]);
    expect(fromA.report.stored).toBe(1);
    expect(await lockTtls(store, [5])).toEqual([-1]);
  });

  test('PostgreSQL down: stale entries within grace are served as stale, a key with nothing stale gets an Error, the rest still answer', async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    const a = instance(store, { now: clock.now });
    await a.resolve([miss(6), miss(7)]);
    loads.length = 0;
    // Past the logical TTL, within the grace: the store still holds the entries, as stale ones.
    clock.advance(TTL_MS + 1_000);
    const [stale6, stale7] = await store.getMany([keyOf(6), keyOf(7)]);
    hooks.before = () => {
      throw new DatabaseUnavailableError('database unavailable (test: PostgreSQL is down)');
    };

    const { resolved, report } = await a.resolve([miss(6, stale6), miss(8), miss(7, stale7)]);

    expect(summary(resolved, [6, 8, 7])).toEqual([
      ['stale', 1],
      ['miss', 'DatabaseUnavailableError'],
      ['stale', 1],
    ]);
    expect(resolved.get(8)!.value).toBeNull();
    expect(resolved.get(6)!.ttlMs).toBe(-1_000);
    // One attempt for the batch, nothing stored, and the stale entries left as they were (their
    // physical TTL keeps running down: serving stale does not extend the grace).
    expect(loads).toHaveLength(1);
    expect(report.stored).toBe(0);
    expect(await store.ttlMany([keyOf(6), keyOf(7)])).toEqual([GRACE_MS - 1_000, GRACE_MS - 1_000]);
    expect(await lockTtls(store, [6, 7, 8])).toEqual([-1, -1, -1]);

    // Once the grace has passed the store has nothing to offer, and the key fails like any other.
    clock.advance(GRACE_MS);
    const [gone] = await store.getMany([keyOf(6)]);
    expect(gone).toBeUndefined();
    const after = await a.resolve([miss(6, gone)]);
    expect(summary(after.resolved, [6])).toEqual([['miss', 'DatabaseUnavailableError']]);
    expect(await lockTtls(store, [6])).toEqual([-1]);
  });

  test('a load that fails with a bug rejects the batch and still releases its locks', async () => {
    const clock = fakeClock();
    const store = createMemoryStore({ now: clock.now });
    const a = instance(store, { now: clock.now });
    const b = instance(store, { now: clock.now });
    hooks.before = () => {
      throw new Error('a bug in the loader');
    };

    await expect(a.resolve([miss(9), miss(10)])).rejects.toThrow('a bug in the loader');

    expect(await lockTtls(store, [9, 10])).toEqual([-1, -1]);
    // So the next caller takes the locks at once instead of waiting out their TTL.
    delete hooks.before;
    const { resolved } = await b.resolve([miss(9), miss(10)]);
    expect(summary(resolved, [9, 10])).toEqual([
      ['miss', 1],
      ['miss', 1],
    ]);
    expect(b.waits).toEqual([]);
  });

  test('a store that fails mid-resolution: the keys come from PostgreSQL as bypass, and no lock is left', async () => {
    const clock = fakeClock();
    const memory = createMemoryStore({ now: clock.now });
    const chaos = createChaosStore(memory);
    const a = instance(chaos, { now: clock.now });
    // Another caller holds 12: a takes 11's lock, watches 12, and its re-read of 12 fails.
    expect((await memory.acquireLocks([keyOf(12)], 'other', 60_000))[0]!.acquired).toBe(true);
    chaos.chaos.failNext(1, undefined, { methods: ['getMany'] });

    const { resolved, report } = await a.resolve([miss(11), miss(12)]);

    expect(summary(resolved, [11, 12])).toEqual([
      ['bypass', 1],
      ['bypass', 1],
    ]);
    expect(a.storeErrors).toEqual(['resolveMisses']);
    expect(chaos.chaos.injected).toBe(1);
    expect(loads).toEqual([{ query: 'profiles', ids: [11, 12] }]);
    expect(report.stored).toBe(0);
    expect(a.store.spy.methods()).toEqual(['acquireLocks', 'onFill', 'getMany', 'releaseLocks']);
    // Its own lock released; the other caller's left alone.
    expect(await lockTtls(memory, [11])).toEqual([-1]);
    expect(await memory.releaseLocks([keyOf(12)], 'other')).toEqual([true]);
  });
});
