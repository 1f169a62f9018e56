/**
 * The Redis driver against the machine's Redis at REDIS_URL: the store contract
 * (test/support/store-contract.ts), then what only Redis has: its wire behaviour (round trips, TTLs
 * of every key, shared subscriptions, error replies) and the faults of a private `redis-server` that
 * a test may pause or stop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreReplyError, StoreTimeoutError, StoreUnavailableError } from '../../src/cache/store/errors.js';
import { fillChannelOf } from '../../src/cache/store/key-names.js';
import { createRedisConnections, type RedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { createStampSource, STAMP_LENGTH } from '../../src/cache/store/redis/write-stamp.js';
import { purgePrefixAfterAll, REDIS_URL, scanKeys, startPrivateRedis } from '../support/redis.js';
import { until } from '../support/until.js';
import {
  countSocketWrites,
  describeStoreContract,
  expectListenerIsolation,
  fill,
  generationOf,
  storeKeySpace,
  write,
  type Harness,
} from '../support/store-contract.js';

const keySpace = storeKeySpace('redisstore');
const { cacheKeys, freshKey } = keySpace;
purgePrefixAfterAll(keySpace.prefix);

describeStoreContract('redis', () => redisHarness(REDIS_URL), keySpace);

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
    await h.store.setMany([write(keys[0]!, 'value', 1), write(keys[1]!, 'tombstone', 1, { ttlMs: 60_000 })]);
    await h.store.setMany([write(keys[0]!, 'value', 1, { ttlMs: 7_200_000 })]); // an equal-version renewal
    await h.store.acquireLocks([keys[2]!], 'token', 60_000);
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
      dependentKeys: cacheKeys.dependents,
      connections: createRedisConnections({ url: REDIS_URL, commandTimeoutMs: 5000 }),
      onError: (error) => errors.push(error),
    });
    await expectListenerIsolation(store, errors, freshKey());
    await store.close();
  });

  it('refuses a batch fill with a malformed argument whole: nothing written, no lock released', async () => {
    const client = connections.command as Redis;
    const [first, second] = [freshKey(), freshKey()];
    expect((await h.store.acquireLocks([first, second], 'filler', 60_000)).map((l) => l.acquired)).toEqual([
      true,
      true,
    ]);
    const stamp = cacheKeys.dependents.writeStamp;
    const before = await client.get(stamp);
    const good = Buffer.from(`v:1:${Date.now() + 60_000}:payload`, 'latin1');
    // The second entry has no header (only encodeEntry writes these arguments; this is the script's
    // own guard): had the first key been filled before the error, the write stamp would not have moved.
    const call = client.cachesideFillMany(
      2,
      first,
      second,
      'filler',
      stamp,
      'x'.repeat(24),
      60_000,
      '60000,60000',
      good,
      Buffer.from('no header'),
    );
    await expect(call).rejects.toThrow(/entry 2 has no header/);
    await expect(
      client.cachesideFillMany(1, first, 'filler', stamp, 'x'.repeat(24), 60_000, '60000,60000', good),
    ).rejects.toThrow(/1 keys, 2 TTLs, 1 entries/);
    expect(await h.store.getMany([first, second])).toEqual([undefined, undefined]);
    expect(await client.get(stamp)).toBe(before);
    expect(await h.store.releaseLocks([first, second], 'filler')).toEqual([true, true]);
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

describe('the write stamp (a checked answer served on one comparison)', () => {
  let h: Harness;
  let raw: Redis;
  beforeAll(async () => {
    h = await redisHarness(REDIS_URL, (c) => (raw = c.command as Redis));
  });
  afterAll(async () => {
    await h.close();
  });
  const bytes = (text: string) => new TextEncoder().encode(text);

  /**
   * An answer over two values, checked once (which stamps it), then one of them deleted behind the
   * store's back — as an eviction would: no script ran. Only the full check can see that, so "current"
   * afterwards says the stamp answered, and "outdated" that a full check ran.
   */
  async function stampedAnswer() {
    const [kept, vanished, answer] = [freshKey(), freshKey(), freshKey()];
    await h.store.setMany([write(kept, 'value', 4), write(vanished, 'value', 2)]);
    const dependencies = [
      { key: kept, kind: 'value', version: 4 },
      { key: vanished, kind: 'value', version: 2 },
    ] as const;
    await h.store.setDependent({
      generation: await generationOf(h.store),
      key: answer,
      payload: bytes('{"a":1}'),
      dependencies,
      ttlMs: 60_000,
    });
    expect((await h.store.getDependent(answer, Date.now())).status).toBe('current');
    await raw.del(vanished);
    const outdated = { status: 'outdated', failed: { key: vanished, kind: 'value', version: 2 } };
    return { kept, vanished, answer, outdated };
  }

  it('serves a checked answer on the stamp alone while no entry changes', async () => {
    const { answer, outdated } = await stampedAnswer();
    const read = await h.store.getDependent(answer, Date.now());
    expect(read.status === 'current' && new TextDecoder().decode(read.payload)).toBe('{"a":1}');
    // Any landed write moves the stamp, here one to a key the answer does not name.
    await h.store.setMany([write(freshKey(), 'value', 1)]);
    expect(await h.store.getDependent(answer, Date.now())).toMatchObject(outdated);
  });

  it('is moved by every write that changes an entry: a value, a tombstone, a renewal, a fill — by any client', async () => {
    const other = freshKey();
    await h.store.setMany([write(other, 'value', 5)]);
    const changes: [string, () => Promise<unknown>][] = [
      ['a newer value', () => h.peer.setMany([write(freshKey(), 'value', 1)])],
      ['a tombstone', () => h.peer.setMany([write(freshKey(), 'tombstone', 3)])],
      ['a renewal at the held version', () => h.peer.setMany([write(other, 'value', 5, { ttlMs: 90_000 })])],
      [
        'a fill under its grant',
        async () => {
          const key = freshKey();
          await h.peer.acquireLocks([key], 'filler', 60_000);
          expect(await h.peer.fillMany([write(key, 'value', 1)], 'filler')).toEqual(['stored']);
        },
      ],
    ];
    for (const [change, make] of changes) {
      const { answer, outdated } = await stampedAnswer();
      expect([change, (await h.store.getDependent(answer, Date.now())).status]).toEqual([change, 'current']);
      await make();
      expect([change, await h.store.getDependent(answer, Date.now())]).toMatchObject([change, outdated]);
    }
  });

  it('is not moved by writes that change nothing: a fenced write, a refused fill, a lock', async () => {
    const held = freshKey();
    await h.store.setMany([write(held, 'value', 9)]);
    const { answer } = await stampedAnswer();
    expect(await h.peer.setMany([write(held, 'value', 8)])).toEqual([false]);
    expect(await h.peer.fillMany([write(freshKey(), 'value', 1)], 'no-grant')).toEqual(['revoked']);
    await h.peer.acquireLocks([freshKey()], 'locker', 60_000);
    expect((await h.store.getDependent(answer, Date.now())).status).toBe('current');
  });

  it('never serves on the stamp past the earliest staleAt the check read', async () => {
    // Three entries fresh for 30 s, 10 s and 60 s, in that order: the earliest is neither the first
    // nor the last the check reads.
    const keys = [freshKey(), freshKey(), freshKey()];
    const at = Date.now();
    await h.store.setMany(
      keys.map((key, i) => write(key, 'value', 1, { staleAt: at + [30_000, 10_000, 60_000][i]! })),
    );
    const answer = freshKey();
    const dependencies = keys.map((key) => ({ key, kind: 'value', version: 1 }) as const);
    await h.store.setDependent({
      generation: await generationOf(h.store),
      key: answer,
      payload: bytes('{}'),
      dependencies,
      ttlMs: 60_000,
    });
    expect((await h.store.getDependent(answer, at)).status).toBe('current');
    expect((await h.store.getDependent(answer, at + 9_000)).status).toBe('current');
    expect(await h.store.getDependent(answer, at + 20_000)).toMatchObject({
      status: 'outdated',
      failed: { key: keys[1], kind: 'value', version: 1 },
    });
  });

  it('a new generation is never an old one, whoever sets it, and a lost generation key fails every answer', async () => {
    const { answer } = await stampedAnswer();
    const first = await generationOf(h.store);
    await h.peer.invalidateDependents();
    const second = await generationOf(h.store);
    expect(second).not.toBe(first);
    expect((await h.store.getDependent(answer, Date.now())).status).toBe('absent');
    // Lost (evicted, expired): set anew by the next read, to a value no answer recorded.
    const kept = freshKey();
    await h.store.setMany([write(kept, 'value', 1)]);
    const again = freshKey();
    await h.store.setDependent({
      generation: second,
      key: again,
      payload: bytes('{}'),
      dependencies: [{ key: kept, kind: 'value', version: 1 }],
      ttlMs: 60_000,
    });
    expect((await h.store.getDependent(again, Date.now())).status).toBe('current');
    await raw.del(cacheKeys.dependents.generation);
    expect((await h.store.getDependent(again, Date.now())).status).toBe('absent');
    expect([first, second]).not.toContain(await generationOf(h.store));
    expect(await raw.pttl(cacheKeys.dependents.generation)).toBeGreaterThan(0);
  });

  it('stamps (and generations) of two sources never meet: each has its own random id', () => {
    const [a, b] = [createStampSource(), createStampSource()];
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i += 1) {
      for (const stamp of [a(), b()]) {
        expect(stamp).toHaveLength(STAMP_LENGTH);
        seen.add(stamp);
      }
    }
    expect(seen.size).toBe(2000);
  });

  it('a lost stamp key fails every comparison and is set anew, to a value never used before', async () => {
    const { answer, kept, outdated } = await stampedAnswer();
    const before = await raw.get(cacheKeys.dependents.writeStamp);
    await raw.del(cacheKeys.dependents.writeStamp);
    expect(await h.store.getDependent(answer, Date.now())).toMatchObject(outdated);
    // A passing check sets it again, and its answers are served on it.
    const again = freshKey();
    await h.store.setDependent({
      generation: await generationOf(h.store),
      key: again,
      payload: bytes('{}'),
      dependencies: [{ key: kept, kind: 'value', version: 4 }],
      ttlMs: 60_000,
    });
    expect((await h.store.getDependent(again, Date.now())).status).toBe('current');
    const after = await raw.get(cacheKeys.dependents.writeStamp);
    expect(after).not.toBeNull();
    expect(after).not.toBe(before);
    expect(await raw.pttl(cacheKeys.dependents.writeStamp)).toBeGreaterThan(0);
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
    const store = createRedisStore({ connections, dependentKeys: cacheKeys.dependents });
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
    const store = createRedisStore({ connections, dependentKeys: cacheKeys.dependents });
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
    const store = createRedisStore({ connections, dependentKeys: cacheKeys.dependents });
    try {
      const key = freshKey();
      const heard: string[] = [];
      await store.subscribe('events', (_channel, message) => heard.push(message));
      await store.onFill(key, (filled) => heard.push(filled));
      await server.stop();
      server = await startPrivateRedis({ port: server.port });
      // Published messages are lost until the subscriber is back: publish until one is heard.
      await until(
        'a message published after the restart to be heard',
        async () => {
          await store.publish('events', 'back').catch(() => {});
          return heard.includes('back');
        },
        { everyMs: 50 },
      );
      await fill(store, key);
      await waitFor(() => heard.includes(key));
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

// Helpers:

async function redisHarness(url: string, expose?: (c: RedisConnections) => void): Promise<Harness> {
  // A generous timeout: these tests assert answers, not speed, on a possibly busy machine.
  const connections = createRedisConnections({ url, commandTimeoutMs: 5000 });
  const peerConnections = createRedisConnections({ url, commandTimeoutMs: 5000 });
  await Promise.all([connections.ready(), peerConnections.ready()]);
  expose?.(connections);
  const store = createRedisStore({ connections, dependentKeys: cacheKeys.dependents });
  const peer = createRedisStore({ connections: peerConnections, dependentKeys: cacheKeys.dependents });
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

async function numsub(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/** Polls a condition that cannot be awaited (a connection's status). */
const waitFor = (condition: () => boolean) => until('the condition', condition);
