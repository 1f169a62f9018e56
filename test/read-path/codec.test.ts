import { Packr, unpack } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { CodecError, msgpackCodec } from '../../src/cache/entities/codec.js';

interface Row {
  id: number;
  name: string;
  createdAt: Date;
  bio: string | null;
}
const isRow = (v: unknown): v is Row =>
  typeof v === 'object' && v !== null && typeof (v as Row).id === 'number' && (v as Row).createdAt instanceof Date;
const codec = msgpackCodec('row', isRow);

describe('msgpack codec', () => {
  test('round-trips rows exactly, millisecond timestamps and odd text included', () => {
    const rows: Row[] = [
      { id: 1, name: 'Ada', createdAt: new Date('2026-11-27T10:00:05.678Z'), bio: null },
      { id: 2147483647, name: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ — "quoted"', createdAt: new Date(0), bio: '' },
      { id: 3, name: 'x'.repeat(20_000), createdAt: new Date('1999-12-31T23:59:59.999Z'), bio: 'line\nbreak' },
    ];
    for (const row of rows) {
      const back = codec.decode(codec.encode(row));
      expect(back).toEqual(row);
      expect(back.createdAt.toISOString()).toBe(row.createdAt.toISOString());
    }
  });

  test('uses no shared structures: any other decoder reads the bytes', () => {
    const row = { id: 7, name: 'Grace', createdAt: new Date('2026-01-02T03:04:05.006Z'), bio: 'b' };
    const bytes = codec.encode(row);
    expect(unpack(bytes)).toEqual(row);
    expect(new Packr({ useRecords: true, mapsAsObjects: true }).unpack(bytes)).toEqual(row);
  });

  test('refuses bytes that are not a row of this shape, with a typed error', () => {
    expect(() => codec.decode(new Uint8Array([0xc1]))).toThrow(CodecError);
    expect(() => codec.decode(codec.encode({ id: 'x' } as unknown as Row))).toThrow(/expected shape/);
  });
});
