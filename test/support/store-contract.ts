/**
 * The CacheStore contract (src/cache/store/contract.ts) as one suite that every driver's test file
 * runs once: `describeStoreContract(name, factory, keySpace)`. A driver passes it a `Harness` (two
 * clients of the same data, a round-trip counter, a clock) and the key space of its file; what only
 * one driver has stays in that driver's file (test/store/<driver>-store.test.ts), with the harness
 * builders only it uses. The shared ones are here: the memory harness and the socket-write counter.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/cache/store/errors.js';
import { createCacheKeys, type CacheKeys } from '../../src/cache/entities/keys.js';
import { lockKeyOf } from '../../src/cache/store/key-names.js';
import { createMemoryStore } from '../../src/cache/store/memory-store.js';
import { STORE_CALLS, aroundCalls, forwardStore } from '../../src/cache/store/layers/forward.js';
import type {
  CacheEntry,
  CacheStore,
  CacheWrite,
  EntryKind,
  LockAttempt,
} from '../../src/cache/store/contract.js';
import { uniquePrefix } from './redis.js';

export interface Harness {
  readonly store: CacheStore;
  /** Another client of the same data, as a second server instance would be. */
  readonly peer: CacheStore;
  /**
   * Runs `operation` and counts its round trips: the most requests any one server received from
   * `store` meanwhile (socket writes per node on Redis, calls in memory).
   */
  measure<T>(operation: () => Promise<T>): Promise<{ result: T; roundTrips: number }>;
  /** A Redis Cluster: calls whose keys span slots may take one round trip more (getDependent). */
  readonly cluster?: boolean;
  /** Lets `ms` of store time pass: real time on Redis, the fake clock of the memory store. */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** The keys one test file writes: all under a prefix no other file uses. */
export interface StoreKeySpace {
  /** The cache prefix (`uniquePrefix(label)`); every key below is `<prefix>:…`. */
  readonly prefix: string;
  readonly cacheKeys: CacheKeys;
  /** A key no other test of the file has touched, shaped like a real one. */
  freshKey(): string;
  /** An id no other test of the file has used, for keys and channels built by hand. */
  nextId(): number;
}

export function storeKeySpace(label: string): StoreKeySpace {
  const prefix = uniquePrefix(label);
  const cacheKeys = createCacheKeys(prefix);
  let lastId = 0;
  const nextId = () => ++lastId;
  return { prefix, cacheKeys, nextId, freshKey: () => cacheKeys.entity('profile', nextId()) };
}

/**
 * Registers the contract suite for one driver: `factory` builds a fresh harness (once for the suite,
 * and once more for the test of `close`); `keySpace` is the file's.
 */
