/**
 * In-process copies of stored answers (src/cache/response/response-memo.ts), over a real L1 tier on a
 * fake clock: a copy is served while L1 knows nothing newer of what it read, and dropped the moment
 * it does (an event, a fence, an entry read or written); it is not kept when an event came in while
 * the store checked it, nor across a clear; it lives no longer than L1's TTL after the store vouched
 * for it, nor past its dependencies' logical expiry; and its memory is bounded. The same rules end to
 * end, on two instances, are test/read-path/response-memo-coherence.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createL1Tier } from '../../src/cache/read/l1-tier.js';
import {
  createResponseMemo,
  type KeptAnswer,
  type MemoTicket,
  type VersionFeed,
} from '../../src/cache/response/response-memo.js';
import { mulberry32 } from '../../src/db/prng.js';
import type { CacheEntry, Dependency } from '../../src/cache/store/contract.js';

const HOUR = 3_600_000;

function setup({ ttlMs = 1000, maxBytes = 1_000_000 } = {}) {
  let t = 1_767_225_600_000;
  const now = () => t;
  const l1 = createL1Tier({ maxEntries: 100, ttlMs, now });
  const memo = createResponseMemo({ feed: l1, maxBytes });
  return { l1, memo, now, advance: (ms: number) => void (t += ms) };
}

const answer = (body = '{"data":{}}', dependencies = 1): KeptAnswer => ({ body, etag: '"e"', dependencies });
const two = answer(undefined, 2);
const on = (key: string, version: number, kind: Dependency['kind'] = 'value'): Dependency => ({
  key,
  kind,
  version,
});
const value = (version: number, staleAt: number): CacheEntry => ({
  kind: 'value',
  version,
  staleAt,
  payload: Uint8Array.of(version),
});

describe('response memo', () => {
  it('serves a kept copy until L1 learns a newer version of one dependency, by event or by an entry offered', () => {
    const { l1, memo, now } = setup();
    const far = now() + HOUR;
    expect(memo.keep('r1', two, [on('user', 3), on('profile', 5)], far, memo.ticket())).toBe(true);
    expect(memo.keep('r2', answer(), [on('user', 3)], far, memo.ticket())).toBe(true);
    expect(memo.get('r1')).toEqual(two);

    // Older or equal versions, and other keys, tell it nothing new.
    l1.invalidate('profile', 5);
    l1.invalidate('profile', 4);
    l1.offer('user', value(2, far), now());
    l1.invalidate('post', 99);
    expect([memo.get('r1'), memo.get('r2')]).toEqual([two, answer()]);

    // An event: the one copy that read the older profile goes; the other stays.
    l1.invalidate('profile', 6);
    expect([memo.get('r1'), memo.get('r2')]).toEqual([undefined, answer()]);

    // An entry read or written at a newer version (this instance's own write-through): gone.
    l1.offer('user', value(4, far), now());
    expect(memo.get('r2')).toBeUndefined();
    expect(memo.size).toBe(0);
  });

  it('an event that arrives while the store checks the answer keeps it from being kept', () => {
    const { l1, memo, now } = setup();
    const ticket = memo.ticket();
    // The store's check is in flight (it read version 3); the event for version 4 lands meanwhile.
    l1.invalidate('user', 4);
    expect(memo.keep('r', answer(), [on('user', 3)], now() + HOUR, ticket)).toBe(false);
    expect(memo.get('r')).toBeUndefined();
    // So does a newer entry this instance read or wrote meanwhile.
    const second = memo.ticket();
    l1.offer('profile', value(8, now() + HOUR), now());
    expect(memo.keep('r', answer(), [on('profile', 7)], now() + HOUR, second)).toBe(false);
    // What it read is what L1 knows: kept.
    expect(memo.keep('r', two, [on('user', 4), on('profile', 8)], now() + HOUR, memo.ticket())).toBe(true);
  });

  it('an event during the check whose record L1 has already lost (its fence pushed out, its entry evicted or never kept) still keeps the copy out', () => {
    const { l1, memo, now, advance } = setup();
    // The fence of the event is pushed out of L1's bounded fences by a relay batch of other keys.
    const first = memo.ticket();
    l1.invalidate('profile', 2);
    for (let i = 0; i < 200; i += 1) l1.invalidate(`other${i}`, 1);
    expect(memo.keep('r', answer(), [on('profile', 1)], now() + HOUR, first)).toBe(false);
    // This instance's own write-through, its entry evicted by other reads before the check returns.
    const second = memo.ticket();
    l1.offer('post', value(2, now() + HOUR), now());
    for (let i = 0; i < 200; i += 1) l1.offer(`hot${i}`, value(1, now() + HOUR), now());
    expect(memo.keep('r', answer(), [on('post', 1)], now() + HOUR, second)).toBe(false);
    // An entry L1 declines to keep (offered with its life already over): the store held it all the same.
    const third = memo.ticket();
    const since = now();
    advance(2000);
    l1.offer('user', value(2, now() + HOUR), since);
    expect(memo.keep('r', answer(), [on('user', 1)], now() + HOUR, third)).toBe(false);
    // A released ticket keeps nothing: its call is over, nothing recorded what came after.
    memo.release(third);
    expect(memo.keep('r', answer(), [on('user', 2)], now() + HOUR, third)).toBe(false);
  });

  it('the record of what was told during a check: kept for every ticket still out, renewed when told again, pruned only below the oldest', () => {
    const { l1, memo, now } = setup();
    // Two checks in flight; the event lands; the other one ends first: the first must still see it.
    const a = memo.ticket();
    const b = memo.ticket();
    l1.invalidate('user', 4);
    memo.release(b);
    expect(memo.keep('r', answer(), [on('user', 3)], now() + HOUR, a)).toBe(false);
    memo.release(a);

    // Told at 5 before a ticket, at 7 after it: the later telling is what the ticket must see.
    const c = memo.ticket();
    l1.invalidate('profile', 5);
    const d = memo.ticket();
    l1.invalidate('profile', 7);
    expect(memo.keep('r', answer(), [on('profile', 5)], now() + HOUR, d)).toBe(false);
    // …and so must one taken before both: the newest told after it is 7, not the first telling.
    expect(memo.keep('r', answer(), [on('profile', 5)], now() + HOUR, c)).toBe(false);
    memo.release(c);
    memo.release(d);

    // Thousands of other keys told while an old check is out: pruning keeps what it needs.
    const old = memo.ticket();
    l1.invalidate('post', 4); // told just after `old` was taken
    const young = memo.ticket();
    for (let i = 0; i < 5000; i += 1) l1.invalidate(`other${i}`, 1);
    expect(memo.keep('r', answer(), [on('post', 3)], now() + HOUR, old)).toBe(false);
    memo.release(young);
    memo.release(old);
  });

  it("a version above the row's (a purge's) refuses only the checks it overlapped, though the row's own is told again and again", () => {
    const { l1, memo, now } = setup();
    const during = memo.ticket();
    l1.invalidate('profile', Number.MAX_SAFE_INTEGER); // a purge's event (src/cache/write/purge.ts)
    const after = memo.ticket();
    // Reads go on offering the row's own version, with checks overlapping all along.
    for (let i = 0; i < 3; i += 1) l1.offer('profile', value(2, now() + HOUR), now(), l1.generation);
    expect(memo.keep('r', answer(), [on('profile', 2)], now() + HOUR, during)).toBe(false);
    expect(memo.keep('r', answer(), [on('profile', 2)], now() + HOUR, after)).toBe(true);
    // And a version newer than the row's, told after the second ticket, still refuses it.
    const third = memo.ticket();
    l1.invalidate('profile', 3);
    expect(memo.keep('s', answer(), [on('profile', 2)], now() + HOUR, third)).toBe(false);
    memo.release(third);
    memo.release(after);
    memo.release(during);
  });

  it('keeps exactly when nothing newer than what it read was told after its ticket: checked against a plain log, over random interleavings', () => {
    // The model is the rule itself, over a log of every telling; the memo keeps far less (pairs,
    // pruned). Tellings, tickets taken and released, and keeps interleave at random, a version above
    // any (a purge's) among them, over few keys or thousands (past the prune threshold).
    const random = mulberry32(20261204);
    const below = (n: number) => Math.floor(random() * n);
    for (let round = 0; round < 40; round += 1) {
      let tell: (key: string, version: number) => void = () => {};
      const feed: VersionFeed = {
        generation: 0,
        ttlMs: HOUR,
        onNewer: (listener) => ((tell = listener), () => {}),
        now: () => 1_767_225_600_000,
      };
      const memo = createResponseMemo({ feed, maxBytes: 1_000_000_000 });
      const told: { at: number; key: string; version: number }[] = [];
      const open: { ticket: MemoTicket; at: number }[] = [];
      const keys = 1 + below(round % 2 === 0 ? 5 : 5000);
      for (let step = 0; step < 3000; step += 1) {
        const op = below(10);
        if (op < 5) {
          const key = `k${below(keys)}`;
          const version = below(8) === 0 ? Number.MAX_SAFE_INTEGER : below(10);
          told.push({ at: told.length + 1, key, version });
          tell(key, version);
        } else if (op < 7) {
          open.push({ ticket: memo.ticket(), at: told.length });
        } else if (op < 8 && open.length > 0) {
          memo.release(open.splice(below(open.length), 1)[0]!.ticket);
        } else if (open.length > 0) {
          const { ticket, at } = open[below(open.length)]!;
          const key = `k${below(keys)}`;
          const version = below(10);
          const expected = !told.some((t) => t.at > at && t.key === key && t.version > version);
          const kept = memo.keep(`r${step}`, answer(), [on(key, version)], feed.now() + HOUR, ticket);
          expect(kept, `round ${round}, step ${step}: ${key} at ${version}`).toBe(expected);
        }
      }
    }
  });

  it('a list of dependencies that does not match the count the store checked is not kept (fail closed)', () => {
    const { memo, now } = setup();
    expect(memo.keep('r', two, [on('user', 1)], now() + HOUR, memo.ticket())).toBe(false);
    expect(memo.keep('r', answer(), [on('user', 1)], now() + HOUR, memo.ticket())).toBe(true);
  });

  it('a clear (events may have been missed) drops every copy, and one checked before it is not kept', () => {
    const { l1, memo, now } = setup();
    expect(memo.keep('r1', answer(), [on('user', 1)], now() + HOUR, memo.ticket())).toBe(true);
    const inFlight = memo.ticket();
    l1.clear();
    expect(memo.get('r1')).toBeUndefined();
    expect(memo.keep('r2', answer(), [on('user', 1)], now() + HOUR, inFlight)).toBe(false);
    expect(memo.keep('r2', answer(), [on('user', 1)], now() + HOUR, memo.ticket())).toBe(true);
    expect(memo.get('r2')).toEqual(answer());
  });

  it("lives L1's TTL from the moment the store was asked, never past its dependencies' earliest expiry", () => {
    const { memo, now, advance } = setup({ ttlMs: 1000 });
    const ticket = memo.ticket();
    advance(400); // the store's round trip
    expect(memo.keep('long', answer(), [on('user', 1)], now() + HOUR, ticket)).toBe(true);
    expect(memo.keep('short', answer(), [on('user', 1)], now() + 100, memo.ticket())).toBe(true);
    // Already past its dependencies' expiry, or past the TTL by the time the store answered: not kept.
    expect(memo.keep('expired', answer(), [on('user', 1)], now(), memo.ticket())).toBe(false);
    const old = memo.ticket();
    advance(1000);
    expect(memo.keep('late', answer(), [on('user', 1)], now() + HOUR, old)).toBe(false);
    // 1 400 ms after `long`'s ticket, 1 000 ms after `short`'s keep: both over.
    expect([memo.get('long'), memo.get('short')]).toEqual([undefined, undefined]);

    // At its dependencies' earliest expiry exactly, as L1 and Redis refuse an entry at its staleAt.
    const edge = now() + 100;
    expect(memo.keep('edge', answer(), [on('user', 1)], edge, memo.ticket())).toBe(true);
    advance(99);
    expect(memo.get('edge')).toEqual(answer());
    advance(1);
    expect(memo.get('edge')).toBeUndefined();

    const again = memo.ticket();
    expect(memo.keep('long', answer(), [on('user', 1)], now() + HOUR, again)).toBe(true);
    advance(1000);
    expect(memo.get('long')).toEqual(answer());
    advance(1);
    expect(memo.get('long')).toBeUndefined();
  });

  it('holds at most maxBytes, dropping the least recently used; a copy over the bound alone is not kept', () => {
    const { l1, memo, now } = setup({ maxBytes: 4096 });
    const body = 'x'.repeat(1000);
    for (let i = 0; i < 10; i += 1) {
      expect(memo.keep(`r${i}`, answer(body), [on(`user${i}`, 1)], now() + HOUR, memo.ticket())).toBe(true);
    }
    expect(memo.size).toBeLessThan(4);
    expect(memo.get('r9')?.body).toBe(body);
    expect(memo.get('r0')).toBeUndefined();
    expect(memo.keep('huge', answer('x'.repeat(5000), 0), [], now() + HOUR, memo.ticket())).toBe(false);
    // An evicted copy's index entries are gone with it: an event for its key finds nothing to drop.
    l1.invalidate('user0', 2);
    expect(memo.get('r9')?.body).toBe(body);
  });

  it('replacing a copy under the same key follows only the new one’s dependencies', () => {
    const { l1, memo, now } = setup();
    expect(memo.keep('r', answer('{"old":1}'), [on('user', 1)], now() + HOUR, memo.ticket())).toBe(true);
    expect(memo.keep('r', answer('{"new":1}'), [on('profile', 1)], now() + HOUR, memo.ticket())).toBe(true);
    l1.invalidate('user', 2);
    expect(memo.get('r')?.body).toBe('{"new":1}');
    l1.invalidate('profile', 2);
    expect(memo.get('r')).toBeUndefined();
  });

  it('refuses a bound that is not a positive integer, naming it', () => {
    const l1 = createL1Tier({ maxEntries: 1, ttlMs: 1 });
    expect(() => createResponseMemo({ feed: l1, maxBytes: 0 })).toThrow(
      /maxBytes must be a positive integer, got 0/,
    );
  });
});
