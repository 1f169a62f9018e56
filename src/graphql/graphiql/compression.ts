/**
 * Static bytes sent compressed: brotli when the client takes it, else gzip, else as they are.
 * Each encoding of a body is computed once, off the event loop (zlib's thread pool), and reused.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

const ENCODERS = {
  br: (bytes: Buffer) =>
    promisify(brotliCompress)(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 9 } }),
  gzip: (bytes: Buffer) => promisify(gzip)(bytes, { level: 9 }),
} as const;
export type Encoding = keyof typeof ENCODERS;

/** br if the client takes it, else gzip, else undefined (`;q=0` refuses an encoding). */
export function preferredEncoding(acceptEncoding: string | null): Encoding | undefined {
  const accepted = new Set(
    (acceptEncoding ?? '')
      .split(',')
      .map((part) => part.trim().toLowerCase())
      .filter((part) => !/;\s*q=0(\.0*)?$/.test(part))
      .map((part) => part.split(';')[0]!.trim()),
  );
  if (accepted.has('br')) return 'br';
  if (accepted.has('gzip')) return 'gzip';
  return undefined;
}

/** `bytes` and its encodings, each computed on first use. */
export function compressible(bytes: Buffer): {
  readonly bytes: Buffer;
  encoded(encoding: Encoding): Promise<Buffer>;
} {
  const encoded = new Map<Encoding, Promise<Buffer>>();
  return {
    bytes,
    encoded(encoding) {
      let result = encoded.get(encoding);
      if (result === undefined) encoded.set(encoding, (result = ENCODERS[encoding](bytes)));
      return result;
    },
  };
}
