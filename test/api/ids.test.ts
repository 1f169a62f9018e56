/**
 * The id rule (docs/contract.md, "Ids"), as src/domain/ids.ts states it for every caller: GraphQL
 * arguments, token subjects, cache keys, invalidation events and the command-line tools.
 */
import { describe, expect, it } from 'vitest';
import { ID_RULE, MAX_ID, isId, parseId } from '../../src/domain/ids.js';

describe('parseId', () => {
  it('accepts only the canonical decimal form of 1..2147483647', () => {
    expect(parseId('1')).toBe(1);
    expect(parseId('2147483647')).toBe(2_147_483_647);
    for (const bad of ['0', '007', '-1', '1.5', '1e3', 'abc', '', ' 1', '2147483648', '+1']) {
      expect(parseId(bad)).toBeUndefined();
    }
  });
});

describe('isId', () => {
  it('is true for the integers 1..MAX_ID only', () => {
    expect(MAX_ID).toBe(2_147_483_647);
    for (const good of [1, 42, MAX_ID]) expect(isId(good)).toBe(true);
    for (const bad of [0, -1, 1.5, MAX_ID + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(isId(bad)).toBe(false);
    }
  });

  it('is described in words for error messages', () => {
    expect(ID_RULE).toBe('the canonical decimal form of 1..2147483647');
  });
});
