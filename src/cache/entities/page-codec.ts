/**
 * A page of user ids as the store holds it (the payload of a dependent entry, src/cache/read/
 * page-reader.ts): `<more>:<id>,<id>,…`, `more` being `1` when more ids follow the page and `0` when
 * it is the last. Read by the page reader and by the consistency monitor, which compares pages with
 * PostgreSQL's.
 */
import type { UserPageIds, UserPageKey } from '../../db/repositories.js';

// One of each per process: a hit decodes its payload, and a decoder per hit is garbage on the hot path.
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

export function encodePage({ ids, hasMore }: UserPageIds): Uint8Array {
  return ENCODER.encode(`${hasMore ? 1 : 0}:${ids.join(',')}`);
}

/**
 * The page `payload` holds, if it is one for `key`: ascending ids after its cursor, at most its size,
 * and exactly its size when more follow. `undefined` for anything else (foreign bytes, another build).
 */
export function decodePage(payload: Uint8Array, { first, after }: UserPageKey): UserPageIds | undefined {
  const text = DECODER.decode(payload);
  if (text[1] !== ':' || (text[0] !== '0' && text[0] !== '1')) return undefined;
  const body = text.slice(2);
  const ids = body === '' ? [] : body.split(',').map(Number);
  const hasMore = text[0] === '1';
  if (ids.length > first || (hasMore && ids.length !== first)) return undefined;
  let previous = after;
  for (const id of ids) {
    if (!Number.isSafeInteger(id) || id <= previous) return undefined;
    previous = id;
  }
  return { ids, hasMore };
}
