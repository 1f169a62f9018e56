/**
 * The Redis driver of CacheStore (see store.ts for the contract).
 *
 * A value is stored as one Redis string: an ASCII header, then the payload bytes untouched:
 *
 *   <kind>:<version>:<staleAt>:<payload>        e.g. "v:7:1767225600000:\x93\xa3..."
 *
 * with kind `v` (value), `n` (negative) or `t` (tombstone). The fence script reads the version with
 * `string.match` on the header alone, so the payload is never decoded inside Redis, and a value
 * shorter than a header (a foreign or older format) counts as absent and is simply overwritten.
 *
 * Every script touches a single key (the entry, or a lock), so it is slot-safe on a cluster.
 */
import type { EventEmitter } from 'node:events';
import type { ChainableCommander, Result } from 'ioredis';
import { Cluster, type Redis } from 'ioredis';
import { StoreTimeoutError, StoreUnavailableError, toStoreError } from '../errors.js';
import { fillChannelOf, hashTagOf, lockKeyOf } from '../key-names.js';
import { whenReady, type RedisConnections } from './connections.js';
import { createSubscriptionHub } from './subscriptions.js';
import { assertCacheWrite, assertLockToken, assertPurgePrefix, assertTtlMs } from '../contract.js';
import type { CacheEntry, CacheStore, CacheWrite, EntryKind } from '../contract.js';

export interface RedisStoreOptions {
  readonly connections: RedisConnections;
  /**
   * Receives failures that no caller awaits: a fill or message listener that threw, a re-subscribe
   * after a reconnect that failed. @default ignore
   */
  readonly onError?: (error: Error) => void;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cachesideSetIfNewer(
      key: string,
      kind: string,
      version: string,
      staleAt: string,
      value: Buffer,
      ttlMs: number,
    ): Result<number, Context>;
    cachesideReleaseLock(
      lockKey: string,
      token: string,
      channel: string,
      message: string,
    ): Result<number, Context>;
  }
}

