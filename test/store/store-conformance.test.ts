/**
 * One conformance suite for every CacheStore driver (store.ts is the contract): the Redis driver
 * against the real Redis at REDIS_URL, the memory driver, and the chaos wrapper while healthy. Then
 * what only one of them has: Redis' wire behaviour (round trips, TTLs of every key, shared
 * subscriptions, faults of a private server) and the chaos controls.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createChaosStore } from '../support/chaos-store.js';
import { StoreReplyError, StoreTimeoutError, StoreUnavailableError } from '../../src/cache/store/errors.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { fillChannelOf, lockKeyOf } from '../../src/cache/store/key-names.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { createRedisConnections, type RedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import type { CacheEntry, CacheStore, CacheWrite, EntryKind } from '../../src/cache/store/contract.js';
import {
  purgePrefixAfterAll,
  REDIS_URL,
  scanKeys,
  startPrivateRedis,
  startPrivateRedisCluster,
  uniquePrefix,
} from '../support/redis.js';

const PREFIX = uniquePrefix('store');
purgePrefixAfterAll(PREFIX);
const cacheKeys = createCacheKeys(PREFIX);
let lastId = 0;
/** A key no other test has touched, shaped like a real one. */
const freshKey = () => cacheKeys.entity('profile', ++lastId);

interface Harness {
  readonly store: CacheStore;
  /** Another client of the same data, as a second server instance would be. */
  readonly peer: CacheStore;
  /**
   * Runs `operation` and counts its round trips: the most requests any one server received from
   * `store` meanwhile (socket writes per node on Redis, calls in memory).
   */
  measure<T>(operation: () => Promise<T>): Promise<{ result: T; roundTrips: number }>;
  /** Lets `ms` of store time pass: real time on Redis, the fake clock of the memory store. */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

describeStoreConformance('redis', () => redisHarness(REDIS_URL));
describeStoreConformance('redis cluster (private, 3 masters)', clusterHarness);
describeStoreConformance('memory', async () => memoryHarness());
describeStoreConformance('chaos(memory), healthy', async () => {
  const inner = memoryHarness();
  const store = createChaosStore(inner.store);
  return { ...inner, store, peer: store };
});

function describeStoreConformance(name: string, factory: () => Promise<Harness>): void {
  describe(`CacheStore conformance: ${name}`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await factory();
    });
    afterAll(async () => {
      await h.close();
    });

    describe('getMany', () => {
      it('answers in the order asked, undefined for missing keys, in one round trip', async () => {
        const keys = Array.from({ length: 30 }, freshKey);
        await h.store.setMany(keys.filter((_, i) => i % 3 !== 0).map((key, i) => write(key, 'value', i + 1)));
        const { result: entries, roundTrips } = await h.measure(() => h.store.getMany([...keys].reverse()));
        expect(roundTrips).toBe(1);
        expect(entries).toHaveLength(30);
        [...keys].reverse().forEach((key, i) => {
          const expected = keys.indexOf(key) % 3 === 0 ? undefined : 'value';
          expect(entries[i]?.kind).toBe(expected);
        });
      });

      it('reads nothing for no keys, and a repeated key twice', async () => {
        expect(await h.store.getMany([])).toEqual([]);
        const key = freshKey();
        await h.store.setMany([write(key, 'value', 3)]);
        const [a, b] = await h.store.getMany([key, key]);
        expect(a?.version).toBe(3);
        expect(b?.version).toBe(3);
      });
    });

