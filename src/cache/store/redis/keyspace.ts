/**
 * Walking a node's keyspace without blocking it: SCAN in batches (never KEYS), and purging with
 * UNLINK in batches, slot by slot on a cluster.
 */
import type { Redis } from 'ioredis';
import { groupIndexes, slotOf } from './slots.js';

/** Batches of the keys under `prefix` on one node: SCAN, which never blocks the server as KEYS would. */
export async function* scanNode(node: Redis, prefix: string): AsyncGenerator<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

export async function purgeNode(node: Redis, prefix: string, isCluster: boolean): Promise<number> {
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
