/**
 * The ioredis connections of the Redis store: one for commands and one, created on first use, for
 * pub/sub (a connection that has subscribed cannot be trusted with ordinary commands, and fill
 * notifications must not queue behind a slow MGET).
 *
 * Everything here is tuned for a cache that is never primary storage: a command that cannot be sent
 * right now fails at once (no offline queue), a command that is not answered within
 * `commandTimeoutMs` rejects, and a lost connection is retried in the background with a capped
 * exponential backoff, so that a Redis outage costs each request at most one command timeout.
 */
import type { EventEmitter } from 'node:events';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { HostPort } from '../../../config.js';
import { StoreUnavailableError } from '../errors.js';

export type RedisClient = Redis | Cluster;
export type RedisConnectionRole = 'command' | 'subscriber';

export interface RedisConnectionOptions {
  /** A single Redis, `redis://[user:password@]host:port[/db]`. Exactly one of `url` and `clusterNodes`. */
  readonly url?: string;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES, parsed by src/config.ts). */
  readonly clusterNodes?: readonly HostPort[];
  /** Longest wait for the answer to any command, in ms (REDIS_COMMAND_TIMEOUT_MS). */
  readonly commandTimeoutMs: number;
  /** Longest wait for a TCP connection (and its handshake), in ms. @default 2000 */
  readonly connectTimeoutMs?: number;
  /** First reconnect delay in ms; doubles per failed attempt. @default 50 */
  readonly reconnectBaseDelayMs?: number;
  /** Cap of the reconnect delay in ms. @default 2000 */
  readonly reconnectMaxDelayMs?: number;
  /** `CLIENT SETNAME` of the connections, so operators can find them in `CLIENT LIST`. @default 'cacheside' */
  readonly connectionName?: string;
  /**
   * Receives every error ioredis emits (refused connections, resets, failed reconnects). Without a
   * listener an `error` event would crash the process, so one is always attached; this callback
   * is where they are logged. @default ignore
   */
  readonly onError?: (error: Error, role: RedisConnectionRole) => void;
}

export interface RedisConnections {
  readonly mode: 'single' | 'cluster';
  /** Where the connections go, without credentials (for the startup log line). */
  readonly description: string;
  readonly commandTimeoutMs: number;
  /** The connection for every command except pub/sub. */
  readonly command: RedisClient;
  /** The dedicated pub/sub connection; created on the first call, then the same one. */
  subscriber(): RedisClient;
  /**
   * Resolves once the connections created so far are ready, waiting through failed attempts; rejects
   * after `timeoutMs` (@default connectTimeoutMs). Optional: commands work without it, see redis-store.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** Closes both connections (pending commands reject). Idempotent. */
  close(): Promise<void>;
}

export function createRedisConnections(options: RedisConnectionOptions): RedisConnections {
  const settings = validate(options);
  const onError = options.onError ?? (() => {});
  const clusterNodes = options.clusterNodes?.map(({ host, port }) => ({ host, port }));
  const mode = clusterNodes ? 'cluster' : 'single';

  const create = (role: RedisConnectionRole): RedisClient => {
    const client = clusterNodes
      ? new Cluster(clusterNodes, clusterOptions(settings, role))
      : new Redis(options.url ?? '', redisOptions(settings, role));
    (client as EventEmitter).on('error', (error: Error) => onError(error, role));
    // A Cluster reports the failures of its node connections separately.
    if (client instanceof Cluster)
      (client as EventEmitter).on('node error', (error: Error) => onError(error, role));
    return client;
  };

  const command = create('command');
  let subscriber: RedisClient | undefined;
  let closing: Promise<void> | undefined;

  return {
    mode,
    description: clusterNodes
      ? `Redis Cluster (seeds ${clusterNodes.map((n) => `${n.host}:${n.port}`).join(', ')})`
      : redactUrl(options.url ?? ''),
    commandTimeoutMs: settings.commandTimeoutMs,
    command,
    subscriber() {
      if (closing) throw new StoreUnavailableError('Redis connections are closed');
      subscriber ??= create('subscriber');
      return subscriber;
    },
    async ready(timeoutMs = settings.connectTimeoutMs) {
      const pending = [command, subscriber].flatMap((c) =>
        c ? [whenReady(c, timeoutMs, { throughReconnects: true })] : [],
      );
      await Promise.all(pending);
    },
    close() {
      closing ??= Promise.all([command, subscriber].flatMap((c) => (c ? [quit(c)] : []))).then(() => {});
      return closing;
    },
  };
}

/**
 * Resolves when `client` is ready for commands; rejects after `timeoutMs`, when it has ended, or, unless
 * `throughReconnects`, as soon as a connection attempt fails (the server is down: waiting on helps nobody
 * whose request is in flight).
 */