    describe('setMany fence', () => {
      // [held, written, landed, what the key holds afterwards]
      const cases: [Held | null, Held, boolean, Held][] = [
        [null, ['value', 1], true, ['value', 1]],
        [['value', 5], ['value', 6], true, ['value', 6]],
        [['value', 5], ['value', 4], false, ['value', 5]],
        [['value', 5], ['value', 5], false, ['value', 5]],
        [['value', 5], ['negative', 6], true, ['negative', 6]],
        [['negative', 3], ['value', 4], true, ['value', 4]],
        [['negative', 3], ['negative', 3], false, ['negative', 3]],
        [['negative', 3], ['value', 2], false, ['negative', 3]],
        [['tombstone', 5], ['value', 4], false, ['tombstone', 5]],
        [['tombstone', 5], ['value', 5], true, ['value', 5]],
        [['tombstone', 5], ['value', 6], true, ['value', 6]],
        [['tombstone', 5], ['negative', 5], true, ['negative', 5]],
        [['tombstone', 5], ['tombstone', 4], false, ['tombstone', 5]],
        [['tombstone', 5], ['tombstone', 5], false, ['tombstone', 5]],
        [['tombstone', 5], ['tombstone', 6], true, ['tombstone', 6]],
        [['value', 5], ['tombstone', 6], true, ['tombstone', 6]],
        [['value', 5], ['tombstone', 5], false, ['value', 5]],
        [['value', 5], ['tombstone', 4], false, ['value', 5]],
        [['negative', 0], ['tombstone', 1], true, ['tombstone', 1]],
      ];

      it('applies every rule of store.ts, per key, in one round trip', async () => {
        const keys = cases.map(freshKey);
        const held = cases.flatMap(([h0], i) => (h0 ? [write(keys[i]!, h0[0], h0[1], { marker: 1 })] : []));
        expect(await h.store.setMany(held)).toEqual(held.map(() => true));

        const writes = cases.map(([, w], i) => write(keys[i]!, w[0], w[1], { marker: 2 }));
        const { result: landed, roundTrips } = await h.measure(() => h.store.setMany(writes));
        expect(roundTrips).toBe(1);
        expect(landed).toEqual(cases.map(([, , l]) => l));

        const entries = await h.store.getMany(keys);
        cases.forEach(([, , wasLanded, [kind, version]], i) => {
          const entry = entries[i];
          expect({ case: i, kind: entry?.kind, version: entry?.version }).toEqual({ case: i, kind, version });
          // The payload tells which write is held: the new one only if it landed.
          if (kind === 'value') expect([...entry!.payload]).toEqual([wasLanded ? 2 : 1]);
          else expect(entry!.payload).toHaveLength(0);
        });
      });

      it('renews staleAt and TTL of the held entry on a refill at an equal version', async () => {
        const [value, negative] = [freshKey(), freshKey()];
        await h.store.setMany([
          write(value, 'value', 7, { marker: 1, staleAt: 1000, ttlMs: 10_000 }),
          write(negative, 'negative', 7, { staleAt: 1000, ttlMs: 10_000 }),
        ]);
        const renewed = await h.store.setMany([
          write(value, 'value', 7, { marker: 2, staleAt: 5000, ttlMs: 600_000 }),
          write(negative, 'negative', 7, { staleAt: 5000, ttlMs: 600_000 }),
        ]);
        expect(renewed).toEqual([false, false]);
        const [v, n] = await h.store.getMany([value, negative]);
        expect([v?.staleAt, [...v!.payload], n?.staleAt]).toEqual([5000, [1], 5000]);
        for (const ttl of await h.store.ttlMany([value, negative])) {
          expect(ttl).toBeGreaterThan(10_000);
          expect(ttl).toBeLessThanOrEqual(600_000);
        }
      });

      it('leaves the held entry untouched, expiry included, under a tombstone of its own version', async () => {
        const [value, negative] = [freshKey(), freshKey()];
        await h.store.setMany([
          write(value, 'value', 7, { marker: 1, staleAt: 1000, ttlMs: 600_000 }),
          write(negative, 'negative', 7, { staleAt: 1000, ttlMs: 600_000 }),
        ]);
        const duplicate = await h.store.setMany([
          write(value, 'tombstone', 7, { staleAt: 5000, ttlMs: 5_000 }),
          write(negative, 'tombstone', 7, { staleAt: 5000, ttlMs: 5_000 }),
        ]);
        expect(duplicate).toEqual([false, false]);
        const [v, n] = await h.store.getMany([value, negative]);
        expect([v?.kind, v?.staleAt, [...v!.payload], n?.kind, n?.staleAt]).toEqual([
          'value',
          1000,
          [1],
          'negative',
          1000,
        ]);
        for (const ttl of await h.store.ttlMany([value, negative])) expect(ttl).toBeGreaterThan(5_000);
      });

      it('applies writes of one call in order, so a repeated key sees the earlier write', async () => {
        const [up, down] = [freshKey(), freshKey()];
        expect(await h.store.setMany([write(up, 'value', 1), write(up, 'value', 2)])).toEqual([true, true]);
        expect(await h.store.setMany([write(down, 'value', 2), write(down, 'value', 1)])).toEqual([
          true,
          false,
        ]);
        expect((await h.store.getMany([up, down])).map((e) => e?.version)).toEqual([2, 2]);
      });

      it('lets a tombstone fence a fill that read an older version, and admit one that read it', async () => {
        const key = freshKey();
        await h.store.setMany([write(key, 'value', 3)]);
        // An invalidation after version 4 committed, then a fill that started before it lands late.
        expect(await h.store.setMany([write(key, 'tombstone', 4, { ttlMs: 5000 })])).toEqual([true]);
        expect(await h.store.setMany([write(key, 'value', 3)])).toEqual([false]);
        expect((await h.store.getMany([key]))[0]).toMatchObject({ kind: 'tombstone', version: 4 });
        expect(await h.store.setMany([write(key, 'value', 4, { marker: 9 })])).toEqual([true]);
        const [entry] = await h.store.getMany([key]);
        expect([entry?.kind, entry?.version, [...entry!.payload]]).toEqual(['value', 4, [9]]);
      });

      it('refuses values outside the contract with a TypeError', async () => {
        const key = freshKey();
        for (const bad of [
          write(key, 'value', -1),
          write(key, 'value', 1.5),
          write(key, 'value', Number.MAX_SAFE_INTEGER + 1),
          write(key, 'value', 1, { ttlMs: 0 }),
          write(key, 'value', 1, { ttlMs: 1.5 }),
          write(key, 'value', 1, { staleAt: -1 }),
          {
            ...write(key, 'value', 1),
            entry: { ...write(key, 'value', 1).entry, kind: 'other' as EntryKind },
          },
        ]) {
          await expect(h.store.setMany([bad])).rejects.toThrow(TypeError);
        }
        expect(await h.store.getMany([key])).toEqual([undefined]);
      });
    });

