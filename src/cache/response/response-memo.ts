/**
 * In-process copies of stored answers, when the L1 tier is on (`RESPONSE_CACHE_L1_MAX_BYTES`): an
 * answer Redis vouched for is served again with no round trip at all while L1 — fed by the same
 * invalidation events as every L1 entry — knows nothing newer of any entity it read, and never longer
 * than L1 serves an entry: `CACHE_L1_TTL_MS` after Redis vouched for it, nor past the earliest logical
 * expiry of what it read. So it is exactly as fresh as the L1 tier (docs/consistency.md, "The response
 * tier"): after a mutation on another instance returns, this instance may serve the older answer
 * until the change's event reaches it, never past that window even if the event is lost; after one
 * on this instance, never — its write-through reaches L1 before the mutation returns.
 *
 * Two moments, each closing a race:
 * - while kept: every time L1 learns a key is at a newer version (`onNewer`: an event, a fence, an
 *   entry read or written), each copy that read an older one is dropped at once (an index by key);
 * - when kept: the check that vouched for it ran in Redis before now, and L1 may have learned of a
 *   newer version meanwhile, which the index did not yet cover. So from each `ticket()` (taken before
 *   the store call) to its `release`, the memo records what it is told itself — for each key, the
 *   versions and when (`Told`) — and a copy is kept only if nothing it read was learned newer since its
 *   ticket, and L1 was not cleared since. Its own record, not L1's fences and entries: those are LRUs
 *   a busy instance can push a key out of while a call is in flight (a relay batch of more keys than
 *   CACHE_L1_MAX_ENTRIES; the writer's own entry evicted by other reads), and an entry L1 declines to
 *   keep leaves no trace there at all (test/read-path/response-memo.test.ts, "an event that arrives
 *   while the store checks …", "an event during the check whose record L1 has already lost …",
 *   "the record of what was told during a check …", "a version above the row's …").
 */
import { LRUCache } from 'lru-cache';
import type { Dependency } from '../store/contract.js';

/**
 * What the copies need of the L1 tier (src/cache/read/l1-tier.ts implements it; the response tier
 * does not import the read path).
 */
export interface VersionFeed {
  /** Bumped when L1 is cleared (events may have been missed): no copy kept before is served after. */
  readonly generation: number;
  /** The longest L1 serves anything after the store vouched for it, ms. */
  readonly ttlMs: number;
  onNewer(listener: (key: string, version: number) => void): () => void;
  /** L1's clock, epoch ms. */
  now(): number;
}

/** An answer as the response tier serves it. */
export interface KeptAnswer {
  readonly body: string;
  readonly etag: string;
  /** How many dependencies it was validated against. */
  readonly dependencies: number;
}

/** Taken before the store call that may vouch for an answer: what `keep` must hold against. */
export interface MemoTicket {
  readonly since: number;
  readonly generation: number;
  /** The memo's count of what it was told, when taken. */
  readonly seq: number;
}

export interface ResponseMemo {
  /** The copy kept under `key`, if it is still vouched for. No I/O. */
  get(key: string): KeptAnswer | undefined;
  /** Before the store call whose answer may be kept; `release` it after (kept or not), in a `finally`. */
  ticket(): MemoTicket;
  release(ticket: MemoTicket): void;
  /**
   * Keeps `answer`, which the store vouched for in a call begun at `ticket` over `dependencies`, fresh
   * until `freshUntil` (epoch ms). False when it may not be kept (see the file's comment) or is over
   * the memory bound by itself.
   */
  keep(
    key: string,
    answer: KeptAnswer,
    dependencies: readonly Dependency[],
    freshUntil: number,
    ticket: MemoTicket,
  ): boolean;
  /** Copies held. */
  readonly size: number;
  /** Stops following the feed and drops every copy. */
  close(): void;
}

export interface ResponseMemoOptions {
  readonly feed: VersionFeed;
  /** Bytes of copies held at most (approximate: bodies, ETags and dependency lists). A positive integer. */
  readonly maxBytes: number;
}

interface Copy {
  readonly answer: KeptAnswer;
  /** The version of each key the answer read. */
  readonly versions: ReadonlyMap<string, number>;
  readonly generation: number;
}

/**
 * What the memo was told of one key while tickets were out, as (seq, version) pairs whose versions
 * fall as their seqs grow: a telling drops the pairs before it that it outranks (no newer, told
 * earlier). So the newest version told after a ticket's seq is the first pair's past it. One pair
 * stamped with the latest telling would do for versions that only grow, but a version above the
 * row's (a purge's: src/cache/write/purge.ts) is told once and then followed by the row's own, on
 * every read: stamped anew each time, it refused every later ticket for as long as checks overlapped.
 */
type Told = { readonly seq: number; readonly version: number }[];