export function describeStoreContract(
  name: string,
  factory: () => Promise<Harness>,
  keySpace: StoreKeySpace,
): void {
  const { prefix: PREFIX, cacheKeys, freshKey, nextId } = keySpace;
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
        expect(await h.store.setMany([write(key, 'tombstone', 4, { ttlMs: 60_000 })])).toEqual([true]);
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
          write(freshKey(), 'tombstone', 1, { ttlMs: 60_000 }),
        ];
        await h.store.setMany(writes);
        const lockOf = freshKey();
        await h.store.acquireLocks([lockOf], 'token', 60_000);
        const ttls = await h.store.ttlMany([...writes.map((w) => w.key), lockKeyOf(lockOf), freshKey()]);
        [...writes.map((w) => w.ttlMs), 60_000].forEach((requested, i) => {
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
            (i % 2 ? h.peer : h.store).acquireLocks([key], `token-${i}`, 60_000),
          ),
        );
        expect(results.filter(([attempt]) => attempt!.acquired)).toHaveLength(1);
      });

      it('acquires per key in one round trip, next to keys already locked', async () => {
        const keys = [freshKey(), freshKey(), freshKey()];
        expect(await won(h.peer.acquireLocks([keys[1]!], 'other', 60_000))).toEqual([true]);
        const acquired = await h.measure(() => won(h.store.acquireLocks(keys, 'mine', 60_000)));
        expect(acquired).toEqual({ result: [true, false, true], roundTrips: 1 });
        expect(await h.store.releaseLocks(keys, 'mine')).toEqual([true, false, true]);
        expect(await won(h.store.acquireLocks([keys[1]!], 'mine', 60_000))).toEqual([false]);
      });

      it('reads each key in the same step, whether its lock was taken or not', async () => {
        const [cached, tombstoned, absent, expired] = [freshKey(), freshKey(), freshKey(), freshKey()];
        await h.store.setMany([
          write(cached, 'value', 4),
          write(tombstoned, 'tombstone', 6),
          write(expired, 'value', 1, { ttlMs: 40 }),
        ]);
        await h.elapse(100);
        expect(await won(h.peer.acquireLocks([tombstoned], 'other', 60_000))).toEqual([true]);
        const keys = [cached, tombstoned, absent, expired];
        const { result, roundTrips } = await h.measure(() => h.store.acquireLocks(keys, 'mine', 60_000));
        expect(roundTrips).toBe(1);
        expect(result.map((a) => [a.acquired, a.entry?.kind, a.entry?.version])).toEqual([
          [true, 'value', 4],
          [false, 'tombstone', 6],
          [true, undefined, undefined],
          [true, undefined, undefined],
        ]);
        // The entry as getMany returns it, payload and all.
        expect(result[0]!.entry).toEqual((await h.store.getMany([cached]))[0]);
        await h.store.releaseLocks(keys, 'mine');
        await h.peer.releaseLocks([tombstoned], 'other');
      });

      it("never lets a holder whose lock expired release the next holder's lock", async () => {
        const key = freshKey();
        expect(await won(h.store.acquireLocks([key], 'first', 40))).toEqual([true]);
        await h.elapse(100);
        expect(await won(h.peer.acquireLocks([key], 'second', 60_000))).toEqual([true]);
        // The first holder finishes late and releases "its" lock: it must not free the second's.
        expect(await h.store.releaseLocks([key], 'first')).toEqual([false]);
        expect(await won(h.store.acquireLocks([key], 'third', 60_000))).toEqual([false]);
        expect(await h.peer.releaseLocks([key], 'second')).toEqual([true]);
        expect(await won(h.store.acquireLocks([key], 'third', 60_000))).toEqual([true]);
      });

      it('refuses an empty token or a non-positive TTL', async () => {
        await expect(h.store.acquireLocks([freshKey()], '', 1000)).rejects.toThrow(TypeError);
        await expect(h.store.acquireLocks([freshKey()], 'token', 0)).rejects.toThrow(TypeError);
        await expect(h.store.releaseLocks([freshKey()], '')).rejects.toThrow(TypeError);
      });
    });

    describe('dependent entries (the response tier)', () => {
      const bytes = (text: string) => new TextEncoder().encode(text);
      const text = (payload: Uint8Array) => new TextDecoder().decode(payload);

      it('serves the payload while every dependency holds its kind and version, in one round trip', async () => {
        const [user, unknown, response] = [freshKey(), freshKey(), freshKey()];
        await h.store.setMany([write(user, 'value', 7), write(unknown, 'negative', 0)]);
        const dependencies = [
          { key: user, kind: 'value', version: 7 },
          { key: unknown, kind: 'negative', version: 0 },
        ] as const;
        const body = '{"data":{"user":{"name":"Ada ✓"}}}';
        await h.store.setDependent({
          generation: await generationOf(h.store),
          key: response,
          payload: bytes(body),
          dependencies,
          ttlMs: 60_000,
        });
        const { result, roundTrips } = await h.measure(() => h.store.getDependent(response, Date.now()));
        expect(result.status).toBe('current');
        expect(result.status === 'current' && [text(result.payload), result.dependencies]).toEqual([body, 2]);
        // One round trip on a single server; a cluster reads the entry, then its dependencies.
        expect(roundTrips).toBeLessThanOrEqual(h.cluster ? 2 : 1);
        const [ttl] = await h.store.ttlMany([response]);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(60_000);
      });

      it('says until when a current answer is fresh (its dependencies’ earliest staleAt) and lists them, on the full check and on the write stamp alike', async () => {
        const [user, unknown, response] = [freshKey(), freshKey(), freshKey()];
        const earliest = Date.now() + 90_000;
        await h.store.setMany([
          write(user, 'value', 7, { staleAt: earliest + 60_000 }),
          write(unknown, 'negative', 0, { staleAt: earliest }),
        ]);
        const dependencies = [
          { key: user, kind: 'value', version: 7 },
          { key: unknown, kind: 'negative', version: 0 },
        ] as const;
        await h.store.setDependent({
          generation: await generationOf(h.store),
          key: response,
          payload: bytes('{}'),
          dependencies,
          ttlMs: 60_000,
        });
        // The first read checks every dependency (and records the stamp); the second may pass on it.
        for (const pass of ['full', 'stamped']) {
          const read = await h.store.getDependent(response, Date.now());
          expect({ pass, status: read.status }).toEqual({ pass, status: 'current' });
          if (read.status !== 'current') continue;
          expect({ pass, freshUntil: read.freshUntil }).toEqual({ pass, freshUntil: earliest });
          expect(read.listDependencies()).toEqual(dependencies);
        }
      });

      it('names the first dependency that changed: another version, a tombstone, gone, or past its TTL', async () => {
        const keys = [freshKey(), freshKey(), freshKey(), freshKey()];
        const [rewritten, tombstoned, lost, expired] = keys;
        await h.store.setMany([
          write(rewritten!, 'value', 1),
          write(tombstoned!, 'value', 1),
          write(lost!, 'value', 1, { ttlMs: 40 }),
          write(expired!, 'value', 1, { staleAt: Date.now() + 60_000 }),
        ]);
        const dependentOn = async (key: string) => {
          const response = freshKey();
          const dependencies = [{ key, kind: 'value', version: 1 } as const];
          await h.store.setDependent({
            generation: await generationOf(h.store),
            key: response,
            payload: bytes('{}'),
            dependencies,
            ttlMs: 60_000,
          });
          return response;
        };
        const responses = await Promise.all(keys.map((key) => dependentOn(key!)));
        expect((await h.store.getDependent(responses[0]!, Date.now())).status).toBe('current');

        await h.store.setMany([write(rewritten!, 'value', 2), write(tombstoned!, 'tombstone', 2)]);
        await h.elapse(100);
        const reads = await Promise.all(
          responses.map((response, i) =>
            h.store.getDependent(response, i === 3 ? Date.now() + 120_000 : Date.now()),
          ),
        );
        expect(reads).toMatchObject(
          keys.map((key) => ({ status: 'outdated', failed: { key, kind: 'value', version: 1 } })),
        );
      });

      it('checks every one of 1 200 dependencies, the last ones included', async () => {
        const keys = Array.from({ length: 1200 }, () => freshKey());
        await h.store.setMany(keys.map((key) => write(key, 'value', 3)));
        const response = freshKey();
        const dependencies = keys.map((key) => ({ key, kind: 'value', version: 3 }) as const);
        await h.store.setDependent({
          generation: await generationOf(h.store),
          key: response,
          payload: bytes('{"n":1200}'),
          dependencies,
          ttlMs: 60_000,
        });
        const read = await h.store.getDependent(response, Date.now());
        expect(read.status === 'current' && [text(read.payload), read.dependencies]).toEqual([
          '{"n":1200}',
          1200,
        ]);
        // Near the end: a check that stopped early (a cap, a chunk) would still answer current.
        await h.store.setMany([write(keys[1100]!, 'value', 4)]);
        expect(await h.store.getDependent(response, Date.now())).toMatchObject({
          status: 'outdated',
          failed: { key: keys[1100], kind: 'value', version: 3 },
        });
      });

      it('invalidateDependents: an answer written before is absent, and so is one computed before and written after; one round trip', async () => {
        const [user, before, during, after] = [freshKey(), freshKey(), freshKey(), freshKey()];
        await h.store.setMany([write(user, 'value', 2)]);
        const dependencies = [{ key: user, kind: 'value', version: 2 }] as const;
        const answer = (key: string, generation: string) =>
          h.store.setDependent({ key, generation, payload: bytes('{}'), dependencies, ttlMs: 60_000 });
        const old = await generationOf(h.store);
        await answer(before, old);
        expect((await h.store.getDependent(before, Date.now())).status).toBe('current');
        await h.peer.invalidateDependents();
        // Computed from what the purge is for, written once the purge has run: absent all the same.
        await answer(during, old);
        const fresh = await generationOf(h.store);
        expect(fresh).not.toBe(old);
        await answer(after, fresh);
        expect((await h.store.getDependent(before, Date.now())).status).toBe('absent');
        expect((await h.store.getDependent(during, Date.now())).status).toBe('absent');
        expect((await h.store.getDependent(after, Date.now())).status).toBe('current');
        expect(await h.measure(() => h.store.invalidateDependents())).toEqual({
          result: undefined,
          roundTrips: 1,
        });
      });

      it('answers absent for a key that holds no dependent entry; a response with no dependencies is current', async () => {
        const [empty, entry, constant] = [freshKey(), freshKey(), freshKey()];
        await h.store.setMany([write(entry, 'value', 1)]);
        expect(await h.store.getDependent(empty, Date.now())).toMatchObject({ status: 'absent' });
        expect(await h.store.getDependent(entry, Date.now())).toMatchObject({ status: 'absent' });
        await h.store.setDependent({
          generation: await generationOf(h.store),
          key: constant,
          payload: bytes('{"data":{}}'),
          dependencies: [],
          ttlMs: 60_000,
        });
        const read = await h.store.getDependent(constant, Date.now());
        expect(read.status === 'current' && text(read.payload)).toBe('{"data":{}}');
      });
    });

    describe('fill grants (fillMany)', () => {
      const kindAndVersion = async (key: string) => {
        const [entry] = await h.store.getMany([key]);
        return entry && [entry.kind, entry.version];
      };
      const lockTtl = async (key: string) => (await h.store.ttlMany([lockKeyOf(key)]))[0];

      it('stores under the grant and releases it, waking the waiters, in one round trip', async () => {
        const [granted, fenced] = [freshKey(), freshKey()];
        await h.store.setMany([write(fenced, 'value', 9)]);
        expect(await won(h.store.acquireLocks([granted, fenced], 'filler', 60_000))).toEqual([true, true]);
        const woken = deferred<string>();
        await h.peer.onFill(granted, woken.resolve);
        const filled = await h.measure(() =>
          h.store.fillMany([write(granted, 'value', 3), write(fenced, 'value', 2)], 'filler'),
        );
        expect(filled).toEqual({ result: ['stored', 'fenced'], roundTrips: 1 });
        expect(await woken.promise).toBe(granted);
        expect(await kindAndVersion(granted)).toEqual(['value', 3]);
        expect(await kindAndVersion(fenced)).toEqual(['value', 9]);
        // Both grants released, the fenced one too: the next caller may take the lock.
        expect([await lockTtl(granted), await lockTtl(fenced)]).toEqual([-1, -1]);
      });

      it('answers renewed for a fill of the version the key holds: its staleAt moves, its bytes stay, the grant goes', async () => {
        const [value, negative, tombstoned] = [freshKey(), freshKey(), freshKey()];
        await h.store.setMany([
          write(value, 'value', 7, { marker: 1, staleAt: 1000, ttlMs: 10_000 }),
          write(negative, 'negative', 7, { staleAt: 1000, ttlMs: 10_000 }),
          write(tombstoned, 'tombstone', 7, { staleAt: 1000, ttlMs: 10_000 }),
        ]);
        const keys = [value, negative, tombstoned];
        expect(await won(h.store.acquireLocks(keys, 'filler', 60_000))).toEqual([true, true, true]);
        const filled = await h.store.fillMany(
          [
            write(value, 'value', 7, { marker: 2, staleAt: 5000, ttlMs: 600_000 }),
            write(negative, 'negative', 7, { staleAt: 5000, ttlMs: 600_000 }),
            // A value at a tombstone's version is the row the tombstone names: it lands.
            write(tombstoned, 'value', 7, { marker: 3, staleAt: 5000, ttlMs: 600_000 }),
          ],
          'filler',
        );
        expect(filled).toEqual(['renewed', 'renewed', 'stored']);
        const [v, n, t] = await h.store.getMany(keys);
        expect([v?.staleAt, [...v!.payload], n?.staleAt, t?.kind, [...t!.payload]]).toEqual([
          5000,
          [1],
          5000,
          'value',
          [3],
        ]);
        expect(await h.store.ttlMany(keys.map(lockKeyOf))).toEqual([-1, -1, -1]);
      });

      it('refuses a fill without the grant: no lock, or another caller’s, which it leaves alone', async () => {
        const [unlocked, others] = [freshKey(), freshKey()];
        expect(await won(h.peer.acquireLocks([others], 'other', 60_000))).toEqual([true]);
        expect(
          await h.store.fillMany([write(unlocked, 'value', 1), write(others, 'value', 1)], 'mine'),
        ).toEqual(['revoked', 'revoked']);
        expect(await h.store.getMany([unlocked, others])).toEqual([undefined, undefined]);
        expect(await lockTtl(others)).toBeGreaterThan(0);
        expect(await h.peer.releaseLocks([others], 'other')).toEqual([true]);
      });

      it('lets every invalidation revoke the grant, so a late fill cannot land even after the key is lost', async () => {
        const [written, tombstoned] = [freshKey(), freshKey()];
        expect(await won(h.store.acquireLocks([written, tombstoned], 'reader', 60_000))).toEqual([
          true,
          true,
        ]);
        const woken = deferred<string>();
        await h.store.onFill(written, woken.resolve);
        // A write-through and a tombstone, from another instance, while the reader loads.
        expect(await h.peer.setMany([write(written, 'value', 2), write(tombstoned, 'tombstone', 2)])).toEqual(
          [true, true],
        );
        // The reader's waiters re-read at once: the grant is gone.
        expect(await woken.promise).toBe(written);
        expect([await lockTtl(written), await lockTtl(tombstoned)]).toEqual([-1, -1]);
        // Now the store loses both keys (a flush, a restart, an eviction): the reader's fill of the
        // version it read before the writes is still refused.
        await h.peer.purgePrefix(written);
        await h.peer.purgePrefix(tombstoned);
        expect(
          await h.store.fillMany([write(written, 'value', 1), write(tombstoned, 'value', 1)], 'reader'),
        ).toEqual(['revoked', 'revoked']);
        expect(await h.store.getMany([written, tombstoned])).toEqual([undefined, undefined]);
      });

      it('refuses a fill whose grant expired, and one whose lock another caller took since', async () => {
        const key = freshKey();
        expect(await won(h.store.acquireLocks([key], 'slow', 40))).toEqual([true]);
        await h.elapse(100);
        expect(await h.store.fillMany([write(key, 'value', 1)], 'slow')).toEqual(['revoked']);
        expect(await won(h.peer.acquireLocks([key], 'next', 60_000))).toEqual([true]);
        expect(await h.store.fillMany([write(key, 'value', 1)], 'slow')).toEqual(['revoked']);
        expect(await h.peer.fillMany([write(key, 'value', 2)], 'next')).toEqual(['stored']);
        expect(await kindAndVersion(key)).toEqual(['value', 2]);
      });

      it('refuses values outside the contract, and an empty token, with a TypeError', async () => {
        await expect(h.store.fillMany([write(freshKey(), 'value', -1)], 'token')).rejects.toThrow(TypeError);
        await expect(h.store.fillMany([write(freshKey(), 'value', 1)], '')).rejects.toThrow(TypeError);
      });
    });

    describe('fill notifications', () => {
      it('notifies the waiters of every key whose lock was released, and only those', async () => {
        const id = nextId();
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
        await h.store.acquireLocks([first, second], 'filler', 60_000);
        expect(await h.store.releaseLocks([notHeld, first, second], 'filler')).toEqual([false, true, true]);
        await arrived.promise;
        expect([...heard].sort()).toEqual([first, second].sort());
      });

      it('resolves onFill only once the subscription is active', async () => {
        const key = freshKey();
        const filled = deferred<string>();
        await h.store.onFill(key, filled.resolve);
        // No pause: a fill landing right after onFill resolved must be heard.
        await h.peer.acquireLocks([key], 'filler', 60_000);
        await h.peer.releaseLocks([key], 'filler');
        expect(await filled.promise).toBe(key);
      });

      it("shares a key's subscription between waiters until the last one leaves", async () => {
        const id = nextId();
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
        const channel = `${PREFIX}:events:${nextId()}`;
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
        expect(await won(h.store.acquireLocks([`${purged}{0}`], 'other', 1000))).toEqual([true]);
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

type Held = [EntryKind, number];

/**
 * The generation a dependent entry computed now is written under (contract.ts, `DependentWrite`):
 * what `getDependent` answers, here for a key that holds nothing.
 */
export async function generationOf(store: CacheStore): Promise<string> {
  return (await store.getDependent('cacheside-test:generation-probe', Date.now())).generation;
}

/** A write of `kind` at `version`; a value's payload is the single byte `marker` unless given. */
export function write(
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

/** Counts socket writes (each one request: a command, or a whole pipeline) per connection. */
export function countSocketWrites(clients: () => Redis[]): Harness['measure'] {
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

/** A memory store on a fake clock; `store` counts its calls, `peer` is the same store uncounted. */
export function memoryHarness(): Harness {
  let clock = Date.now();
  const inner = createMemoryStore({ now: () => clock });
  let calls = 0;
  const counted = forwardStore(
    inner,
    aroundCalls(inner, STORE_CALLS, (_method, call) => {
      calls += 1;
      return call();
    }),
  );
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

/** Takes and releases `key`'s lock, so that its fill is announced. */
export async function fill(store: CacheStore, key: string): Promise<void> {
  const token = `fill-${randomBytes(4).toString('hex')}`;
  expect(await won(store.acquireLocks([key], token, 60_000))).toEqual([true]);
  expect(await store.releaseLocks([key], token)).toEqual([true]);
}

/** Which of the attempts of `acquireLocks` took their lock. */
async function won(attempts: Promise<LockAttempt[]>): Promise<boolean[]> {
  return (await attempts).map((attempt) => attempt.acquired);
}

/** A fill listener that throws must neither break delivery to the others nor the process. */
export async function expectListenerIsolation(
  store: CacheStore,
  errors: Error[],
  key: string,
): Promise<void> {
  const heard = deferred();
  await store.onFill(key, () => {
    throw new Error('a listener bug');
  });
  await store.onFill(key, () => heard.resolve());
  await fill(store, key);
  await heard.promise;
  expect(errors.map((error) => error.message)).toEqual(['a listener bug']);
}

// Private:

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
