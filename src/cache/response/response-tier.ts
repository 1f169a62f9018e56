/**
 * The response tier: a query answered before is served as the bytes it was answered with, without
 * executing it, while every entity it read is still at the version it read (docs/consistency.md,
 * "The response tier").
 *
 * A stored response names its dependencies — each entity key its execution looked up, with the kind
 * (a value, or "no such id") and the version of the answer — and the store checks them on every read
 * in the same round trip (`getDependent`). Nothing invalidates a response: a write that changes an
 * entity changes the version its key holds (the write-through before the mutation returns, or the
 * relay's tombstone for plain SQL), and every response that read the older version stops validating
 * at once, on every instance. Why this cannot serve what the entity tier would not: each dependency
 * is checked against exactly what the entity tier would serve from the store — a missing, expired or
 * tombstoned key, another version, or a store the circuit breaker is skipping all mean "execute".
 *
 * What no row's version covers — userPage's id range — is covered by the user directory's version
 * (which user ids exist, bumped by the users triggers on insert and delete): a request that may be
 * stored reads it before its pages (src/cache/read/page-reader.ts), so it is one more dependency and
 * a hit runs no SQL at all.
 *
 * What is never stored: mutations, introspection, answers with errors, answers that the store could
 * not help with (a bypass or stale lookup, a fill that did not land), answers over `maxBytes` or
 * `maxDependencies`.
 */
import { createHash, hash } from 'node:crypto';
import type { ResponseTierConfig } from '../../config.js';
import type { CacheReport } from '../../observability/cache-report.js';
import type { CacheKeys } from '../entities/keys.js';
import type { CacheStore, Dependency } from '../store/contract.js';
import type { MemoTicket, ResponseMemo } from './response-memo.js';

export interface ResponseRequest {
  /** The document's text as sent: the same operation spelled differently is another key. */
  readonly query: string;
  readonly operationName: string | undefined;
  readonly variables: unknown;
  /** Whose answer it is: the viewer's id, or anonymous. Answers are never shared across scopes. */
  readonly viewerId: number | null;
  /**
   * What the document was validated against — a digest of the schema and the query limits: a build
   * with other ones never serves this build's answers (a hit may skip validation), nor this build its.
   */
  readonly validation: string;
}

export type ResponseLookup =
  | {
      readonly status: 'hit';
      readonly body: string;
      readonly etag: string;
      readonly dependencies: number;
      /** What vouched for it now: the store (one round trip), or L1's events (a copy kept in process). */
      readonly checked: 'store' | 'l1';
    }
  | {
      readonly status: 'miss';
      readonly failed?: string;
      /** What `store` must be given for the answer executed now (the store's answer generation). */
      readonly generation: string;
    };

export type ResponseStoreOutcome =
  { readonly stored: true; readonly etag: string } | { readonly stored: false; readonly reason: string };

export interface ResponseTier {
  /**
   * The store key of a request's answer; `undefined` when the request cannot have one (variables
   * nested too deep to serialise: such a request executes, as it would without the tier).
   */
  keyOf(request: ResponseRequest): string | undefined;
  /**
   * The stored answer under `key`, if every dependency is current now: one round trip, or none for a
   * copy kept in process that L1 still vouches for (L1 on).
   */
  lookup(key: string): Promise<ResponseLookup>;
  /**
   * Stores `body`, the answer just executed, with the dependencies the request's lookups name, under
   * the `generation` its miss was read in; refuses (saying why) what cannot be validated by versions.
   * One round trip when stored.
   */
  store(key: string, body: string, report: CacheReport, generation: string): Promise<ResponseStoreOutcome>;
}

export interface ResponseTierDeps {
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  readonly config: ResponseTierConfig;
  /**
   * How long a tombstone lives (entries.tombstoneTtlMs): no stored answer may outlive one. A row
   * deleted and inserted again under its id starts again at version 1, which an answer about the
   * deleted row also names; the delete's tombstone (version + 1) keeps the key from holding that
   * version again while it lives, so an answer that cannot outlive it cannot be confused with the
   * new row (docs/consistency.md, "The response tier").
   */
  readonly tombstoneTtlMs: number;
  /** In-process copies of the answers the store vouched for (L1 on; response-memo.ts). */
  readonly memo?: ResponseMemo;
  readonly now?: () => number;
}

// One of each per process: a hit decodes its payload, and a decoder per hit is garbage on the hot path.
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

