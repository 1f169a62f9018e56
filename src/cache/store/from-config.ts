/**
 * Picks the store the configuration asks for: Redis (single or Cluster) when configured, the
 * in-process memory store otherwise, so `npm start` needs nothing but Node.
 */
import type { Config } from '../../config.js';
import type { Logger } from '../../observability/logger.js';
import { createMemoryStore } from './memory-store.js';
import { createRedisConnections } from './redis/connections.js';
import { createRedisStore } from './redis/redis-store.js';
import type { CacheStore, DependentKeys } from './contract.js';

export interface StoreFromConfigOptions {
  /** `CacheKeys.dependents` of the namespace this store serves (RedisStoreOptions.dependentKeys). */
  readonly dependentKeys: DependentKeys;
  /**
   * A Redis connection reported an error (ioredis emits one per failed reconnect attempt, so an
   * outage is many): the app's availability log turns them into one line per outage.
   * @default logged at debug level
   */
  readonly onConnectionError?: (error: unknown) => void;
}

export function createStoreFromConfig(
  config: Config,
  logger: Logger,
  options: StoreFromConfigOptions,
): CacheStore {
  const redis = config.redis;
  if (redis.kind === 'memory') return createMemoryStore();
  const connections = createRedisConnections({
    ...(redis.kind === 'single' ? { url: redis.url } : { clusterNodes: redis.nodes }),
    commandTimeoutMs: redis.commandTimeoutMs,
    onError: (error, role) => {
      logger.debug({ err: error, role }, 'redis connection error');
      options.onConnectionError?.(error);
    },
  });
  return createRedisStore({ connections, dependentKeys: options.dependentKeys });
}

/** For the startup log line: which store, and where, without credentials. */
export function describeStore(config: Config): string {
  const redis = config.redis;
  if (redis.kind === 'memory') return 'in-memory store (single process; set REDIS_URL for Redis)';
  if (redis.kind === 'cluster')
    return `Redis Cluster ${redis.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  try {
    const u = new URL(redis.url);
    return `Redis ${u.hostname}:${u.port || '6379'}`;
  } catch {
    return 'Redis (unparseable REDIS_URL)';
  }
}
