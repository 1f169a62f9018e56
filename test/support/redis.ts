/**
 * Redis for tests: the machine's Redis at REDIS_URL, shared by every test file through a unique key
 * prefix each, and private `redis-server` processes for fault tests that must stop, pause or kill a
 * server without disturbing anyone else.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { freePort } from './ports.js';
import type { Config, HostPort } from '../../src/config.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import type { CacheStore } from '../../src/cache/store/contract.js';
import { createStoreFromConfig } from '../../src/cache/store/from-config.js';
import { createLogger } from '../../src/observability/logger.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * A cache prefix (CACHE_PREFIX) no other test file uses: `t_<label>_<random>`. The keys it owns are
 * `<prefix>:…`.
 */
export function uniquePrefix(label: string): string {
  const clean = label.replace(/[^A-Za-z0-9]/g, '').slice(0, 32) || 'test';
  return `t_${clean}_${randomBytes(5).toString('hex')}`;
}

/**
 * Every key starting with `keyPrefix` (literally) and its remaining TTL in ms (-1: none), sorted by
 * key. A key that expires between the scan and the TTL query is left out.
 */
export async function scanKeys(
  keyPrefix: string,
  url = REDIS_URL,
): Promise<{ key: string; ttlMs: number }[]> {
  return withClient(url, async (redis) => {
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${escapeGlob(keyPrefix)}*`, 'COUNT', 500);
      cursor = next;
      for (const key of batch) keys.add(key);
    } while (cursor !== '0');
    const sorted = [...keys].sort();
    const pipeline = redis.pipeline();
    for (const key of sorted) pipeline.pttl(key);
    const ttls = (await pipeline.exec()) ?? [];
    return sorted.map((key, i) => ({ key, ttlMs: Number(ttls[i]?.[1]) })).filter(({ ttlMs }) => ttlMs !== -2);
  });
}

/** Removes every key starting with `keyPrefix` (SCAN + UNLINK); returns how many. */
export async function purgeKeys(keyPrefix: string, url = REDIS_URL): Promise<number> {
  const keys = await scanKeys(keyPrefix, url);
  if (keys.length === 0) return 0;
  return withClient(url, async (redis) => {
    let removed = 0;
    for (let i = 0; i < keys.length; i += 500) {
      removed += await redis.unlink(...keys.slice(i, i + 500).map((k) => k.key));
    }
    return removed;
  });
}

/** Registers an `afterAll` that removes everything under the cache prefix `prefix` (keys `<prefix>:…`). */
export function purgePrefixAfterAll(prefix: string, url = REDIS_URL): void {
  afterAll(async () => {
    await purgeKeys(`${prefix}:`, url);
  });
}

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered, like a hung Redis. */
  pause(): void;
  /** Thaws a paused server (SIGCONT). */
  resume(): void;
  /** Stops the server (resuming it first if paused) and waits until the process has exited. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a throwaway `redis-server` on a free port of 127.0.0.1, without persistence, and resolves
 * once it answers PING. The process is killed when the test process exits, even if `stop` is never
 * called. `args` are extra server options (`--name value` pairs); `port` restarts a server where a
 * stopped one was, so that its clients reconnect to it.
 */
export async function startPrivateRedis(
  options: { args?: readonly string[]; port?: number } = {},
): Promise<PrivateRedis> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await launch(options.port ?? (await freePort()), options.args ?? []);
    } catch (error) {
      // Another process may take the free port between our probe and redis-server's bind.
      if (attempt >= 3 || options.port !== undefined) throw error;
    }
  }
}

export interface PrivateRedisCluster {
  /** Every master, for `createRedisConnections({ clusterNodes })`. */
  readonly seeds: readonly HostPort[];
  /** The same as REDIS_CLUSTER_NODES would list them: `host:port,host:port,…`. */
  readonly seedList: string;
  readonly nodes: readonly PrivateRedis[];
  /**
   * Stops node `index` and starts it again on its port, with its options and its directory (so with
   * its data, when `args` turned persistence on): a master restarted from its own disk.
   */
  restart(index: number): Promise<void>;
  /** Stops every node and removes their cluster state. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster of `masters` private nodes (no replicas), with the slots spread over them by
 * `redis-cli --cluster create`, and resolves once every node reports `cluster_state:ok`. `args` are
 * extra options of every node (`--appendonly yes`, …).
 */
export async function startPrivateRedisCluster(
  masters = 3,
  { args = [] }: { args?: readonly string[] } = {},
): Promise<PrivateRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'cacheside-cluster-'));
  const nodes: PrivateRedis[] = [];
  const nodeArgs: string[][] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await rm(dir, { recursive: true, force: true });
    })());
  try {
    for (let i = 0; i < masters; i += 1) {
      const nodeDir = await mkdtemp(join(dir, 'node-'));
      const clusterArgs = ['--cluster-enabled', 'yes', '--cluster-port', String(await freePort())];
      nodeArgs.push([...clusterArgs, '--dir', nodeDir, ...args]);
      nodes.push(await startPrivateRedis({ args: nodeArgs[i]! }));
    }
    const seeds = nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
    const seedList = seeds.map(({ host, port }) => `${host}:${port}`);
    await promisify(execFile)('redis-cli', [
      '--cluster',
      'create',
      ...seedList,
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const node of nodes) {
      await withClient(node.url, async (redis) => {
        const deadline = Date.now() + 20_000;
        while (!String(await redis.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
          if (Date.now() > deadline)
            throw new Error(`cluster node ${node.port} did not reach cluster_state:ok`);
          await sleep(50);
        }
      });
    }
    const restart = async (index: number) => {
      const node = nodes[index]!;
      await node.stop();
      nodes[index] = await startPrivateRedis({ port: node.port, args: nodeArgs[index]! });
    };
    return { seeds, seedList: seedList.join(','), nodes, restart, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// Private:

async function launch(port: number, args: readonly string[]): Promise<PrivateRedis> {
  const child = spawn(
    'redis-server',
    ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);

  let running = true;
  void exited.then(() => (running = false));
  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port))) {
    if (!running || Date.now() > deadline) {
      kill();
      process.off('exit', kill);
      throw new Error(`redis-server on port ${port} did not start:\n${output}`);
    }
    await sleep(20);
  }

  let stopping: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop() {
      stopping ??= (async () => {
        if (running) {
          child.kill('SIGCONT');
          child.kill('SIGTERM');
          const timer = setTimeout(kill, 5000);
          await exited;
          clearTimeout(timer);
        }
        process.off('exit', kill);
      })();
      return stopping;
    },
  };
}

/** A raw PING, so that waiting for the server does not depend on the client under test. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

async function withClient<T>(url: string, body: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await body(redis);
  } finally {
    redis.disconnect();
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * The store an instance with `config` builds (Redis or memory), over connections of its own, as
 * another server would have: the same namespace, so the same write stamp.
 */
export function storeOf(config: Config): CacheStore {
  const { dependents } = createCacheKeys(config.cache.prefix);
  return createStoreFromConfig(config, createLogger('silent'), { dependentKeys: dependents });
}
