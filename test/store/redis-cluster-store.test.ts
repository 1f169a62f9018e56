/**
 * The Redis driver against a private Redis Cluster of 3 masters (no replicas), started for this file:
 * the store contract (test/support/store-contract.ts), with keys spread over every master and round
 * trips counted per node.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from 'ioredis';
import { createRedisConnections } from '../../src/cache/store/redis/connections.js';
import { createRedisStore } from '../../src/cache/store/redis/redis-store.js';
import { startPrivateRedisCluster } from '../support/redis.js';
import {
  countSocketWrites,
  describeStoreContract,
  storeKeySpace,
  type Harness,
} from '../support/store-contract.js';

const keySpace = storeKeySpace('clusterstore');
const PREFIX = keySpace.prefix;

describeStoreContract('redis cluster (private, 3 masters)', clusterHarness, keySpace);

// Helpers:

async function clusterHarness(): Promise<Harness> {
  const cluster = await startPrivateRedisCluster(3);
  const connections = createRedisConnections({ clusterNodes: cluster.seeds, commandTimeoutMs: 5000 });
  const peerConnections = createRedisConnections({ clusterNodes: cluster.seeds, commandTimeoutMs: 5000 });
  await Promise.all([connections.ready(), peerConnections.ready()]);
  const store = createRedisStore({ connections, dependentKeys: keySpace.cacheKeys.dependents });
  const peer = createRedisStore({
    connections: peerConnections,
    dependentKeys: keySpace.cacheKeys.dependents,
  });
  // Node connections open on first use; touch every slot's node so that each has a socket to count.
  await store.getMany(Array.from({ length: 64 }, (_, i) => `${PREFIX}:warm:{${i}}`));
  return {
    store,
    peer,
    measure: countSocketWrites(() => (connections.command as Cluster).nodes('master')),
    cluster: true,
    elapse: (ms) => sleep(ms),
    close: async () => {
      await Promise.all([store.close(), peer.close()]);
      await cluster.stop();
    },
  };
}