/** What a copy costs beyond its strings' characters: a map and an index entry per dependency. */
const BYTES_PER_DEPENDENCY = 64;
const BYTES_PER_COPY = 256;
/** The record of what the memo was told is pruned once it holds this many keys (then twice what is left). */
const PRUNE_FROM = 1024;

export function createResponseMemo({ feed, maxBytes }: ResponseMemoOptions): ResponseMemo {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new TypeError(`response memo maxBytes must be a positive integer, got ${String(maxBytes)}`);
  }
  /** Which copies read each key: what `onNewer` must look at. */
  const byDependency = new Map<string, Set<string>>();
  const copies = new LRUCache<string, Copy>({
    maxSize: maxBytes,
    // L1's clock (ttlResolution 0: read on every check), so a copy's life is measured as L1's are.
    perf: { now: () => feed.now() },
    ttlResolution: 0,
    dispose: (copy, key) => {
      for (const dependency of copy.versions.keys()) {
        const readers = byDependency.get(dependency);
        readers?.delete(key);
        if (readers?.size === 0) byDependency.delete(dependency);
      }
    },
  });

  /** Tickets out, and what the memo was told while any was (pruned to what the oldest may need). */
  const tickets = new Set<MemoTicket>();
  const learned = new Map<string, Told>();
  let seq = 0;
  let pruneAt = PRUNE_FROM;

  function record(key: string, version: number): void {
    seq += 1;
    if (tickets.size === 0) return;
    let told = learned.get(key);
    if (told === undefined) learned.set(key, (told = []));
    while (told.length > 0 && told[told.length - 1]!.version <= version) told.pop();
    told.push({ seq, version });
    if (learned.size >= pruneAt) prune();
  }

  /** The newest version of `key` the memo was told after `after` (a ticket's seq), or -1. */
  function toldSince(key: string, after: number): number {
    for (const pair of learned.get(key) ?? []) if (pair.seq > after) return pair.version;
    return -1;
  }

  function prune(): void {
    let oldest = seq;
    for (const ticket of tickets) oldest = Math.min(oldest, ticket.seq);
    // A pair no later than every ticket's seq answers none of them.
    for (const [key, told] of learned) {
      const kept = told.filter((pair) => pair.seq > oldest);
      if (kept.length === 0) learned.delete(key);
      else learned.set(key, kept);
    }
    pruneAt = Math.max(PRUNE_FROM, learned.size * 2);
  }

  const stop = feed.onNewer((key, version) => {
    record(key, version);
    const readers = byDependency.get(key);
    if (readers === undefined) return;
    // A copy: deleting disposes, which edits the set being walked.
    for (const reader of [...readers]) {
      const copy = copies.peek(reader, { allowStale: true });
      if (copy !== undefined && (copy.versions.get(key) ?? -1) < version) copies.delete(reader);
    }
  });

  return {
    get(key) {
      const copy = copies.get(key);
      if (copy === undefined) return undefined;
      if (copy.generation !== feed.generation) {
        copies.delete(key);
        return undefined;
      }
      return copy.answer;
    },

    ticket() {
      const ticket = { since: feed.now(), generation: feed.generation, seq };
      tickets.add(ticket);
      return ticket;
    },

    release(ticket) {
      tickets.delete(ticket);
      if (tickets.size > 0) return;
      learned.clear();
      pruneAt = PRUNE_FROM;
    },

    keep(key, answer, dependencies, freshUntil, ticket) {
      if (!tickets.has(ticket) || ticket.generation !== feed.generation) return false;
      // Fail closed: a list that does not match what the store checked could miss a key to follow.
      if (dependencies.length !== answer.dependencies) return false;
      // lru-cache serves a copy while its age is ≤ its TTL: at `freshUntil` itself it must not be
      // (Redis and L1 refuse an entry at its staleAt), hence the millisecond less.
      const life = Math.floor(Math.min(ticket.since + feed.ttlMs, freshUntil - 1) - feed.now());
      if (life < 1) return false;
      let size = BYTES_PER_COPY + answer.body.length + answer.etag.length + key.length;
      if (size > maxBytes) return false;
      const versions = new Map<string, number>();
      for (const { key: dependency, version } of dependencies) {
        // Told of a newer version while the store checked (an event, this instance's own write).
        if (toldSince(dependency, ticket.seq) > version) return false;
        versions.set(dependency, version);
        size += dependency.length + BYTES_PER_DEPENDENCY;
      }
      if (size > maxBytes) return false;
      copies.set(key, { answer, versions, generation: ticket.generation }, { ttl: life, size });
      // After `set`: replacing a copy under this key disposed the old one's index entries first.
      for (const dependency of versions.keys()) {
        let readers = byDependency.get(dependency);
        if (readers === undefined) byDependency.set(dependency, (readers = new Set()));
        readers.add(key);
      }
      return true;
    },

    get size() {
      return copies.size;
    },

    close() {
      stop();
      copies.clear();
    },
  };
}