export function whenReady(
  client: RedisClient,
  timeoutMs: number,
  options: { throughReconnects?: boolean } = {},
): Promise<void> {
  const unavailable = (why: string) => new StoreUnavailableError(`Redis is not available: ${why}`);
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(unavailable('the connection is closed'));
  if (client.status === 'reconnecting' && !options.throughReconnects) {
    return Promise.reject(unavailable('the connection is lost, reconnecting'));
  }
  const events = client as EventEmitter;
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      events.off('ready', onReady);
      events.off('end', onEnd);
      events.off('reconnecting', onReconnecting);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => settle();
    const onEnd = () => settle(unavailable('the connection is closed'));
    const onReconnecting = () => {
      if (!options.throughReconnects) settle(unavailable('the connection attempt failed'));
    };
    const timer = setTimeout(
      () => settle(unavailable(`not ready within ${timeoutMs} ms (${client.status})`)),
      timeoutMs,
    );
    events.on('ready', onReady);
    events.on('end', onEnd);
    events.on('reconnecting', onReconnecting);
  });
}

interface Settings {
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  connectionName: string;
}

function validate(options: RedisConnectionOptions): Settings {
  if ((options.url === undefined) === (options.clusterNodes === undefined)) {
    throw new TypeError('Redis connections need exactly one of `url` and `clusterNodes`');
  }
  if (options.clusterNodes?.length === 0)
    throw new TypeError('Redis `clusterNodes` must name at least one seed');
  const settings: Settings = {
    commandTimeoutMs: options.commandTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? 2000,
    reconnectBaseDelayMs: options.reconnectBaseDelayMs ?? 50,
    reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? 2000,
    connectionName: options.connectionName ?? 'cacheside',
  };
  for (const name of [
    'commandTimeoutMs',
    'connectTimeoutMs',
    'reconnectBaseDelayMs',
    'reconnectMaxDelayMs',
  ] as const) {
    const value = settings[name];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`Redis option ${name} must be a positive integer of ms, got ${String(value)}`);
    }
  }
  return settings;
}

/** Capped exponential backoff with jitter, so instances that lost Redis together do not reconnect together. */
function backoff(settings: Settings): (attempt: number) => number {
  return (attempt) => {
    const delay = Math.min(
      settings.reconnectBaseDelayMs * 2 ** Math.min(attempt - 1, 20),
      settings.reconnectMaxDelayMs,
    );
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  };
}

/** ioredis' own timeout on the command connection, in multiples of commandTimeoutMs. */
const BACKSTOP_FACTOR = 5;

function connectionOptions(settings: Settings, role: RedisConnectionRole) {
  return {
    connectionName: `${settings.connectionName}:${role}`,
    // On the command connection this is only a backstop: the store enforces commandTimeoutMs itself,
    // without failing replies that arrived while the event loop was busy (deadline.ts `withDeadline`).
    commandTimeout:
      role === 'command' ? settings.commandTimeoutMs * BACKSTOP_FACTOR : settings.commandTimeoutMs,
    connectTimeout: settings.connectTimeoutMs,
    // A command caught by a disconnect fails once rather than waiting through reconnect attempts:
    // by then the engine has gone to PostgreSQL and nobody awaits the answer.
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
    // The store re-subscribes itself on 'ready' (and handles failures): ioredis' own re-subscribe
    // rejects into the void when it times out, an unhandled rejection that would end the process.
    autoResubscribe: role === 'subscriber' ? false : true,
  } satisfies RedisOptions;
}

function redisOptions(settings: Settings, role: RedisConnectionRole): RedisOptions {
  return {
    ...connectionOptions(settings, role),
    // Fail fast instead of queueing while disconnected: a queued cache read is a request waiting for
    // an answer it will no longer use.
    enableOfflineQueue: false,
    retryStrategy: backoff(settings),
  };
}

function clusterOptions(settings: Settings, role: RedisConnectionRole): ClusterOptions {
  return {
    redisOptions: connectionOptions(settings, role),
    enableOfflineQueue: false,
    // Per-slot commands issued in one tick go to each node as one pipeline (docs/contract.md, "Keys").
    enableAutoPipelining: true,
    clusterRetryStrategy: backoff(settings),
    slotsRefreshTimeout: Math.max(settings.connectTimeoutMs, 1000),
  };
}

async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  try {
    await client.quit();
  } catch {
    // Already disconnected or unreachable: QUIT cannot be delivered, so drop the socket.
    client.disconnect();
  }
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'redis (unparseable url)';
  }
}