export function createResponseTier({
  store,
  keys,
  config,
  tombstoneTtlMs,
  memo,
  now = Date.now,
}: ResponseTierDeps): ResponseTier {
  const maxTtlMs = Math.min(config.ttlSeconds * 1000, tombstoneTtlMs);

  /** The store's word on the answer under `key`; a current one is kept in process when `ticket` is given. */
  async function check(key: string, ticket: MemoTicket | undefined): Promise<ResponseLookup> {
    const read = await store.getDependent(key, now());
    if (read.status === 'absent') return { status: 'miss', generation: read.generation };
    if (read.status === 'outdated') {
      return { status: 'miss', failed: read.failed.key, generation: read.generation };
    }
    const stored = decodePayload(read.payload);
    // Not what this code writes (foreign bytes, another build): a miss, which the answer replaces.
    if (stored === undefined) return { status: 'miss', failed: key, generation: read.generation };
    const answer = { etag: stored.etag, body: stored.body, dependencies: read.dependencies };
    if (ticket !== undefined) memo?.keep(key, answer, read.listDependencies(), read.freshUntil, ticket);
    return { status: 'hit', ...answer, checked: 'store' };
  }

  return {
    keyOf({ query, operationName, variables, viewerId, validation }) {
      let tuple: string;
      try {
        // A JSON array: its parts can never run into each other, whatever a name or a text holds.
        tuple = JSON.stringify([validation, viewerId, operationName ?? null, variables ?? null, query]);
      } catch {
        // Nested deeper than the stack allows (JSON.parse accepted it; graphql-js ignores variables
        // the operation does not declare). test/read-path/response-tier.test.ts.
        return undefined;
      }
      // One-shot: a third of the cost of a Hash object fed part by part, on every lookup.
      const digest = hash('sha256', tuple, 'base64url').slice(0, 32);
      return keys.response(digest);
    },

    async lookup(key) {
      const kept = memo?.get(key);
      if (kept !== undefined) return { status: 'hit', ...kept, checked: 'l1' };
      const ticket = memo?.ticket();
      try {
        return await check(key, ticket);
      } finally {
        if (ticket !== undefined) memo?.release(ticket);
      }
    },

    async store(key, body, report, generation) {
      // A page read without the directory (the request was not prepared for storing) has nothing
      // that would tell its answer it is out of date.
      if (report.pageReads + report.pageHits > 0 && !report.pagesNeedDirectory)
        return { stored: false, reason: 'unversioned page' };
      const byKey = new Map<string, Dependency>();
      let ttlMs = maxTtlMs;
      for (const lookup of report.lookups) {
        if (lookup.version === undefined || lookup.outcome === 'stale' || lookup.outcome === 'bypass') {
          return { stored: false, reason: `lookup ${lookup.outcome}` };
        }
        // A load whose fill did not land (it lost a race with a write, or was never sent): the store
        // does not hold what the answer read, so it could never validate.
        if (!lookup.cached) return { stored: false, reason: 'fill refused' };
        byKey.set(lookup.key, {
          key: lookup.key,
          kind: lookup.absent ? 'negative' : 'value',
          version: lookup.version,
        });
        // Never outlive what it was read from (a miss's fill lives its entity's TTL, far longer).
        if (lookup.ttlMs !== undefined) ttlMs = Math.min(ttlMs, Math.floor(lookup.ttlMs));
      }
      if (byKey.size > config.maxDependencies) return { stored: false, reason: 'too many dependencies' };
      if (ttlMs <= 0) return { stored: false, reason: 'expiring dependency' };
      const dependencies = [...byKey.values()];
      const etag = etagOf(key, dependencies);
      const payload = ENCODER.encode(`${etag}\n${body}`);
      if (payload.length > config.maxBytes) return { stored: false, reason: 'too large' };
      await store.setDependent({ key, payload, dependencies, ttlMs, generation });
      return { stored: true, etag };
    },
  };
}

/**
 * A strong validator of an answer: the request (its key) and the version of everything it read.
 * Two answers with one ETag are the same bytes, since executing a query over the same versions
 * gives the same answer.
 */
export function etagOf(key: string, dependencies: readonly Dependency[]): string {
  const hash = createHash('sha256').update(key);
  // In key order: the same versions are the same ETag, whatever order the lookups happened in.
  const lines = dependencies.map((d) => `${d.key} ${d.kind === 'negative' ? 'n' : 'v'}${d.version}`);
  for (const line of lines.sort()) hash.update(`\n${line}`);
  return `"${hash.digest('base64url').slice(0, 27)}"`;
}

/**
 * The payload `store` writes: the ETag (quoted, no newline), a newline, the body (a JSON object).
 * `undefined` for anything else — such as an older build's `etag\n[pages]\nbody`, whose rest is not
 * an answer.
 */
function decodePayload(payload: Uint8Array): { etag: string; body: string } | undefined {
  const text = DECODER.decode(payload);
  const etagEnd = text.indexOf('\n');
  if (etagEnd === -1 || !text.startsWith('"') || text[etagEnd + 1] !== '{') return undefined;
  return { etag: text.slice(0, etagEnd), body: text.slice(etagEnd + 1) };
}