    describe('entries', () => {
      it('round-trips negative entries and tombstones with empty payloads', async () => {
        const [negative, tombstone] = [freshKey(), freshKey()];
        await h.store.setMany([
          write(negative, 'negative', 0, { staleAt: 1234 }),
          write(tombstone, 'tombstone', 12, { staleAt: 5678 }),
        ]);
        const entries = await h.store.getMany([negative, tombstone]);
        expect(entries.map((e) => e && { ...e, payload: [...e.payload] })).toEqual([
          { kind: 'negative', version: 0, staleAt: 1234, payload: [] },
          { kind: 'tombstone', version: 12, staleAt: 5678, payload: [] },
        ]);
      });

      it('round-trips every byte value, a payload that looks like a header, and a large payload', async () => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        const headerLike = new TextEncoder().encode('v:99:99:t:1:2:\r\n');
        const large = new Uint8Array(randomBytes(2 * 1024 * 1024));
        const keys = [freshKey(), freshKey(), freshKey(), freshKey()];
        const payloads = [all, headerLike, large, new Uint8Array(0)];
        await h.store.setMany(keys.map((key, i) => write(key, 'value', 1, { payload: payloads[i] })));
        const entries = await h.store.getMany(keys);
        entries.forEach((entry, i) => {
          expect(entry?.payload).toBeInstanceOf(Uint8Array);
          expect(Buffer.from(entry!.payload).equals(Buffer.from(payloads[i]!))).toBe(true);
        });
      });

      it('keeps versions up to 2^53 - 1 exact, and fences by them', async () => {
        const key = freshKey();
        const max = Number.MAX_SAFE_INTEGER;
        const far = Date.UTC(2999, 0, 1);
        expect(await h.store.setMany([write(key, 'value', max, { staleAt: far })])).toEqual([true]);
        expect((await h.store.getMany([key]))[0]).toMatchObject({ version: max, staleAt: far });
        expect(await h.store.setMany([write(key, 'value', max - 1)])).toEqual([false]);
        expect(await h.store.setMany([write(key, 'tombstone', max)])).toEqual([false]);
        expect((await h.store.getMany([key]))[0]?.version).toBe(max);
      });

      it('gives every key it writes a TTL > 0 and <= the one requested', async () => {
        const writes = [
          write(freshKey(), 'value', 1, { ttlMs: 3_600_000 }),
          write(freshKey(), 'negative', 1, { ttlMs: 60_000 }),
          write(freshKey(), 'tombstone', 1, { ttlMs: 5_000 }),
        ];
        await h.store.setMany(writes);
        const lockOf = freshKey();
        await h.store.acquireLocks([lockOf], 'token', 2_000);
        const ttls = await h.store.ttlMany([...writes.map((w) => w.key), lockKeyOf(lockOf), freshKey()]);
        [...writes.map((w) => w.ttlMs), 2_000].forEach((requested, i) => {
          expect(ttls[i]).toBeGreaterThan(0);
          expect(ttls[i]).toBeLessThanOrEqual(requested);
        });
        expect(ttls[4]).toBe(-1);
      });

      it('forgets a key once its TTL has passed', async () => {
        const key = freshKey();
        await h.store.setMany([write(key, 'value', 1, { ttlMs: 40 })]);
        await h.elapse(100);
        expect(await h.store.getMany([key])).toEqual([undefined]);
        expect(await h.store.ttlMany([key])).toEqual([-1]);
        // Expired, it fences nothing.
        expect(await h.store.setMany([write(key, 'value', 0)])).toEqual([true]);
      });
    });

    describe('locks', () => {
      it('lets exactly one of many concurrent acquirers win', async () => {
        const key = freshKey();
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? h.peer : h.store).acquireLocks([key], `token-${i}`, 5000),
          ),
        );
        expect(results.filter(([won]) => won)).toHaveLength(1);
      });

      it('acquires per key in one round trip, next to keys already locked', async () => {
        const keys = [freshKey(), freshKey(), freshKey()];
        expect(await h.peer.acquireLocks([keys[1]!], 'other', 5000)).toEqual([true]);
        const acquired = await h.measure(() => h.store.acquireLocks(keys, 'mine', 5000));
        expect(acquired).toEqual({ result: [true, false, true], roundTrips: 1 });
        expect(await h.store.releaseLocks(keys, 'mine')).toEqual([true, false, true]);
        expect(await h.store.acquireLocks([keys[1]!], 'mine', 5000)).toEqual([false]);
      });

      it("never lets a holder whose lock expired release the next holder's lock", async () => {
        const key = freshKey();
        expect(await h.store.acquireLocks([key], 'first', 40)).toEqual([true]);
        await h.elapse(100);
        expect(await h.peer.acquireLocks([key], 'second', 60_000)).toEqual([true]);
        // The first holder finishes late and releases "its" lock: it must not free the second's.
        expect(await h.store.releaseLocks([key], 'first')).toEqual([false]);
        expect(await h.store.acquireLocks([key], 'third', 60_000)).toEqual([false]);
        expect(await h.peer.releaseLocks([key], 'second')).toEqual([true]);
        expect(await h.store.acquireLocks([key], 'third', 60_000)).toEqual([true]);
      });

      it('refuses an empty token or a non-positive TTL', async () => {
        await expect(h.store.acquireLocks([freshKey()], '', 1000)).rejects.toThrow(TypeError);
        await expect(h.store.acquireLocks([freshKey()], 'token', 0)).rejects.toThrow(TypeError);
        await expect(h.store.releaseLocks([freshKey()], '')).rejects.toThrow(TypeError);
      });
    });

    describe('fill notifications', () => {
      it('notifies the waiters of every key whose lock was released, and only those', async () => {
        const id = ++lastId;
        // `notHeld` and `first` share a hash tag, hence a server even on a cluster, where announcements
        // from one server arrive in order: had `notHeld` been announced, it would arrive before `first`.
        const [notHeld, first, second] = [
          cacheKeys.entity('user', id),
          cacheKeys.entity('userPosts', id),
          freshKey(),
        ];
        const heard: string[] = [];
        const arrived = deferred();
        for (const key of [notHeld, first, second]) {
          await h.peer.onFill(key, (filled) => {
            heard.push(filled);
            if (heard.includes(first) && heard.includes(second)) arrived.resolve();
          });
        }
        await h.store.acquireLocks([first, second], 'filler', 5000);
        expect(await h.store.releaseLocks([notHeld, first, second], 'filler')).toEqual([false, true, true]);
        await arrived.promise;
        expect([...heard].sort()).toEqual([first, second].sort());
      });

      it('resolves onFill only once the subscription is active', async () => {
        const key = freshKey();
        const filled = deferred<string>();
        await h.store.onFill(key, filled.resolve);
        // No pause: a fill landing right after onFill resolved must be heard.
        await h.peer.acquireLocks([key], 'filler', 5000);
        await h.peer.releaseLocks([key], 'filler');
        expect(await filled.promise).toBe(key);
      });

      it("shares a key's subscription between waiters until the last one leaves", async () => {
        const id = ++lastId;
        // Same hash tag, same server: the sentinel's fill cannot overtake the key's, even on a cluster.
        const [key, sentinel] = [cacheKeys.entity('user', id), cacheKeys.entity('userPosts', id)];
        const counts = { a: 0, b: 0 };
        const b = deferred();
        const leaveA = await h.store.onFill(key, () => (counts.a += 1));
        const leaveB = await h.store.onFill(key, () => {
          counts.b += 1;
          b.resolve();
        });
        await leaveA();
        await fill(h.peer, key);
        await b.promise;
        expect(counts).toEqual({ a: 0, b: 1 });

        await leaveB();
        await leaveB(); // idempotent: must not remove another waiter's share
        const sentinelHeard = deferred();
        const leaveSentinel = await h.store.onFill(sentinel, () => sentinelHeard.resolve());
        await fill(h.peer, key);
        await fill(h.peer, sentinel);
        await sentinelHeard.promise;
        expect(counts).toEqual({ a: 0, b: 1 });
        await leaveSentinel();
      });
    });

    describe('publish / subscribe', () => {
      it('delivers messages to every subscriber until it unsubscribes', async () => {
        const channel = `${PREFIX}:events:${++lastId}`;
        const heard = { leaving: [] as [string, string][], staying: [] as string[] };
        let arrived = deferred();
        const leave = await h.store.subscribe(channel, (ch, message) => heard.leaving.push([ch, message]));
        const stay = await h.store.subscribe(channel, (_ch, message) => {
          heard.staying.push(message);
          arrived.resolve();
        });
        await h.peer.publish(channel, '{"entity":"profile","id":1,"version":2}');
        await arrived.promise;
        await leave();

        // The staying subscriber hears the next message; the one that left must not.
        arrived = deferred();
        await h.peer.publish(channel, 'after unsubscribe');
        await arrived.promise;
        expect(heard).toEqual({
          leaving: [[channel, '{"entity":"profile","id":1,"version":2}']],
          staying: ['{"entity":"profile","id":1,"version":2}', 'after unsubscribe'],
        });
        await stay();
      });
    });

    describe('purgePrefix', () => {
      it('removes every key under a prefix, in batches, and nothing else', async () => {
        const purged = `${PREFIX}:purge-${name.replace(/\W/g, '')}:a:`;
        const kept = `${PREFIX}:purge-${name.replace(/\W/g, '')}:b:`;
        const writes = [
          ...Array.from({ length: 1200 }, (_, i) => write(`${purged}{${i}}`, 'value', 1)),
          ...Array.from({ length: 10 }, (_, i) => write(`${kept}{${i}}`, 'value', 1)),
        ];
        await h.store.setMany(writes);
        await h.store.acquireLocks([`${purged}{0}`, `${purged}{1}`], 'token', 60_000);
        expect(await h.store.purgePrefix(purged)).toBe(1202);
        const entries = await h.store.getMany(writes.map((w) => w.key));
        expect(entries.slice(0, 1200).filter(Boolean)).toHaveLength(0);
        expect(entries.slice(1200).filter(Boolean)).toHaveLength(10);
        expect(await h.store.acquireLocks([`${purged}{0}`], 'other', 1000)).toEqual([true]);
        expect(await h.store.purgePrefix(`${purged}nothing-here:`)).toBe(0);
      });

      it('treats glob characters in the prefix literally and refuses an empty one', async () => {
        const base = `${PREFIX}:glob-${name.replace(/\W/g, '')}:`;
        await h.store.setMany([write(`${base}a*{1}`, 'value', 1), write(`${base}ab{1}`, 'value', 1)]);
        expect(await h.store.purgePrefix(`${base}a*`)).toBe(1);
        expect((await h.store.getMany([`${base}ab{1}`]))[0]?.kind).toBe('value');
        await expect(h.store.purgePrefix('')).rejects.toThrow(TypeError);
      });
    });

    describe('close', () => {
      it('is idempotent, and later calls reject with StoreUnavailableError', async () => {
        const own = await factory();
        await own.close();
        await own.close();
        await expect(own.store.getMany([freshKey()])).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(own.store.setMany([write(freshKey(), 'value', 1)])).rejects.toMatchObject({
          code: 'CACHE_STORE_UNAVAILABLE',
        });
      });
    });
  });
}

