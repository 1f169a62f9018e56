/**
 * An instance that starts while Redis is down still ends up receiving invalidation events: the
 * subscriber retries in the background and announces its late start (the L1 tier clears on it).
 */
import { expect, test } from 'vitest';
import { createInvalidationSubscriber } from '../../src/cache/events/invalidation-subscriber.js';
import { encodeEvents, type InvalidationEvent } from '../../src/cache/events/invalidation-events.js';
import { createCacheKeys } from '../../src/cache/entities/keys.js';
import { createRedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { freePort } from '../support/ports.js';
import { startPrivateRedis, uniquePrefix } from '../support/redis.js';
import { until } from '../support/until.js';

test('a subscriber started while Redis is down subscribes once Redis is up, and says so', async () => {
  const port = await freePort();
  const keys = createCacheKeys(uniquePrefix('late_sub'));
  const store = createRedisStore({
    dependentKeys: keys.dependents,
    connections: createRedisConnections({
      url: `redis://127.0.0.1:${port}`,
      commandTimeoutMs: 200,
      onError: () => {},
    }),
  });
  const subscriber = createInvalidationSubscriber({ store, keys, logger: createLogger('silent') });
  const received: InvalidationEvent[] = [];
  let lateStarts = 0;
  subscriber.onEvents(({ events }) => received.push(...events));
  subscriber.onLateStart(() => (lateStarts += 1));

  await expect(subscriber.start()).rejects.toThrow();
  const redis = await startPrivateRedis({ port });
  try {
    // The retry backoff starts at 250 ms.
    await until('the subscriber to start late', () => lateStarts > 0);
    expect(lateStarts).toBe(1);
    const event: InvalidationEvent = { entity: 'profile', id: 42, version: 3 };
    // Published messages are lost until the subscription is in place: publish until one is heard.
    await until(
      'an event to be received',
      async () => {
        await store.publish(keys.eventsChannel, encodeEvents([event]));
        return received.length > 0;
      },
      { everyMs: 20 },
    );
    expect(received[0]).toEqual(event);
  } finally {
    await subscriber.stop();
    await store.close();
    await redis.stop();
  }
}, 30_000);
