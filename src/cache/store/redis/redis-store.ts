/**
 * The Redis driver of CacheStore (see contract.ts for the contract): the store's methods as Redis
 * commands and scripts, each one round trip — one MGET or one pipeline on a single Redis, one per
 * slot (MGET) or per node (pipeline) on a cluster, sent in parallel.
 *
 * Its parts: the connections (connections.ts), the wire format of an entry (wire-format.ts), the
 * Lua scripts (scripts.ts), slot grouping (slots.ts), the command deadline (deadline.ts), keyspace
 * walks (keyspace.ts), pub/sub (subscriptions.ts) and the returns of Redis after a loss
 * (connection-returns.ts).
 */
import type { EventEmitter } from 'node:events';
import type { ChainableCommander } from 'ioredis';
import { Cluster, type Redis } from 'ioredis';
import { assertCacheWrite, assertLockToken, assertPurgePrefix, assertTtlMs } from '../contract.js';
import type {
  CacheStore,
  CacheWrite,
  Dependency,
  DependentKeys,
  DependentRead,
  FillOutcome,
  LockAttempt,
} from '../contract.js';
import { StoreUnavailableError, toStoreError } from '../errors.js';
import { fillChannelOf, lockKeyOf } from '../key-names.js';
import { whenReady, type RedisConnections } from './connections.js';
import { withDeadline } from './deadline.js';
import { purgeNode, scanNode } from './keyspace.js';
import { defineScripts, FENCE_RENEWED, FILL_REVOKED, type StampArgs } from './scripts.js';
import { groupIndexes, slotOf } from './slots.js';
import { addressOf, watchConnectionReturns } from './connection-returns.js';
import { createSubscriptionHub } from './subscriptions.js';
import { decodeDependent, decodeEntry, encodeDependent, encodeEntry, KIND_CODES } from './wire-format.js';
import { createStampSource, GENERATION_TTL_MS, STAMP_TTL_MS } from './write-stamp.js';

export interface RedisStoreOptions {
  readonly connections: RedisConnections;
  /**
   * The write stamp's and the answer generation's keys (write-stamp.ts), `CacheKeys.dependents`: one
   * pair per namespace, and every store that writes the namespace must name the same, or its writes
   * would not move the stamp and its purges not the generation. A cluster keeps no write stamp (it
   * would cross slots: every check there is a full one).
   */
  readonly dependentKeys: DependentKeys;
  /**
   * Receives failures that no caller awaits: a fill or message listener that threw, a re-subscribe
   * after a reconnect that failed. @default ignore
   */
  readonly onError?: (error: Error) => void;
}

