/**
 * The read path's front half (src/cache/read/cache-aside.ts), built directly: createCacheAside over
 * the in-process memory store on a fake clock, with the real entity specs over the real repositories
 * of a private, seeded PostgreSQL database. No HTTP, no DataLoader: each test hands `read` one batch
 * of ids, as DataLoader would, and looks at
 *   - the SQL statements (the repositories' `beforeQuery` hook logs each one with its ids),
 *   - the store calls (a recording wrapper, test/support/unit-kit.ts),
 *   - the outcomes recorded in the CacheReport and the `lookup` events,
 *   - the versions answered and stored.
 * Races are made to happen on purpose: a hook holds a load (`beforeQuery`) or a reader that already
 * has its rows (`afterQuery`) until the test has put the other side in place.
 *
 * Seed: users 1..30, each with a profile at version 1. Ids above 30 have no row. Tests that change a
 * row (race 2) use their own user.
 */
import { setImmediate as settle } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { describe, expect, test } from 'vitest';
import { createCacheAside } from '../../src/cache/read/cache-aside.js';
import { createEntryFactory } from '../../src/cache/entities/entries.js';
import { createEntitySpecs } from '../../src/cache/entities/specs.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { lockKeyOf } from '../../src/cache/store/key-names.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { rowsOf } from '../../src/db/client.js';
import type { ProfileRow } from '../../src/db/schema.js';
import { CacheReport, type LookupOutcome } from '../../src/observability/cache-report.js';
import { createChaosStore, type ChaosStore } from '../support/chaos-store.js';
import { fakeClock, gate, readPathFixture, spyStore } from '../support/unit-kit.js';

const USERS = 30;
const UNKNOWN = 9_999;
const fixture = readPathFixture('cache_aside', USERS);
const { config, keys, logger, loads, hooks } = fixture;
const TTL_MS = config.ttlSeconds * 1000;
const NEGATIVE_TTL_MS = config.negativeTtlSeconds * 1000;
const GRACE_MS = config.staleGraceSeconds * 1000;

/**
 * A fresh cache-aside over a fresh memory store on a fresh clock. `wrap` puts a fault double between
 * the engine and the memory store; the recording wrapper is always outermost, so it sees what the
 * engine asked for.
 */
function build(wrap: (memory: CacheStore) => CacheStore = (memory) => memory) {
  const clock = fakeClock();
  const memory = createMemoryStore({ now: clock.now });
  const store = spyStore(wrap(memory));
  // No jitter (random() = 0.5 is the middle of ±10 %): every TTL below is exact.
  const entries = createEntryFactory({ config, now: clock.now, random: () => 0.5 });
  const specs = createEntitySpecs({ keys, repositories: fixture.repositories, config });
  const lookups: [entity: string, outcome: LookupOutcome, count: number][] = [];
  const storeErrors: string[] = [];
  const cache = createCacheAside({
    store,
    config,
    entries,
    logger,
    now: clock.now,
    events: {
      lookup: (entity, outcome, count) => lookups.push([entity, outcome, count]),
      storeError: (_error, operation) => storeErrors.push(operation),
    },
  });
  const keyOf = (id: number) => specs.profile.keyOf(id);
  return {
    clock,
    memory,
    store,
    entries,
    lookups,
    storeErrors,
    keyOf,
    /** One batch of profile ids, with its own report, as one DataLoader batch of one request. */
    async read(ids: readonly number[]) {
      const report = new CacheReport();
      const values = await cache.read(specs.profile, ids, report);
      return { values, report, outcomes: report.lookups.map((l) => l.outcome) };
    },
    /** What the memory store holds for each id: kind and version, or undefined. */
    async held(ids: readonly number[]) {
      const found = await memory.getMany(ids.map(keyOf));
      return found.map((e) => (e === undefined ? undefined : { kind: e.kind, version: e.version }));
    },
  };
}

