/**
 * How an entry is stored in Redis: one string, an ASCII header, then the payload bytes untouched:
 *
 *   <kind>:<version>:<staleAt>:<payload>        e.g. "v:7:1767225600000:\x93\xa3..."
 *
 * with kind `v` (value), `n` (negative) or `t` (tombstone). The fence script (scripts.ts) reads the
 * version with `string.match` on the header alone, so the payload is never decoded inside Redis, and
 * a value that is not in this format (a foreign or older one) counts as absent and is overwritten.
 */
import type { CacheEntry, Dependency, DependentWrite, EntryKind } from '../contract.js';
import { FRESH_UNTIL_WIDTH, STAMP_LENGTH, UNSTAMPED } from './write-stamp.js';

export const KIND_CODES: Record<EntryKind, string> = { value: 'v', negative: 'n', tombstone: 't' };
const KINDS_BY_CODE: Record<number, EntryKind> = { 0x76: 'value', 0x6e: 'negative', 0x74: 'tombstone' };
const COLON = 0x3a;
const ZERO = 0x30;
const NEWLINE = 0x0a;
const SPACE = 0x20;
const UNCHECKED = '0'.repeat(FRESH_UNTIL_WIDTH);

export function encodeEntry(entry: CacheEntry): Buffer {
  // One buffer written in place: a header buffer and a concat were two allocations per fill.
  const header = `${KIND_CODES[entry.kind]}:${entry.version}:${entry.staleAt}:`;
  const encoded = Buffer.allocUnsafe(header.length + entry.payload.length);
  encoded.write(header, 0, 'latin1');
  encoded.set(entry.payload, header.length);
  return encoded;
}

/** The entry in `raw`, or undefined when it is not in this format (read as a miss, then overwritten). */
export function decodeEntry(raw: Buffer): CacheEntry | undefined {
  const kind = KINDS_BY_CODE[raw[0] ?? -1];
  if (!kind || raw[1] !== COLON) return undefined;
  const versionEnd = raw.indexOf(COLON, 2);
  const staleAtEnd = versionEnd === -1 ? -1 : raw.indexOf(COLON, versionEnd + 1);
  if (staleAtEnd === -1) return undefined;
  const version = decimalAt(raw, 2, versionEnd);
  const staleAt = decimalAt(raw, versionEnd + 1, staleAtEnd);
  if (version < 0 || staleAt < 0) return undefined;
  const start = staleAtEnd + 1;
  return {
    kind,
    version,
    staleAt,
    // A view, not a copy: MGET's reply buffer is ours alone.
    payload: new Uint8Array(raw.buffer, raw.byteOffset + start, raw.length - start),
  };
}

/**
 * The canonical decimal (`0` or 1..16 digits without a leading zero) in `raw[from, to)`, or -1.
 * Read from the bytes: this runs for every key of every MGET, and two strings and two regex tests
 * per key were a measurable share of the hit path (bench/README.md, "Profile").
 */
function decimalAt(raw: Buffer, from: number, to: number): number {
  const length = to - from;
  if (length < 1 || length > 16 || (length > 1 && raw[from] === ZERO)) return -1;
  let value = 0;
  for (let i = from; i < to; i += 1) {
    const digit = raw[i]! - ZERO;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * A dependent entry (the response tier's): a header, its dependencies as text lines, then the
 * payload bytes:
 *
 *   r:<generation>:<stamp>:<freshUntil>:<count>:<linesLength>\n<kind><version> <key>\n…<payload>
 *   e.g. "r:<24 characters>:<24 dots>:0000000000000000:2:36\nv7 cs:v1:user:{1}\nn0 cs:v1:post:{9}\n{…}"
 *
 * so that the read script (scripts.ts, `cachesideGetDependent`) walks the lines with `string.match`
 * and checks each key's header with GETRANGE, never decoding a payload. `generation` is the one the
 * answer's computation began under (write-stamp.ts). `stamp` (UNSTAMPED when written) and
 * `freshUntil` (zeros) have fixed widths: a check that passes writes the write stamp it
 * passed under and the earliest staleAt it read over them in place (write-stamp.ts). `linesLength`
 * says where the payload starts without walking the lines. Keys never hold a newline (their grammar
 * is docs/contract.md's).
 */
export function encodeDependent({
  payload,
  dependencies,
  generation,
}: Pick<DependentWrite, 'payload' | 'dependencies' | 'generation'>): Buffer {
  const lines = Buffer.from(
    dependencies.map((d) => `${KIND_CODES[d.kind]}${d.version} ${d.key}\n`).join(''),
    'utf8',
  );
  const header = `r:${generation}:${UNSTAMPED}:${UNCHECKED}:${dependencies.length}:${lines.length}\n`;
  return Buffer.concat([Buffer.from(header, 'latin1'), lines, payload]);
}

/** The generation, dependencies and payload in `raw`, or undefined when it is not a dependent entry. */
export function decodeDependent(
  raw: Buffer,
): { generation: string; dependencies: Dependency[]; payload: Uint8Array } | undefined {
  if (raw[0] !== 0x72 || raw[1] !== COLON) return undefined;
  const generationEnd = raw.indexOf(COLON, 2);
  const stampEnd = generationEnd + 1 + STAMP_LENGTH;
  if (generationEnd === -1 || raw[stampEnd] !== COLON) return undefined;
  const generation = raw.toString('latin1', 2, generationEnd);
  const freshEnd = stampEnd + 1 + FRESH_UNTIL_WIDTH;
  const countEnd = raw[freshEnd] === COLON ? raw.indexOf(COLON, freshEnd + 1) : -1;
  let at = countEnd === -1 ? -1 : raw.indexOf(NEWLINE, countEnd + 1);
  const count = at === -1 ? -1 : decimalAt(raw, freshEnd + 1, countEnd);
  if (count < 0) return undefined;
  const dependencies: Dependency[] = [];
  for (let i = 0; i < count; i += 1) {
    const start = at + 1;
    const end = raw.indexOf(NEWLINE, start);
    const space = end === -1 ? -1 : raw.indexOf(SPACE, start);
    const kind = KINDS_BY_CODE[raw[start] ?? -1];
    if (space === -1 || space > end || (kind !== 'value' && kind !== 'negative')) return undefined;
    const version = decimalAt(raw, start + 1, space);
    if (version < 0) return undefined;
    dependencies.push({ kind, version, key: raw.toString('utf8', space + 1, end) });
    at = end;
  }
  const start = at + 1;
  return {
    generation,
    dependencies,
    payload: new Uint8Array(raw.buffer, raw.byteOffset + start, raw.length - start),
  };
}
