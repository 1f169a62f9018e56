import { describe, expect, it } from 'vitest';
import { CACHED_ENTITIES, createCacheKeys } from '../../src/cache/entities/keys.js';
import { fillChannelOf, hashTagOf, lockKeyOf } from '../../src/cache/store/key-names.js';

describe('cache keys', () => {
  const keys = createCacheKeys('cs');

  it('builds the key grammar of the contract', () => {
    expect(keys.namespace).toBe('cs:v1:');
    expect(keys.eventsChannel).toBe('cs:v1:events');
    expect(keys.entity('user', 42)).toBe('cs:v1:user:{42}');
    expect(keys.entity('profile', 42)).toBe('cs:v1:profile:{42}');
    expect(keys.entity('post', 7)).toBe('cs:v1:post:{7}');
    expect(keys.entity('userPosts', 42)).toBe('cs:v1:user:{42}:posts');
    expect(keys.entity('userDirectory', 1)).toBe('cs:v1:userDirectory:{1}');
    expect(keys.entity('user', 2147483647)).toBe('cs:v1:user:{2147483647}');
  });

  it('puts every key of one id, its lock and its fill channel under one hash tag', () => {
    for (const entity of CACHED_ENTITIES) {
      const key = keys.entity(entity, 42);
      expect(hashTagOf(key)).toBe('42');
      expect(lockKeyOf(key)).toBe(`${key}:lock`);
      expect(hashTagOf(lockKeyOf(key))).toBe('42');
      expect(fillChannelOf(key)).toBe(`${key}:filled`);
      expect(hashTagOf(fillChannelOf(key))).toBe('42');
    }
    expect(lockKeyOf('cs:v1:profile:{42}')).toBe('cs:v1:profile:{42}:lock');
  });

  it('reads hash tags as Redis Cluster does', () => {
    expect(hashTagOf('plain')).toBe('plain');
    expect(hashTagOf('a{}b')).toBe('a{}b');
    expect(hashTagOf('a{b')).toBe('a{b');
    expect(hashTagOf('a{x}{y}')).toBe('x');
    expect(hashTagOf('{}{x}')).toBe('{}{x}');
  });

  it.each([0, -1, 1.5, 2147483648, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])(
    'refuses the id %s',
    (id) => {
      expect(() => keys.entity('user', id)).toThrow(RangeError);
      expect(() => keys.entity('user', id)).toThrow(String(id));
    },
  );

  it('keys a page of user ids under the directory: its slot, its cursor (0: the first page), its size', () => {
    expect(keys.page(20, 0)).toBe('cs:v1:userDirectory:{1}:page:0:20');
    expect(keys.page(5, 2147483647)).toBe('cs:v1:userDirectory:{1}:page:2147483647:5');
    expect(hashTagOf(keys.page(20, 40))).toBe(hashTagOf(keys.entity('userDirectory', 1)));
  });

  it.each([
    [0, 0],
    [1.5, 0],
    [20, -1],
    [20, 1.5],
    [20, 2147483648],
    [Number.NaN, 0],
  ])('refuses the page of size %s after %s', (first, after) => {
    expect(() => keys.page(first, after)).toThrow(RangeError);
    expect(() => keys.page(first, after)).toThrow(
      String(Number.isSafeInteger(first) && first > 0 ? after : first),
    );
  });

  it.each(['', 'a b', 'cs:x', 'a{b}', 'x'.repeat(65), 'é'])('refuses the prefix %j', (prefix) => {
    expect(() => createCacheKeys(prefix)).toThrow(TypeError);
  });

  it('accepts the prefixes test files use', () => {
    expect(createCacheKeys('t_store_0a1b2c3d4e').entity('post', 1)).toBe('t_store_0a1b2c3d4e:v1:post:{1}');
  });
});

describe('cache keys, parsed back', () => {
  const keys = createCacheKeys('cs');

  it('names the entity and id of every entity key, and nothing else', () => {
    for (const entity of CACHED_ENTITIES) {
      for (const id of [1, 42, 2147483647])
        expect(keys.parse(keys.entity(entity, id))).toEqual({ entity, id });
    }
    for (const other of [
      'cs:v1:profile:{42}:lock',
      'cs:v1:profile:{42}:filled',
      'cs:v1:events',
      'cs:v2:profile:{42}',
      'other:v1:profile:{42}',
      'cs:v1:profile:{042}',
      'cs:v1:profile:{2147483648}',
      'cs:v1:post:{7}:posts',
      'cs:v1:userDirectory:{1}:posts',
      'cs:v1:userDirectory:{1}:page:0:20',
      'cs:v1:comment:{7}',
    ]) {
      expect(keys.parse(other), other).toBeUndefined();
    }
  });

  it('names the size and cursor of every page key, and nothing else', () => {
    for (const [first, after] of [
      [20, 0],
      [1, 1],
      [100, 2147483647],
    ] as const) {
      expect(keys.parsePage(keys.page(first, after))).toEqual({ first, after });
    }
    for (const other of [
      'cs:v1:userDirectory:{1}',
      'cs:v1:userDirectory:{1}:page:0:0',
      'cs:v1:userDirectory:{1}:page:00:20',
      'cs:v1:userDirectory:{1}:page:0:020',
      'cs:v1:userDirectory:{1}:page:2147483648:20',
      'cs:v1:userDirectory:{2}:page:0:20',
      'cs:v1:userDirectory:{1}:page:0:20:lock',
      'other:v1:userDirectory:{1}:page:0:20',
      'cs:v1:response:{abcdefghijklmnopqrstuvwxyz012345}',
    ]) {
      expect(keys.parsePage(other), other).toBeUndefined();
    }
  });
});
