/**
 * Redis Cluster slots: which slot a key hashes to, and how a multi-key call is split so that every
 * command stays within one slot (a multi-key command) or one node (a pipeline).
 */
import { hashTagOf } from '../key-names.js';

/**
 * Indexes of `keys` grouped by `groupOf` (a slot, a node), in order of first appearance; a single
 * group when there is nothing to split by (a single Redis).
 */
export function groupIndexes(
  keys: readonly string[],
  groupOf: ((key: string) => string | number) | undefined,
) {
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
