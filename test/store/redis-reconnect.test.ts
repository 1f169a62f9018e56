/**
 * The Redis driver tells its reconnect listeners (the breaker trips, L1 clears: create-cache-tier.ts)
 * whenever a connection to Redis comes back after a loss, before any call can read through it, and a
 * call that spanned the return fails: a Redis restarted from its disk may hold values older than
 * writes made meanwhile, which only the relay's drain (after the breaker opened) repairs. The
 * end-to-end proof on a single Redis is test/resilience/redis-faults.test.ts, "Redis back with its
 * old data"; here, the two ways a call could still slip through, each on private servers with
 * persistence.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { createCircuitBreaker } from '../../src/cache/store/layers/circuit-breaker.js';
import { createRedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { slotOf } from '../../src/cache/store/redis/slots.js';
import { startPrivateRedis, startPrivateRedisCluster, type PrivateRedisCluster } from '../support/redis.js';
import { storeKeySpace, write } from '../support/store-contract.js';
import { until } from '../support/until.js';

const { prefix, cacheKeys, freshKey } = storeKeySpace('reconnect');
const DURABLE = ['--appendonly', 'yes', '--appendfsync', 'always'];
/** Long enough that a tripped breaker stays open for the whole test, however slow the machine. */
const OPEN_MS = 600_000;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The store over connections made with `options`, and a breaker its reconnect listener trips. */
function guardedStore(options: Parameters<typeof createRedisConnections>[0]) {
  const connections = createRedisConnections(options);
  const store = createRedisStore({ connections, dependentKeys: cacheKeys.dependents });
  const { breaker, ...guarded } = createCircuitBreaker(store, { openMs: OPEN_MS });
  let trips = 0;
  store.onReconnect!(() => {
    trips += 1;
    breaker.trip();
  });
  return { connections, store, guarded, breaker, trips: () => trips };
}

/** The index in `cluster.nodes` of the master that serves `key`'s slot. */
async function masterOf(cluster: PrivateRedisCluster, key: string): Promise<number> {
  const admin = new Redis(cluster.nodes[0]!.url);
  try {
    const slots = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    const port = slots.find(([from, to]) => slotOf(key) >= from && slotOf(key) <= to)![2][1];
    return cluster.nodes.findIndex((node) => node.port === port);
  } finally {
    admin.disconnect();
  }
}

describe('a connection to Redis that comes back', () => {
  test('an instance started during the outage: a call admitted while the first connection handshakes is refused, not answered from the restored data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-reconnect-'));
    dirs.push(dir);
    const args = [...DURABLE, '--dir', dir];
    let server = await startPrivateRedis({ args });
    const key = freshKey();
    const before = createRedisConnections({ url: server.url, commandTimeoutMs: 2000 });
    const writer = createRedisStore({ connections: before, dependentKeys: cacheKeys.dependents });
    await writer.setMany([write(key, 'value', 1)]);
    await writer.close();
    await server.stop();

    const { connections, store, guarded, breaker, trips } = guardedStore({
      url: server.url,
      commandTimeoutMs: 2000,
      reconnectBaseDelayMs: 50,
      reconnectMaxDelayMs: 100,
    });
    try {
      let closes = 0;
      (connections.command as EventEmitter).on('close', () => (closes += 1));
      await until('a failed first connection attempt', () => closes > 0);
      // A call that comes while the next attempt handshakes waits for the connection (the breaker
      // is closed: nothing failed yet), and must not read once it is up.
      let outcome: Promise<string> | undefined;
      (connections.command as EventEmitter).once('connect', () => {
        outcome = guarded.getMany([key]).then(
          (entries) => `read version ${entries[0]?.version} with the breaker ${breaker.state}`,
          (error: Error) => `${error.name}: ${error.message}`,
        );
      });
      server = await startPrivateRedis({ port: server.port, args });
      await until('the call made while the connection handshook', () => outcome !== undefined);
      expect(await outcome).toMatch(/^StoreUnavailableError: .*came back during the call/);
      await until('the listeners told of the connection that came up', () => trips() > 0);
      expect(trips()).toBe(1);
    } finally {
      await store.close();
      await server.stop();
    }
  });

  test('a cluster master restarted from its disk: the listeners hear of it, and no read goes through a closed breaker', async () => {
    const cluster = await startPrivateRedisCluster(3, { args: DURABLE });
    const { store, guarded, breaker, trips } = guardedStore({
      clusterNodes: cluster.seeds,
      commandTimeoutMs: 2000,
      reconnectMaxDelayMs: 100,
    });
    try {
      const key = freshKey();
      await guarded.setMany([write(key, 'value', 1)]);
      // The master that serves the key's slot; a client-wide 'close' never comes: only this
      // master's connection ends.
      await cluster.restart(await masterOf(cluster, key));
      await until('the listeners told of the master that came back', async () => {
        const read = await guarded.getMany([key]).then(
          (entries) => entries,
          () => undefined,
        );
        if (read !== undefined) {
          throw new Error(`read version ${read[0]?.version} through a closed breaker after the restart`);
        }
        return trips() > 0;
      });
      expect(breaker.state).not.toBe('closed');
    } finally {
      await store.close();
      await cluster.stop();
    }
  });
  test('a cluster master restarted: a walk of the keyspace visits every key or fails, never reports fewer', async () => {
    const cluster = await startPrivateRedisCluster(3, { args: DURABLE });
    const { store } = guardedStore({
      clusterNodes: cluster.seeds,
      commandTimeoutMs: 2000,
      reconnectMaxDelayMs: 100,
    });
    try {
      const keys = Array.from({ length: 60 }, () => freshKey());
      await store.setMany(keys.map((key) => write(key, 'value', 1)));
      const walk = async () => {
        let seen = 0;
        const visited = await store.scanKeys(`${prefix}:`, async (batch) => {
          seen += batch.filter((key) => keys.includes(key)).length;
        });
        return { visited, seen };
      };
      expect((await walk()).seen).toBe(keys.length);
      // The master that serves the first key's slot, restarted: the client drops its connection and
      // leaves it out of its masters until something sends it a command of that slot again.
      await cluster.restart(await masterOf(cluster, keys[0]!));
      const after = await walk().then(
        ({ seen }) => `saw ${seen} of ${keys.length}`,
        (error: Error) => error.name,
      );
      expect([`saw ${keys.length} of ${keys.length}`, 'StoreUnavailableError']).toContain(after);
    } finally {
      await store.close();
      await cluster.stop();
    }
  });
  test('a cluster client just created, given one seed of three masters: its first walk visits every key', async () => {
    const cluster = await startPrivateRedisCluster(3);
    const writer = createRedisStore({
      connections: createRedisConnections({ clusterNodes: cluster.seeds, commandTimeoutMs: 2000 }),
      dependentKeys: cacheKeys.dependents,
    });
    let walker: ReturnType<typeof createRedisStore> | undefined;
    try {
      const keys = Array.from({ length: 60 }, () => freshKey());
      await writer.setMany(keys.map((key) => write(key, 'value', 1)));
      // Before its first connection the client knows only its seed: the walk, sent at once, must
      // wait for the slots.
      walker = createRedisStore({
        connections: createRedisConnections({ clusterNodes: [cluster.seeds[0]!], commandTimeoutMs: 2000 }),
        dependentKeys: cacheKeys.dependents,
      });
      let seen = 0;
      await walker.scanKeys(`${prefix}:`, async (batch) => {
        seen += batch.filter((key) => keys.includes(key)).length;
      });
      expect(seen).toBe(keys.length);
    } finally {
      await walker?.close();
      await writer.close();
      await cluster.stop();
    }
  });
});