export function createRedisStore(options: RedisStoreOptions): CacheStore {
  const { connections } = options;
  const onError = options.onError ?? (() => {});
  const client = connections.command;
  const isCluster = client instanceof Cluster;
  // A multi-key command must stay within one slot; a pipeline, within the nodes serving one slot.
  const bySlot = isCluster ? slotOf : undefined;
  const byNode =
    client instanceof Cluster
      ? (key: string) => client.slots[slotOf(key)]?.join(';') ?? slotOf(key)
      : undefined;
  client.defineCommand('cachesideSetIfNewer', { numberOfKeys: 1, lua: SET_IF_NEWER });
  client.defineCommand('cachesideReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
  const hub = createSubscriptionHub({ connections, onError });
  let closed: Promise<void> | undefined;
  // Until the first connection is up, a command waits for it (bounded by the command timeout) instead
  // of failing at once: a server's first requests should not bypass a healthy Redis that is still
  // handshaking. Once it has been ready, a lost connection fails fast (no offline queue).
  let everReady = client.status === 'ready';
  if (!everReady) (client as EventEmitter).once('ready', () => (everReady = true));

  /**
   * Runs `body`, turning anything it throws into a typed store error that names `operation`. Callers
   * check their arguments before: a bad argument is the caller's bug, a TypeError, not a store failure.
   */
  async function call<T>(operation: string, body: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreUnavailableError(`cache store ${operation} failed: the store is closed`);
    try {
      if (!everReady) await whenReady(client, connections.commandTimeoutMs);
      return await withDeadline(body(), connections.commandTimeoutMs, operation);
    } catch (error) {
      throw toStoreError(error, operation);
    }
  }

  /**
   * Sends one command per item in one pipeline: one round trip. On a cluster, one pipeline per node
   * (each command still within one slot), sent in parallel: one round trip per node.
   */
  async function pipelined<T>(
    items: readonly T[],
    keyOf: (item: T) => string,
    queue: (pipeline: ChainableCommander, item: T) => void,
  ): Promise<unknown[]> {
    const replies = new Array<unknown>(items.length);
    const send = async (indexes: number[]) => {
      const pipeline = client.pipeline();
      for (const index of indexes) queue(pipeline, items[index] as T);
      const results = (await pipeline.exec()) ?? [];
      if (results.length !== indexes.length)
        throw new Error('pipeline answered a different number of replies');
      for (const [i, [error, reply]] of results.entries()) {
        if (error) throw error;
        replies[indexes[i] as number] = reply;
      }
    };
    await Promise.all(groupIndexes(items.map(keyOf), byNode).map(send));
    return replies;
  }

  return {
    tier: 'cacheside-redis',

    getMany(keys) {
      return call('getMany', async () => {
        const values = new Array<Buffer | null>(keys.length).fill(null);
        // On a single Redis this is one MGET; on a cluster one MGET per slot, auto-pipelined per node.
        const read = async (indexes: number[]) => {
          const replies = await client.mgetBuffer(indexes.map((i) => keys[i] as string));
          for (const [i, reply] of replies.entries()) values[indexes[i] as number] = reply;
        };
        await Promise.all(groupIndexes(keys, bySlot).map(read));
        return values.map((value) => (value ? decodeEntry(value) : undefined));
      });
    },

    async setMany(writes) {
      writes.forEach(assertCacheWrite);
      return call('setMany', async () => {
        const replies = await pipelined(writes, keyOfWrite, (pipeline, { key, entry, ttlMs }) => {
          const { kind, version, staleAt } = entry;
          const args = [
            KIND_CODES[kind],
            String(version),
            String(staleAt),
            encodeEntry(entry),
            ttlMs,
          ] as const;
          pipeline.cachesideSetIfNewer(key, ...args);
        });
        return replies.map((reply) => reply === 1);
      });
    },

    ttlMany(keys) {
      return call('ttlMany', async () => {
        const replies = await pipelined(keys, identity, (pipeline, key) => void pipeline.pttl(key));
        // PTTL answers -2 for a missing key and -1 for a key without TTL. The contract reports absence
        // as -1; a key without TTL (which no driver writes) is reported as Infinity so that a
        // "every key has a TTL" assertion fails loudly instead of reading it as absent.
        return replies.map((ms) => (ms === -2 ? -1 : ms === -1 ? Number.POSITIVE_INFINITY : Number(ms)));
      });
    },

    async acquireLocks(keys, token, ttlMs) {
      assertLockToken(token);
      assertTtlMs(ttlMs, 'lock ttlMs');
      return call('acquireLocks', async () => {
        const replies = await pipelined(keys, identity, (pipeline, key) => {
          pipeline.set(lockKeyOf(key), token, 'PX', ttlMs, 'NX');
        });
        return replies.map((reply) => reply === 'OK');
      });
    },

    async releaseLocks(keys, token) {
      assertLockToken(token);
      return call('releaseLocks', async () => {
        const replies = await pipelined(keys, identity, (pipeline, key) => {
          pipeline.cachesideReleaseLock(lockKeyOf(key), token, fillChannelOf(key), key);
        });
        return replies.map((reply) => reply === 1);
      });
    },

    onFill(key, listener) {
      return call('onFill', () => hub.add(fillChannelOf(key), () => listener(key)));
    },

    subscribe(channel, listener) {
      return call('subscribe', () => hub.add(channel, listener));
    },

    onReconnect: (listener) => hub.onReconnect(listener),

    publish(channel, message) {
      return call('publish', async () => void (await client.publish(channel, message)));
    },

    async scanKeys(prefix, onBatch) {
      assertPurgePrefix(prefix);
      const nodes = client instanceof Cluster ? client.nodes('master') : [client];
      let visited = 0;
      for (const node of nodes) {
        const batches = scanNode(node, prefix);
        for (;;) {
          // Each SCAN step is a command of its own: a failure is a store error, like any other call.
          const next = await call('scanKeys', () => batches.next());
          if (next.done) break;
          visited += next.value.length;
          await onBatch(next.value);
        }
      }
      return visited;
    },

    async purgePrefix(prefix) {
      assertPurgePrefix(prefix);
      return call('purgePrefix', async () => {
        // SCAN walks one node's keyspace, so a cluster is purged master by master.
        const nodes = client instanceof Cluster ? client.nodes('master') : [client];
        let removed = 0;
        for (const node of nodes) removed += await purgeNode(node, prefix, isCluster);
        return removed;
      });
    },

    close() {
      closed ??= Promise.all([hub.close(), connections.close()]).then(() => {});
      return closed;
    },
  };
}

// Private:

const identity = (key: string) => key;
const keyOfWrite = (write: CacheWrite) => write.key;

const KIND_CODES: Record<EntryKind, string> = { value: 'v', negative: 'n', tombstone: 't' };
const KINDS_BY_CODE: Record<number, EntryKind> = { 0x76: 'value', 0x6e: 'negative', 0x74: 'tombstone' };
const COLON = 0x3a;
const ZERO = 0x30;

function encodeEntry(entry: CacheEntry): Buffer {
  const header = Buffer.from(`${KIND_CODES[entry.kind]}:${entry.version}:${entry.staleAt}:`, 'latin1');
  return Buffer.concat([header, entry.payload]);
}

/** The entry in `raw`, or undefined when it is not in this format (read as a miss, then overwritten). */
function decodeEntry(raw: Buffer): CacheEntry | undefined {
  const kind = KINDS_BY_CODE[raw[0] ?? -1];
  if (!kind || raw[1] !== COLON) return undefined;
  const versionEnd = raw.indexOf(COLON, 2);
  const staleAtEnd = versionEnd === -1 ? -1 : raw.indexOf(COLON, versionEnd + 1);
  if (staleAtEnd === -1) return undefined;
  const version = decimalAt(raw, 2, versionEnd);
  const staleAt = decimalAt(raw, versionEnd + 1, staleAtEnd);
  if (version < 0 || staleAt < 0) return undefined;
  const start = staleAtEnd + 1;
  return {
    kind,
    version,
    staleAt,
    // A view, not a copy: MGET's reply buffer is ours alone.
    payload: new Uint8Array(raw.buffer, raw.byteOffset + start, raw.length - start),
  };
}

/**
 * The canonical decimal (`0` or 1..16 digits without a leading zero) in `raw[from, to)`, or -1.
 * Read from the bytes: this runs for every key of every MGET, and two strings and two regex tests
 * per key were a measurable share of the hit path (bench/README.md, "Profile").
 */
function decimalAt(raw: Buffer, from: number, to: number): number {
  const length = to - from;
  if (length < 1 || length > 16 || (length > 1 && raw[from] === ZERO)) return -1;
  let value = 0;
  for (let i = from; i < to; i += 1) {
    const digit = raw[i]! - ZERO;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * Rejects with a StoreTimeoutError when `work` has not settled `ms` after the call — but only after
 * letting the event loop read its sockets once more. A timer is served before pending I/O, so when
 * the loop was busy (a burst of requests) a plain timeout would fail a command whose reply had already
 * arrived, send its request to PostgreSQL and count toward opening the breaker. Deferring the
 * rejection with setImmediate (which runs after the poll phase) lets such a reply win; a Redis that
 * really is slow or gone still fails at the deadline. bench/README.md, "Stampede".
 */
function withDeadline<T>(work: Promise<T>, ms: number, operation: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        setImmediate(() =>
          reject(new StoreTimeoutError(`cache store ${operation} failed: no answer within ${ms} ms`)),
        ),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Indexes of `keys` grouped by `groupOf` (a slot, a node), in order of first appearance; a single
 * group when there is nothing to split by (a single Redis).
 */
function groupIndexes(keys: readonly string[], groupOf: ((key: string) => string | number) | undefined) {
  if (keys.length === 0) return [];
  if (!groupOf) return [keys.map((_, i) => i)];
  const groups = new Map<string | number, number[]>();
  for (const [i, key] of keys.entries()) {
    const group = groupOf(key);
    const indexes = groups.get(group);
    if (indexes) indexes.push(i);
    else groups.set(group, [i]);
  }
  return [...groups.values()];
}

/** The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, modulo 16384. */
export function slotOf(key: string): number {
  let crc = 0;
  for (const byte of Buffer.from(hashTagOf(key))) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** Batches of the keys under `prefix` on one node: SCAN, which never blocks the server as KEYS would. */
async function* scanNode(node: Redis, prefix: string): AsyncGenerator<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

async function purgeNode(node: Redis, prefix: string, isCluster: boolean): Promise<number> {
  let removed = 0;
  for await (const keys of scanNode(node, prefix)) {
    if (!isCluster) {
      removed += await node.unlink(...keys);
      continue;
    }
    // Even on one node, a multi-key UNLINK must stay within one slot.
    const pipeline = node.pipeline();
    for (const indexes of groupIndexes(keys, slotOf))
      pipeline.unlink(...indexes.map((i) => keys[i] as string));
    for (const [error, count] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      removed += Number(count);
    }
  }
  return removed;
}

/*
 * The fence of store.ts#setMany. KEYS[1] the entry; ARGV: kind code, version, staleAt, encoded entry,
 * ttl ms. Returns 1 when the write landed, 0 when the held entry stays (renewed by an equal-version
 * value or negative entry).
 */
const SET_IF_NEWER = `
local held = redis.call('GET', KEYS[1])
if held then
  local kind, version, payloadAt = string.match(held, '^([vnt]):(%d+):%d+:()')
  if kind then
    local incoming, current = tonumber(ARGV[2]), tonumber(version)
    if kind == 't' then
      if incoming < current or (incoming == current and ARGV[1] == 't') then return 0 end
    elseif incoming < current then
      return 0
    elseif incoming == current then
      -- A refill of the same row: keep the held bytes, but push its expiry out as the writer asked.
      -- A tombstone naming the held version (a duplicated event) has no expiry of its own to give.
      if ARGV[1] ~= 't' then
        redis.call('SET', KEYS[1], kind .. ':' .. version .. ':' .. ARGV[3] .. ':' .. string.sub(held, payloadAt), 'PX', ARGV[5])
      end
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
return 1
`;

/*
 * Compare-and-delete: a holder whose lock expired (and was taken by another caller) must not release
 * the new holder's lock. KEYS[1] the lock; ARGV: token, fill channel, message (the entry's key).
 */
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`;
