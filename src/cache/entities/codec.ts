/**
 * Entity payloads as stored in the cache: MessagePack (msgpackr) without shared structures or
 * records, so that any instance — another version of the code included — decodes any value with no
 * state beyond the bytes. Dates round-trip exactly through MessagePack's timestamp extension.
 * JSON was measured against it (see docs/consistency.md and the issue note): msgpackr is smaller and
 * faster on our rows, and needs no reviver to bring `Date`s back.
 */
import { Packr } from 'msgpackr';
import { CodedError } from '../../domain/errors.js';

export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  int64AsType: 'number',
});

export class CodecError extends CodedError<'CACHE_CODEC'> {
  static readonly code = 'CACHE_CODEC';
  readonly code = CodecError.code;
}

/**
 * A codec for one entity shape. `check` guards against decoding something that is not what this
 * version of the code expects (a foreign or corrupted key): such a value is treated as a miss, never
 * served.
 */
export function msgpackCodec<T>(name: string, check: (value: unknown) => value is T): Codec<T> {
  return {
    encode: (value) => packr.pack(value),
    decode(bytes) {
      let value: unknown;
      try {
        value = packr.unpack(bytes);
      } catch (error) {
        throw new CodecError(`cannot decode a cached ${name} (${bytes.length} bytes)`, { cause: error });
      }
      if (!check(value)) throw new CodecError(`a cached ${name} does not have the expected shape`);
      return value;
    },
  };
}
