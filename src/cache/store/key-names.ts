/**
 * The names a store derives from an entry's key: its stampede lock and its fill channel. Both keep
 * the key's hash tag (docs/contract.md, "Keys"), so on Redis Cluster they live in the entry's slot and
 * a script that touches the entry and its lock never crosses slots.
 */

/** What a lock's and a fill channel's names add to the key (the batch scripts derive them: scripts.ts). */
export const LOCK_SUFFIX = ':lock';
export const FILL_CHANNEL_SUFFIX = ':filled';

/** The stampede lock that guards the fill of `key` (and is its fill grant). */
export function lockKeyOf(key: string): string {
  return `${key}${LOCK_SUFFIX}`;
}

/** The key whose fill the lock `lockKey` guards, or undefined when it is not a lock's name. */
export function keyOfLock(lockKey: string): string | undefined {
  return lockKey.endsWith(LOCK_SUFFIX) ? lockKey.slice(0, -LOCK_SUFFIX.length) : undefined;
}

/** The channel on which the fill of `key` is announced to waiters. */
export function fillChannelOf(key: string): string {
  return `${key}${FILL_CHANNEL_SUFFIX}`;
}

/** The hash tag of a key (the text between the first `{` and the next `}`), as Redis Cluster reads it. */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