/** `[userId, version]` of each answered profile, `null` for no row, the Error's name for a failure. */
function versionsOf(values: readonly (ProfileRow | null | Error)[]) {
  return values.map((v) => (v === null ? null : v instanceof Error ? v.name : [v.userId, v.version]));
}

const profileLoads = (id?: number) =>
  loads.filter((l) => l.query === 'profiles' && (id === undefined || l.ids.includes(id)));

describe('cache-aside over the memory store', () => {
  test('a cold batch: one getMany for the whole batch, one SQL statement for the misses only, then fills', async () => {
    const t = build();
    await t.read([1, 2]);
    t.store.spy.reset();
    loads.length = 0;

    const { values, report, outcomes } = await t.read([1, 2, 3, 4]);

    expect(versionsOf(values)).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
    expect(outcomes).toEqual(['hit', 'hit', 'miss', 'miss']);
    expect(report.stored).toBe(2);
    // One SQL statement, for the two ids the cache did not have.
    expect(loads).toEqual([{ query: 'profiles', ids: [3, 4] }]);
    // The batch's lookup is one getMany for all four keys; the rest is the miss resolver working on
    // the two misses only: lock them and re-read them in the same step (another instance may have
    // filled them meanwhile), then fill under the grant the locks are, which releases them. Three
    // round trips for a cold batch.
    expect(t.store.spy.calls).toEqual([
      { method: 'getMany', keys: [1, 2, 3, 4].map(t.keyOf) },
      { method: 'acquireLocks', keys: [3, 4].map(t.keyOf) },
      { method: 'fillMany', keys: [3, 4].map(t.keyOf) },
    ]);
    expect(await t.held([3, 4])).toEqual([
      { kind: 'value', version: 1 },
      { kind: 'value', version: 1 },
    ]);
    // Logical TTL 1 h, physical TTL 1 h + the stale grace; no lock left behind.
    const [entry] = await t.memory.getMany([t.keyOf(3)]);
    expect(entry!.staleAt).toBe(t.clock.now() + TTL_MS);
    expect(await t.memory.ttlMany([t.keyOf(3), lockKeyOf(t.keyOf(3)), lockKeyOf(t.keyOf(4))])).toEqual([
      TTL_MS + GRACE_MS,
      -1,
      -1,
    ]);
  });

  test('a warm batch is one getMany and no SQL, and reports the remaining TTL', async () => {
    const t = build();
    await t.read([5, 6, 7]);
    t.store.spy.reset();
    loads.length = 0;
    t.clock.advance(1_000);

    const { values, report, outcomes } = await t.read([5, 6, 7]);

    expect(versionsOf(values)).toEqual([
      [5, 1],
      [6, 1],
      [7, 1],
    ]);
    expect(outcomes).toEqual(['hit', 'hit', 'hit']);
    expect(report.lookups.map((l) => l.ttlMs)).toEqual([TTL_MS - 1_000, TTL_MS - 1_000, TTL_MS - 1_000]);
    expect(report.lookups.map((l) => l.tier)).toEqual(Array(3).fill('cacheside-memory'));
    expect(report.stored).toBe(0);
    expect(loads).toEqual([]);
    expect(t.store.spy.methods()).toEqual(['getMany']);
  });

  test('an unknown id becomes a negative entry, a negative_hit next time, and a miss after the negative TTL', async () => {
    const t = build();
    const first = await t.read([1, UNKNOWN]);
    expect(versionsOf(first.values)).toEqual([[1, 1], null]);
    expect(first.outcomes).toEqual(['miss', 'miss']);
    expect(await t.held([UNKNOWN])).toEqual([{ kind: 'negative', version: 0 }]);
    loads.length = 0;

    const second = await t.read([1, UNKNOWN]);
    expect(versionsOf(second.values)).toEqual([[1, 1], null]);
    expect(second.outcomes).toEqual(['hit', 'negative_hit']);
    expect(loads).toEqual([]);

    // Negative entries live 60 s, values 1 h: only the unknown id goes back to PostgreSQL.
    t.clock.advance(NEGATIVE_TTL_MS);
    const third = await t.read([1, UNKNOWN]);
    expect(third.outcomes).toEqual(['hit', 'miss']);
    expect(loads).toEqual([{ query: 'profiles', ids: [UNKNOWN] }]);
    // A negative entry has no stale grace: it is gone with its TTL, so the refill is a new store.
    expect(third.report.stored).toBe(1);
    expect((await t.read([UNKNOWN])).outcomes).toEqual(['negative_hit']);
    expect(loads).toHaveLength(1);
  });

  test('single flight: two concurrent reads of one cold key load it once; the second is collapsed', async () => {
    const t = build();
    const held = gate();
    hooks.before = (query, ids) => (query === 'profiles' && ids.includes(8) ? held.wait() : undefined);

    const first = t.read([8]);
    await held.reached; // the first read is inside its load, lock taken, flight registered
    const second = t.read([8]);
    await settle(); // lets the second read's store lookup and flight check run (memory store: no I/O)
    // The second read looked the key up (a miss: nothing is filled yet) and did not take a lock.
    expect(t.store.spy.methods()).toEqual(['getMany', 'acquireLocks', 'getMany']);
    held.open();

    const [a, b] = await Promise.all([first, second]);
    expect(versionsOf(a.values)).toEqual([[8, 1]]);
    expect(versionsOf(b.values)).toEqual([[8, 1]]);
    expect(a.outcomes).toEqual(['miss']);
    expect(b.outcomes).toEqual(['collapsed']);
    expect(profileLoads(8)).toHaveLength(1);
    // The second read joined this instance's flight: it never asked for the lock, never waited for a
    // fill notification.
    expect(t.store.spy.count('acquireLocks')).toBe(1);
    expect(t.store.spy.count('onFill')).toBe(0);
    expect(b.report.stored).toBe(0);
  });

  test('a refill of an unchanged row (renewed, not stored anew) still answers a read that joined it after its load began', async () => {
    const t = build();
    const userId = 9;
    await t.read([userId]);
    t.clock.advance(TTL_MS + 1); // past staleAt, within the grace: the entry is still held
    const held = gate();
    // The refill has its row and is paused before it fills.
    hooks.after = (query, ids) => (query === 'profiles' && ids.includes(userId) ? held.wait() : undefined);
    const first = t.read([userId]);
    await held.reached;
    delete hooks.after;
    t.store.spy.reset();
    // A second read begins after the refill's load was issued: it may use the flight only because its
    // fill, sent after it joined, happens under the grant.
    const second = t.read([userId]);
    await settle();
    held.open();
    const [a, b] = await Promise.all([first, second]);

    expect(versionsOf(a.values)).toEqual([[userId, 1]]);
    expect(versionsOf(b.values)).toEqual([[userId, 1]]);
    // The fill renewed the held version 1: stored as far as the request can tell (Cache-Status)…
    expect(a.report.stored).toBe(1);
    // …and good for the joiner, which asks for no lock of its own (before 'renewed' it did:
    // getMany, fillMany, acquireLocks, releaseLocks).
    expect(b.outcomes).toEqual(['collapsed']);
    expect(t.store.spy.methods()).toEqual(['getMany', 'fillMany']);
    expect(profileLoads(userId)).toHaveLength(2);
    const [entry] = await t.memory.getMany([t.keyOf(userId)]);
    expect(entry!.staleAt).toBe(t.clock.now() + TTL_MS);
  });

  test('race 2: a read that saw a tombstone refuses a joined flight whose result is older, and loads itself', async () => {
    const t = build();
    const userId = 21;
    const held = gate();
    // The first read has version 1 of the row in hand and is paused before it fills.
    hooks.after = (query, ids) => (query === 'profiles' && ids.includes(userId) ? held.wait() : undefined);
    const first = t.read([userId]);
    await held.reached;
    delete hooks.after;

    // Meanwhile a write commits version 2 (a trigger bumps the version) and its tombstone reaches
    // the store, as the outbox relay would put it there.
    const [row] = rowsOf<{ version: number }>(
      await fixture.testDb.database.db.execute(
        sql`update profiles set bio = 'changed by race 2' where user_id = ${userId} returning version`,
      ),
    );
    expect(Number(row!.version)).toBe(2);
    expect(await t.memory.setMany([t.entries.tombstone(t.keyOf(userId), 2)])).toEqual([true]);

    // A second read starts after the write: it sees the tombstone and finds the first read's flight.
    const second = t.read([userId]);
    await settle();
    expect(t.store.spy.count('getMany')).toBe(2); // first's lookup, second's lookup (re-reads ride on the locks)
    held.open();

    const [a, b] = await Promise.all([first, second]);
    // The first read started before the write: version 1 is a correct answer for it, but its fill
    // is refused by the tombstone's fence.
    expect(versionsOf(a.values)).toEqual([[userId, 1]]);
    expect(a.report.stored).toBe(0);
    // The second read must not get version 1: it loaded again, and its fill landed.
    expect(versionsOf(b.values)).toEqual([[userId, 2]]);
    expect(b.outcomes).toEqual(['miss']);
    expect(b.report.stored).toBe(1);
    expect(profileLoads(userId)).toHaveLength(2);
    expect(await t.held([userId])).toEqual([{ kind: 'value', version: 2 }]);
  });

  test('a store that fails answers the batch from PostgreSQL as bypass, in one SQL statement', async () => {
    let chaos!: ChaosStore;
    const t = build((memory) => (chaos = createChaosStore(memory)));
    chaos.chaos.failAll();

    const { values, report, outcomes } = await t.read([1, 2, UNKNOWN]);

    expect(versionsOf(values)).toEqual([[1, 1], [2, 1], null]);
    expect(outcomes).toEqual(['bypass', 'bypass', 'bypass']);
    expect(report.bypassed).toBe(3);
    expect(report.stored).toBe(0);
    expect(loads).toEqual([{ query: 'profiles', ids: [1, 2, UNKNOWN] }]);
    expect(t.storeErrors).toEqual(['getMany']);
    // After the failed lookup the store is not tried again for this batch.
    expect(chaos.chaos.injected).toBe(1);
    expect(t.store.spy.methods()).toEqual(['getMany']);
    expect(t.lookups).toEqual([['profile', 'bypass', 3]]);
  });

  test('a store that fails after the lookup: hits stay hits, the misses come from PostgreSQL as bypass', async () => {
    let chaos!: ChaosStore;
    const t = build((memory) => (chaos = createChaosStore(memory)));
    await t.read([1]);
    loads.length = 0;
    chaos.chaos.failNext(1, undefined, { methods: ['acquireLocks'] });

    const { values, outcomes } = await t.read([1, 9]);

    expect(versionsOf(values)).toEqual([
      [1, 1],
      [9, 1],
    ]);
    expect(outcomes).toEqual(['hit', 'bypass']);
    expect(loads).toEqual([{ query: 'profiles', ids: [9] }]);
    expect(t.storeErrors).toEqual(['resolveMisses']);
    expect(chaos.chaos.injected).toBe(1);
  });

  test('the lookup event is called once per outcome and batch, with the count', async () => {
    const t = build();
    await t.read([1, 2, 9_998]);
    t.lookups.length = 0;

    // 2 hits, 1 negative hit, 3 misses (two cold rows and one cold unknown id).
    const { report } = await t.read([1, 3, 9_998, 2, 4, 9_997]);

    expect([...t.lookups].sort()).toEqual([
      ['profile', 'hit', 2],
      ['profile', 'miss', 3],
      ['profile', 'negative_hit', 1],
    ]);
    // The report still has one record per id, in the batch's order.
    expect(report.lookups.map((l) => [l.key, l.outcome])).toEqual([
      [t.keyOf(1), 'hit'],
      [t.keyOf(3), 'miss'],
      [t.keyOf(9_998), 'negative_hit'],
      [t.keyOf(2), 'hit'],
      [t.keyOf(4), 'miss'],
      [t.keyOf(9_997), 'miss'],
    ]);
  });
});
