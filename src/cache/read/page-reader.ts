/**
 * Pages of user ids (`userPage`) through the cache. No row's version covers a range of ids, so a
 * page is not an entity: it is a dependent entry, as a stored answer of the response tier is
 * (`CacheStore.getDependent` / `setDependent`), computed from one entry — the user directory
 * (`userDirectory:{1}`, whose version the users triggers bump on every insert and delete) at the
 * version read *before* the range — and served only while the directory still holds that version,
 * checked by the store in the same round trip as the read.
 *
 *   getDependent(page) ─▶ current: the page, no SQL
 *      │ absent or outdated
 *      ▼
 *   the directory's version V (cache-aside) ─▶ the range (one SQL statement) ─▶ setDependent(page, V)
 *
 * Why it cannot serve a page the range query would not: an insert or delete commits, then the relay
 * tombstones the directory (or a purge starts a new generation, for a change that fired no trigger),
 * and from then on every page computed under the older version is outdated on every instance. A range
 * that an insert overtakes (read after it committed, the directory read before) holds more than V
 * says, never less; what V names is then outdated by the insert's own tombstone.
 * test/read-path/page-reader.test.ts ("a page whose range an insert overtakes …").
 *
 * A page is keyed by any valid cursor a client sends, so it lives no longer than a tombstone and a
 * volatile entry (60 s by default), and one request stores at most MAX_PAGE_FILLS_PER_REQUEST pages
 * (aliases and batches can ask for many), as it does negative entries (docs/operations.md, "Memory").
 */
import type { UserDirectory, UserPageIds, UserPageKey } from '../../db/repositories.js';
import type { Logger } from '../../observability/logger.js';
import { USER_DIRECTORY_ID, type CacheKeys } from '../entities/keys.js';
import { decodePage, encodePage } from '../entities/page-codec.js';
import type { CacheStore } from '../store/contract.js';
import { isCacheStoreError } from '../store/errors.js';
import type { BatchRead, PageRead } from './cached-readers.js';

export interface PageReaderDeps {
  /** Through the breaker, never through L1: a page is checked against what the store holds now. */
  readonly store: CacheStore;
  readonly keys: CacheKeys;
  /** The directory's version through the cache (cache-aside): what a page is computed under. */
  readonly readDirectory: BatchRead<UserDirectory>;
  /** One page from PostgreSQL (one indexed range scan). */
  readonly loadPage: (page: UserPageKey) => Promise<UserPageIds>;
  /** Physical TTL of a stored page, ms (> 0). */
  readonly ttlMs: number;
  readonly logger: Logger;
  /** The clock the directory's freshness is checked against, epoch ms. @default Date.now */
  readonly now?: () => number;
}

/**
 * Most pages one request may add to the store (each up to ~1.2 KB: 100 ten-digit ids): a client asking for pages
 * at ever new cursors makes the store hold at most this many per request, each for the page TTL. The
 * request's other missed pages are answered, not cached. One page per request is the usual case.
 */
export const MAX_PAGE_FILLS_PER_REQUEST = 4;

export function createPageReader(deps: PageReaderDeps): PageRead {
  const { store, keys, readDirectory, loadPage, ttlMs, logger, now = Date.now } = deps;
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`page TTL must be a positive integer of ms, got ${String(ttlMs)}`);
  }
  const directoryKey = keys.entity('userDirectory', USER_DIRECTORY_ID);
  /** This instance's loads of pages in progress, by page key and directory version. */
  const flights = new Map<string, { readonly startedAt: number; readonly pages: Promise<UserPageIds> }>();
  /** Orders arrivals and loads (`startedAt`): a request joins only a load begun after it arrived. */
  let clock = 0;

  /** The page under `key` if the store vouches for it; else the generation to store one under, if any. */
  async function lookup(key: string, page: UserPageKey): Promise<UserPageIds | { generation?: string }> {
    try {
      const read = await store.getDependent(key, now());
      if (read.status !== 'current') return { generation: read.generation };
      // Not what this code writes (foreign bytes, another build): a miss, which the load replaces.
      return decodePage(read.payload, page) ?? { generation: read.generation };
    } catch (error) {
      // The store is failing or skipped: load the page, as every read does without the store.
      if (!isCacheStoreError(error)) throw error;
      return {};
    }
  }

  async function remember(key: string, page: UserPageIds, version: number, generation: string) {
    try {
      await store.setDependent({
        key,
        generation,
        payload: encodePage(page),
        dependencies: [{ key: directoryKey, kind: 'value', version }],
        ttlMs,
      });
    } catch (error) {
      // Not stored: the next request loads the page again. Nothing else depends on it.
      if (!isCacheStoreError(error)) throw error;
      logger.debug({ err: error, key }, 'could not store a page of user ids');
    }
  }

  return async (pages, report) => {
    const arrivedAt = ++clock;
    // A response-tier answer depends on the directory: read it before anything the pages read, so
    // that an insert or delete they miss moves it past what the answer names (its tombstone comes
    // after its commit). test/read-path/response-tier.test.ts ("a page whose SQL an insert overtakes …").
    let directory = report.pagesNeedDirectory ? await readDirectory([USER_DIRECTORY_ID], report) : undefined;
    const pageKeys = pages.map((page) => keys.page(page.first, page.after));
    // Usually one page per request: each is its own round trip, all at once.
    const found = await Promise.all(pages.map((page, i) => lookup(pageKeys[i]!, page)));
    if (found.every(isPage)) {
      report.pageHits += pages.length;
      return found;
    }
    // The version the loaded pages are computed under: read before their ranges (see above).
    directory ??= await readDirectory([USER_DIRECTORY_ID], report);
    const [held] = directory;
    const version = held instanceof Error || held === null || held === undefined ? undefined : held.version;
    return Promise.all(
      found.map(async (hit, i) => {
        if (isPage(hit)) {
          report.pageHits += 1;
          return hit;
        }
        report.pageReads += 1;
        if (version === undefined) return loadPage(pages[i]!);
        // Joins this instance's load of the page, or starts one: a burst of requests for a cold page
        // runs one range scan per instance, not one each. Only a load begun after this request
        // arrived (its range then sees every commit this request could have seen: not so a load
        // begun before a change that fired no trigger and the purge that followed it), and under
        // the same directory version (a load under an older one may predate an insert this
        // request's directory read already shows, and would vouch for a page without it).
        // test/read-path/page-reader.test.ts ("a burst …", "… arrived after a load began …", "… read
        // a newer directory version …").
        const flightKey = `${pageKeys[i]!} ${version}`;
        const joined = flights.get(flightKey);
        if (joined !== undefined && joined.startedAt > arrivedAt) return joined.pages;
        const flight = { startedAt: ++clock, pages: loadPage(pages[i]!) };
        flights.set(flightKey, flight);
        const loaded = await flight.pages.finally(() => {
          if (flights.get(flightKey) === flight) flights.delete(flightKey);
        });
        if (hit.generation !== undefined && report.pageFills < MAX_PAGE_FILLS_PER_REQUEST) {
          report.pageFills += 1;
          await remember(pageKeys[i]!, loaded, version, hit.generation);
        }
        return loaded;
      }),
    );
  };
}

// Private:

function isPage(value: UserPageIds | { generation?: string }): value is UserPageIds {
  return 'ids' in value;
}