export function createRedisStore(options: RedisStoreOptions): CacheStore {
  for (const name of ['writeStamp', 'generation'] as const) {
    const key: unknown = options.dependentKeys?.[name];
    if (typeof key !== 'string' || key.length === 0) {
      throw new TypeError(`dependentKeys.${name} must be a non-empty string, got ${JSON.stringify(key)}`);
    }
  }
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
  defineScripts(client);
  const stampKey = isCluster ? '' : options.dependentKeys.writeStamp;
  const generationKey = options.dependentKeys.generation;
  const nextStamp = createStampSource();
  /** A script's StampArgs (scripts.ts): a fresh stamp per script call, never one per batch. */
  const stampArgs = (): StampArgs => [stampKey, nextStamp(), STAMP_TTL_MS];
  /**
   * The answer generation on a cluster, where it cannot be read inside the check's script: set to a
   * new value if missing (a value an older answer cannot have recorded), then read, in one pipeline to
   * its node.
   */
  async function clusterGeneration(): Promise<string> {
    const replies = await client
      .multi()
      .set(generationKey, nextStamp(), 'PX', GENERATION_TTL_MS, 'NX')
      .get(generationKey)
      .exec();
    const read = replies?.[1];
    if (!read || read[0] || typeof read[1] !== 'string') throw read?.[0] ?? new Error('generation not read');
    return read[1];
  }
  const hub = createSubscriptionHub({ connections, onError });
  let closed: Promise<void> | undefined;
  // Until the first connection is up, a command waits for it (bounded by the command timeout) instead
  // of failing at once: a server's first requests should not bypass a healthy Redis that is still
  // handshaking. Once it has been ready, a lost connection fails fast (no offline queue).
  let everReady = client.status === 'ready';
  if (!everReady) (client as EventEmitter).once('ready', () => (everReady = true));
  // The command connection's returns (connection-returns.ts, why).
  const returns = watchConnectionReturns(client, onError);
  /**
   * The connections a keyspace walk must visit: on a cluster, one per master that owns a slot. A
   * master the client dropped (it restarted: '-node') is left out of `nodes('master')` until a
   * redirection or a slot refresh brings it back, and a walk over the others would report success
   * having skipped its keys — the relay's `*` row marked done with one master's entries untouched.
   * So a walk with a slot owner missing fails, before and after (test/store/redis-reconnect.test.ts).
   */
  function everyMaster(operation: string, walked?: readonly Redis[]): Redis[] {
    if (!(client instanceof Cluster)) return [client];
    const masters = client.nodes('master');
    // After a walk: every owner must be among the nodes it walked, not only among those connected now.
    const covered = new Set((walked ?? masters).map(addressOf));
    for (const owners of client.slots) {
      const owner = owners?.[0];
      if (owner !== undefined && !covered.has(owner)) {
        throw new StoreUnavailableError(
          `cache store ${operation} refused: the master of some slots (${owner}) is not connected, and a walk without it would miss its keys`,
        );
      }
    }
    return masters;
  }
  const spanned = (operation: string) =>
    new StoreUnavailableError(
      `cache store ${operation} refused: a connection to Redis came back during the call, and until the outbox is applied Redis may hold values older than writes made meanwhile`,
    );

  /**
   * Runs `body`, turning anything it throws into a typed store error that names `operation`. Callers
   * check their arguments before: a bad argument is the caller's bug, a TypeError, not a store failure.
   */
  async function call<T>(operation: string, body: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreUnavailableError(`cache store ${operation} failed: the store is closed`);
    if (returns.foundBack()) throw spanned(operation);
    const at = returns.count;
    try {
      if (!everReady) await whenReady(client, connections.commandTimeoutMs);
      if (returns.count !== at) throw spanned(operation);
      const result = await withDeadline(body(), connections.commandTimeoutMs, operation);
      if (returns.count !== at) throw spanned(operation);
      return result;
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
        const replies = await pipelined(writes, keyOfWrite, (pipeline, write) => {
          pipeline.cachesideWrite(
            write.key,
            lockKeyOf(write.key),
            ...entryArgs(write),
            ...wakeArgs(write.key),
            ...stampArgs(),
          );
        });
        return replies.map((reply) => reply === 1);
      });
    },

    async fillMany(fills, token) {
      fills.forEach(assertCacheWrite);
      assertLockToken(token);
      return call('fillMany', async () => {
        if (!isCluster && fills.length > 0) {
          // The batch script's compact arguments (scripts.ts, why): keys, TTLs in one, entries.
          const replies = await client.cachesideFillMany(
            fills.length,
            ...fills.map(keyOfWrite),
            token,
            ...stampArgs(),
            fills.map((fill) => fill.ttlMs).join(','),
            ...fills.map((fill) => encodeEntry(fill.entry)),
          );
          return replies.map(fillOutcome);
        }
        const replies = await pipelined(fills, keyOfWrite, (pipeline, fill) => {
          pipeline.cachesideFill(
            fill.key,
            lockKeyOf(fill.key),
            token,
            ...entryArgs(fill),
            ...wakeArgs(fill.key),
          );
        });
        return replies.map(fillOutcome);
      });
    },

    async setDependent(write) {
      assertTtlMs(write.ttlMs, `ttlMs of ${write.key}`);
      if (!/^[A-Za-z0-9_.-]+$/.test(write.generation)) {
        throw new TypeError(
          `generation of ${write.key} must be one getDependent answered, got ${JSON.stringify(write.generation)}`,
        );
      }
      return call('setDependent', async () => {
        await client.set(write.key, encodeDependent(write), 'PX', write.ttlMs);
      });
    },

    getDependent(key, at) {
      return call('getDependent', async (): Promise<DependentRead> => {
        if (!isCluster) {
          const reply = await client.cachesideGetDependentBuffer(
            key,
            at,
            ...stampArgs(),
            generationKey,
            GENERATION_TTL_MS,
          );
          if (reply[0] === 1) {
            // A view of the payload inside the entry the script returned whole (scripts.ts, why).
            const [, entry, count, payloadAt, generation, freshUntil] = reply;
            return {
              status: 'current',
              payload: entry.subarray(payloadAt - 1),
              dependencies: Number(count),
              generation: generation.toString('latin1'),
              freshUntil: Number(freshUntil),
              listDependencies: () => decodeDependent(entry)?.dependencies ?? [],
            };
          }
          if (reply[0] === 0) return { status: 'absent', generation: reply[1].toString('latin1') };
          const [, kind, version, failedKey, generation] = reply;
          const failed: Dependency = {
            key: failedKey.toString('utf8'),
            kind: kind.toString() === 'n' ? 'negative' : 'value',
            version: Number(version.toString()),
          };
          return { status: 'outdated', failed, generation: generation.toString('latin1') };
        }
        // A cluster cannot run the check in one script (the dependencies live in other slots): the
        // generation and the entry (in parallel), then every dependency's header, one pipeline per node.
        const [generation, raw] = await Promise.all([clusterGeneration(), client.getBuffer(key)]);
        const entry = raw ? decodeDependent(raw) : undefined;
        if (entry === undefined || entry.generation !== generation) return { status: 'absent', generation };
        const headers = await pipelined(
          entry.dependencies,
          (d) => d.key,
          (pipeline, d) => {
            pipeline.getrangeBuffer(d.key, 0, 39);
          },
        );
        let freshUntil = Number.POSITIVE_INFINITY;
        for (const [i, dependency] of entry.dependencies.entries()) {
          const staleAt = currentUntil(headers[i] as Buffer, dependency, at);
          if (staleAt === undefined) return { status: 'outdated', failed: dependency, generation };
          freshUntil = Math.min(freshUntil, staleAt);
        }
        return {
          status: 'current',
          payload: entry.payload,
          dependencies: entry.dependencies.length,
          generation,
          freshUntil,
          listDependencies: () => entry.dependencies,
        };
      });
    },

    invalidateDependents() {
      // A generation no answer recorded, under allow-oom: a purge must work with Redis full.
      return call('invalidateDependents', async () => {
        await client.cachesideNewGeneration(generationKey, nextStamp(), GENERATION_TTL_MS);
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
        if (!isCluster && keys.length > 0) {
          const reply = await client.cachesideLockManyBuffer(keys.length, ...keys, token, ttlMs);
          return keys.map((_, i): LockAttempt => {
            const entry = reply[2 * i + 1];
            return {
              acquired: reply[2 * i] === 1,
              entry: entry instanceof Buffer ? decodeEntry(entry) : undefined,
            };
          });
        }
        const replies = await pipelined(keys, identity, (pipeline, key) => {
          pipeline.cachesideLockBuffer(key, lockKeyOf(key), token, ttlMs);
        });
        return replies.map((reply): LockAttempt => {
          const [acquired, entry] = reply as [number, Buffer | null];
          return { acquired: acquired === 1, entry: entry ? decodeEntry(entry) : undefined };
        });
      });
    },

    async releaseLocks(keys, token) {
      assertLockToken(token);
      return call('releaseLocks', async () => {
        const replies = await pipelined(keys, identity, (pipeline, key) => {
          pipeline.cachesideReleaseLock(lockKeyOf(key), token, ...wakeArgs(key));
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

    onReconnect(listener) {
      // One registration, one wrapper, in both: a function registered twice is called twice by each.
      const own = () => listener();
      const offSubscriber = hub.onReconnect(own);
      const offCommand = returns.onReturn(own);
      return () => {
        offSubscriber();
        offCommand();
      };
    },

    publish(channel, message) {
      return call('publish', async () => void (await client.publish(channel, message)));
    },

    async scanKeys(prefix, onBatch) {
      assertPurgePrefix(prefix);
      // Before its first connection a cluster client knows no slots, only its seed nodes: a walk
      // over those would pass every check and could miss whole masters. So, ready first.
      if (!everReady) await call('scanKeys', async () => undefined);
      const nodes = everyMaster('scanKeys');
      let visited = 0;
      // A walk that spans a return of Redis would go on with its cursor on what may be another
      // server (restarted): it could skip keys and still report success.
      const startedAt = returns.count;
      for (const node of nodes) {
        const batches = scanNode(node, prefix);
        for (;;) {
          // Each SCAN step is a command of its own: a failure is a store error, like any other call.
          const next = await call('scanKeys', () => batches.next());
          if (returns.count !== startedAt) throw spanned('scanKeys');
          if (next.done) break;
          visited += next.value.length;
          await onBatch(next.value);
        }
      }
      everyMaster('scanKeys', nodes);
      return visited;
    },

    async purgePrefix(prefix) {
      assertPurgePrefix(prefix);
      return call('purgePrefix', async () => {
        // SCAN walks one node's keyspace, so a cluster is purged master by master.
        const nodes = everyMaster('purgePrefix');
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

/** A fill script's answer: 1 stored, FENCE_RENEWED renewed, 0 fenced, FILL_REVOKED revoked. */
function fillOutcome(reply: unknown): FillOutcome {
  if (reply === 1) return 'stored';
  if (reply === FENCE_RENEWED) return 'renewed';
  return reply === FILL_REVOKED ? 'revoked' : 'fenced';
}

/** The check of the dependent-read script, on a header read by GETRANGE. */
/** The staleAt of the entry whose header is `header` while it is `dependency` fresh at `at`, else undefined. */
function currentUntil(header: Buffer, dependency: Dependency, at: number): number | undefined {
  // A missing key reads as an empty string, which decodes to nothing.
  const held = decodeEntry(header);
  const current =
    held !== undefined &&
    held.kind === dependency.kind &&
    held.version === dependency.version &&
    held.staleAt > at;
  return current ? held.staleAt : undefined;
}
const keyOfWrite = (write: CacheWrite) => write.key;

/** A write's arguments to the scripts: kind code, version, staleAt, encoded entry, ttl ms. */
function entryArgs({ entry, ttlMs }: CacheWrite) {
  return [
    KIND_CODES[entry.kind],
    String(entry.version),
    String(entry.staleAt),
    encodeEntry(entry),
    ttlMs,
  ] as const;
}

/** Where the waiters of `key` listen, and what they are told: the fill channel and the key. */
function wakeArgs(key: string) {
  return [fillChannelOf(key), key] as const;
}
