/**
 * An instance that starts while Redis is down still ends up receiving invalidation events: the
 * subscriber retries in the background and announces its late start (the L1 tier clears on it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import { createInvalidationSubscriber } from '../../src/cache/events/invalidation-subscriber.js';
import { encodeEvents, type InvalidationEvent } from '../../src/cache/events/invalidation-events.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { createRedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { freePort } from '../support/ports.js';
import { startPrivateRedis, uniquePrefix } from '../support/redis.js';

test('a subscriber started while Redis is down subscribes once Redis is up, and says so', async () => {
  const port = await freePort();
  const store = createRedisStore({
    connections: createRedisConnections({
      url: `redis://127.0.0.1:${port}`,
      commandTimeoutMs: 200,
      onError: () => {},
    }),
  });
  const keys = createCacheKeys(uniquePrefix('late_sub'));
  const subscriber = createInvalidationSubscriber({ store, keys, logger: createLogger('silent') });
  const received: InvalidationEvent[] = [];
  let lateStarts = 0;
  subscriber.onEvents(({ events }) => received.push(...events));
  subscriber.onLateStart(() => (lateStarts += 1));

  await expect(subscriber.start()).rejects.toThrow();
  const redis = await startPrivateRedis({ port });
  try {
    // Bounded: the retry backoff starts at 250 ms.
    for (let i = 0; i < 100 && lateStarts === 0; i += 1) await sleep(50);
    expect(lateStarts).toBe(1);
    const event: InvalidationEvent = { entity: 'profile', id: 42, version: 3 };
    for (let i = 0; i < 100 && received.length === 0; i += 1) {
      await store.publish(keys.eventsChannel, encodeEvents([event]));
      await sleep(20);
    }
    expect(received[0]).toEqual(event);
  } finally {
    await subscriber.stop();
    await store.close();
    await redis.stop();
  }
}, 30_000);