describe('Redis driver on the wire', () => {
  let h: Harness;
  let connections: RedisConnections;
  beforeAll(async () => {
    h = await redisHarness(REDIS_URL, (c) => (connections = c));
  });
  afterAll(async () => {
    await h.close();
  });

  it('leaves no key without a TTL: entries, tombstones and locks', async () => {
    const keys = [freshKey(), freshKey(), freshKey()];
    await h.store.setMany([write(keys[0]!, 'value', 1), write(keys[1]!, 'tombstone', 1, { ttlMs: 5000 })]);
    await h.store.setMany([write(keys[0]!, 'value', 1, { ttlMs: 7_200_000 })]); // an equal-version renewal
    await h.store.acquireLocks([keys[2]!], 'token', 5000);
    const scanned = await scanKeys(cacheKeys.namespace);
    expect(scanned.length).toBeGreaterThanOrEqual(3);
    for (const { key, ttlMs } of scanned) expect({ key, ttlMs: ttlMs > 0 }).toEqual({ key, ttlMs: true });
  });

  it('subscribes to a key once on the server however many local waiters share it', async () => {
    const key = freshKey();
    const leave = await Promise.all([1, 2, 3].map(() => h.store.onFill(key, () => {})));
    expect(await numsub(connections.command as Redis, fillChannelOf(key))).toBe(1);
    for (const unsubscribe of leave) await unsubscribe();
    expect(await numsub(connections.command as Redis, fillChannelOf(key))).toBe(0);
  });

  it('reads a foreign value as a miss and overwrites it on the next fill', async () => {
    const key = freshKey();
    await (connections.command as Redis).set(key, 'not ours', 'PX', 60_000);
    expect(await h.store.getMany([key])).toEqual([undefined]);
    expect(await h.store.setMany([write(key, 'value', 1)])).toEqual([true]);
    expect((await h.store.getMany([key]))[0]?.kind).toBe('value');
  });

  it('reports a throwing listener to onError and still calls the others', async () => {
    const errors: Error[] = [];
    const store = createRedisStore({
      connections: createRedisConnections({ url: REDIS_URL, commandTimeoutMs: 5000 }),
      onError: (error) => errors.push(error),
    });
    await expectListenerIsolation(store, errors);
    await store.close();
  });

  it('reports a Redis error reply as StoreReplyError with its cause', async () => {
    const key = freshKey();
    await (connections.command as Redis).hset(key, 'field', 'value');
    await (connections.command as Redis).pexpire(key, 60_000);
    const error = await h.store.setMany([write(key, 'value', 1)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreReplyError);
    expect(error).toMatchObject({
      code: 'CACHE_STORE_REPLY',
      cause: expect.objectContaining({ name: 'ReplyError' }),
    });
  });
});

describe('Redis driver faults (private redis-server)', () => {
  it('rejects with StoreTimeoutError while Redis hangs, and recovers when it answers again', async () => {
    const server = await startPrivateRedis();
    const errors: Error[] = [];
    const connections = createRedisConnections({
      url: server.url,
      commandTimeoutMs: 150,
      onError: (e) => errors.push(e),
    });
    const store = createRedisStore({ connections });
    try {
      const key = freshKey();
      await store.setMany([write(key, 'value', 1)]);
      server.pause();
      const error = await store.getMany([key]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreTimeoutError);
      expect(error).toMatchObject({ code: 'CACHE_STORE_TIMEOUT' });
      await expect(store.setMany([write(key, 'value', 2)])).rejects.toBeInstanceOf(StoreTimeoutError);
      server.resume();
      expect((await store.getMany([key]))[0]?.kind).toBe('value');
    } finally {
      server.resume();
      await store.close();
      await server.stop();
    }
  });

  it('fails fast with StoreUnavailableError while Redis is down, reporting errors without crashing', async () => {
    const server = await startPrivateRedis();
    const errors: Error[] = [];
    const connections = createRedisConnections({
      url: server.url,
      commandTimeoutMs: 5000,
      reconnectMaxDelayMs: 100,
      onError: (e) => errors.push(e),
    });
    const store = createRedisStore({ connections });
    try {
      await store.getMany([freshKey()]);
      await server.stop();
      await waitFor(() => connections.command.status !== 'ready');
      // Far less than the 5 s command timeout: nothing is queued while disconnected.
      const started = Date.now();
      const error = await store.getMany([freshKey()]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(4000);
      await expect(store.onFill(freshKey(), () => {})).rejects.toMatchObject({
        code: expect.stringMatching(/^CACHE_STORE_/),
      });
      await waitFor(() => errors.length > 0);
    } finally {
      await store.close();
      await server.stop();
    }
  });
  it('re-subscribes after Redis comes back, so events and fills are heard again', async () => {
    let server = await startPrivateRedis();
    const connections = createRedisConnections({
      url: server.url,
      commandTimeoutMs: 1000,
      reconnectMaxDelayMs: 100,
    });
    const store = createRedisStore({ connections });
    try {
      const key = freshKey();
      const heard: string[] = [];
      await store.subscribe('events', (_channel, message) => heard.push(message));
      await store.onFill(key, (filled) => heard.push(filled));
      await server.stop();
      server = await startPrivateRedis({ port: server.port });
      // Published messages are lost until the subscriber is back: publish until one is heard.
      const deadline = Date.now() + 15_000;
      while (!heard.includes('back') && Date.now() < deadline) {
        await store.publish('events', 'back').catch(() => {});
        await sleep(50);
      }
      expect(heard).toContain('back');
      await fill(store, key);
      await waitFor(() => heard.includes(key));
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

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
    await expectListenerIsolation(store, errors);
    await store.close();
  });
});

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

// Helpers:

type Held = [EntryKind, number];

function write(
  key: string,
  kind: EntryKind,
  version: number,
  options: { marker?: number; payload?: Uint8Array; staleAt?: number; ttlMs?: number } = {},
): CacheWrite {
  const payload =
    options.payload ?? (kind === 'value' ? Uint8Array.of(options.marker ?? 0) : new Uint8Array(0));
  const entry: CacheEntry = { kind, version, staleAt: options.staleAt ?? Date.now() + 60_000, payload };
  return { key, entry, ttlMs: options.ttlMs ?? 60_000 };
}

async function redisHarness(url: string, expose?: (c: RedisConnections) => void): Promise<Harness> {
  // A generous timeout: these tests assert answers, not speed, on a possibly busy machine.
  const connections = createRedisConnections({ url, commandTimeoutMs: 5000 });
  const peerConnections = createRedisConnections({ url, commandTimeoutMs: 5000 });
  await Promise.all([connections.ready(), peerConnections.ready()]);
  expose?.(connections);
  const store = createRedisStore({ connections });
  const peer = createRedisStore({ connections: peerConnections });
  return {
    store,
    peer,
    measure: countSocketWrites(() => [connections.command as Redis]),
    elapse: (ms) => sleep(ms),
    close: async () => {
      await Promise.all([store.close(), peer.close()]);
    },
  };
}

async function clusterHarness(): Promise<Harness> {
  const cluster = await startPrivateRedisCluster(3);
  const connections = createRedisConnections({ clusterNodes: cluster.seeds, commandTimeoutMs: 5000 });
  const peerConnections = createRedisConnections({ clusterNodes: cluster.seeds, commandTimeoutMs: 5000 });
  await Promise.all([connections.ready(), peerConnections.ready()]);
  const store = createRedisStore({ connections });
  const peer = createRedisStore({ connections: peerConnections });
  // Node connections open on first use; touch every slot's node so that each has a socket to count.
  await store.getMany(Array.from({ length: 64 }, (_, i) => `${PREFIX}:warm:{${i}}`));
  return {
    store,
    peer,
    measure: countSocketWrites(() => (connections.command as Cluster).nodes('master')),
    elapse: (ms) => sleep(ms),
    close: async () => {
      await Promise.all([store.close(), peer.close()]);
      await cluster.stop();
    },
  };
}

/** Counts socket writes (each one request: a command, or a whole pipeline) per connection. */
function countSocketWrites(clients: () => Redis[]): Harness['measure'] {
  const writes = new Map<Redis, number>();
  const instrumented = new WeakSet<object>();
  return async (operation) => {
    for (const client of clients()) {
      const socket = client.stream;
      if (!socket || instrumented.has(socket)) continue;
      instrumented.add(socket);
      const original = socket.write.bind(socket);
      socket.write = ((...args: Parameters<typeof original>) => {
        writes.set(client, (writes.get(client) ?? 0) + 1);
        return original(...args);
      }) as typeof socket.write;
    }
    const before = new Map(writes);
    const result = await operation();
    const deltas = [...writes].map(([client, count]) => count - (before.get(client) ?? 0));
    return { result, roundTrips: Math.max(0, ...deltas) };
  };
}

function memoryHarness(): Harness {
  let clock = Date.now();
  const inner = createMemoryStore({ now: () => clock });
  let calls = 0;
  const counted = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store: counted,
    peer: inner,
    measure: async (operation) => {
      const before = calls;
      const result = await operation();
      return { result, roundTrips: calls - before };
    },
    elapse: async (ms) => {
      clock += ms;
    },
    close: () => inner.close(),
  };
}

async function fill(store: CacheStore, key: string): Promise<void> {
  const token = `fill-${randomBytes(4).toString('hex')}`;
  expect(await store.acquireLocks([key], token, 5000)).toEqual([true]);
  expect(await store.releaseLocks([key], token)).toEqual([true]);
}

/** A fill listener that throws must neither break delivery to the others nor the process. */
async function expectListenerIsolation(store: CacheStore, errors: Error[]): Promise<void> {
  const key = freshKey();
  const heard = deferred();
  await store.onFill(key, () => {
    throw new Error('a listener bug');
  });
  await store.onFill(key, () => heard.resolve());
  await fill(store, key);
  await heard.promise;
  expect(errors.map((error) => error.message)).toEqual(['a listener bug']);
}

async function numsub(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Polls a condition that cannot be awaited (a connection's status), bounded so nothing hangs. */
async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
