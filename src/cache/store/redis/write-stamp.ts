/**
 * The write stamp of a single Redis: one key whose value changes, atomically, with every change any
 * script makes to an entry, to a value never used before. A dependent entry (a stored answer) that
 * passed its full check records the stamp it passed under; while the key still holds it, nothing the
 * answer depends on can have changed, and the check is one comparison instead of a header read per
 * dependency (scripts.ts, `GET_DEPENDENT`, says what it cannot see and why that is safe).
 *
 * The answer generation is the other half: moved only by `invalidateDependents` (operators' purges),
 * recorded by every answer when written — the generation its computation began under — and compared on
 * every read, stamped or not: an answer of an older generation is absent.
 *
 * Stamps and generations are never reused, not merely "different from the last": either key can be
 * evicted or expire and be set again, and an answer that recorded a value before must not match the
 * new one. So each is this process's random id and a counter — distinct across processes (72 random
 * bits) and within one. A missing generation key is set anew by the next read: every answer is then
 * of an older generation, which costs re-executions, never a stale answer.
 */
import { randomBytes } from 'node:crypto';

/** Every stamp has this length: a passing check writes it over the entry's header in place. */
export const STAMP_LENGTH = 24;
/** An entry not yet checked: no stamp is made of dots (base64url and base36 have none). */
export const UNSTAMPED = '.'.repeat(STAMP_LENGTH);
/** Width of the earliest staleAt recorded beside the stamp (epoch ms, zero-padded). */
export const FRESH_UNTIL_WIDTH = 16;
/** The earliest staleAt of an answer with no dependencies: its own TTL bounds it. */
export const NO_EXPIRY = '9'.repeat(FRESH_UNTIL_WIDTH - 1);
/**
 * How long the stamp key lives without a write. Its expiry only costs full checks until the next
 * passing check sets it again; every key has a TTL (docs/contract.md, "Keys").
 */
export const STAMP_TTL_MS = 3_600_000;

/**
 * How long the generation key lives; every full check pushes it out again. When it expires, every
 * stored answer is recomputed once.
 */
export const GENERATION_TTL_MS = 86_400_000;

/** A source of stamps (and generations): each call answers one no process has answered before. */
export function createStampSource(): () => string {
  const processId = randomBytes(9).toString('base64url');
  let counter = 0;
  return () => processId + (counter++).toString(36).padStart(STAMP_LENGTH - processId.length, '0');
}
