/**
 * Tells the client what the cache did (docs/contract.md, "Response headers"): `X-Cache`, `X-Cache-Hits`, `X-Cache-Misses`,
 * `Cache-Status` (RFC 9211) and `Server-Timing`, on every /graphql response, errors and batches
 * included. Set in `onResponse`, after everything else, from the request's CacheReport.
 */
import type { Plugin } from 'graphql-yoga';
import { CacheReport } from '../../observability/cache-report.js';
import { requestStateOf } from '../request-state.js';

export const CACHE_HEADER_NAMES = [
  'X-Cache',
  'X-Cache-Hits',
  'X-Cache-Misses',
  'Cache-Status',
  'Server-Timing',
] as const;

export interface CacheHeadersOptions {
  /** RFC 9211 cache name of the store, e.g. `cacheside-redis`. */
  readonly tier: string;
  /** Send the cache headers; `Cache-Control` is sent either way. @default true */
  readonly enabled?: boolean;
  /** Path of the GraphQL endpoint; other routes (health, metrics) get no cache headers. @default /graphql */
  readonly graphqlEndpoint?: string;
}

export function useCacheHeaders({
  tier,
  enabled = true,
  graphqlEndpoint = '/graphql',
}: CacheHeadersOptions): Plugin {
  return {
    onResponse({ request, response }) {
      if (new URL(request.url).pathname !== graphqlEndpoint) return;
      // Answers can depend on the caller (email): no shared cache may store them.
      response.headers.set('Cache-Control', 'no-store');
      if (!enabled) return;
      const { report, stats } = requestStateOf(request);
      const answered = report.response?.outcome === 'hit' ? report.response : undefined;
      response.headers.set('X-Cache', xCacheOf(report));
      response.headers.set('X-Cache-Hits', String(answered ? answered.dependencies : report.hits));
      response.headers.set('X-Cache-Misses', String(answered ? 0 : report.misses));
      const entityTiers =
        report.l1Tier === undefined ? cacheStatus(tier, report) : tieredCacheStatus(tier, report);
      // Origin-nearest first (RFC 9211 §2): the entity tiers, then the response tier in front of them.
      response.headers.set(
        'Cache-Status',
        answered
          ? responseStatus(report)!
          : [entityTiers, responseStatus(report)].filter((m) => m !== undefined).join(', '),
      );
      response.headers.set('Server-Timing', `cache;dur=${ms(stats.storeMs)}, db;dur=${ms(stats.dbMs)}`);
    },
  };
}

/** `X-Cache` of a request: a stored answer served by the response tier is a `HIT`, else `xCache`. */
export function xCacheOf(report: CacheReport): 'HIT' | 'MISS' | 'PARTIAL' | 'BYPASS' {
  return report.response?.outcome === 'hit' ? 'HIT' : xCache(report);
}

export function xCache(report: CacheReport): 'HIT' | 'MISS' | 'PARTIAL' | 'BYPASS' {
  if (report.bypassed > 0 || report.lookups.length === 0) return 'BYPASS';
  if (report.misses === 0) return 'HIT';
  return report.hits === 0 ? 'MISS' : 'PARTIAL';
}

/** One RFC 9211 list member for the store's tier. */
export function cacheStatus(tier: string, report: CacheReport): string {
  const params: string[] = [tier];
  const kind = xCache(report);
  if (kind === 'BYPASS') {
    params.push('fwd=bypass');
    if (report.bypassed > 0) params.push('detail=store-unavailable');
    return params.join('; ');
  }
  const stale = report.lookups.filter((l) => l.outcome === 'stale');
  if (stale.length > 0) {
    // The most expired entry served tells the client how stale the answer may be.
    const ttls = stale.map((l) => Math.floor((l.ttlMs ?? 0) / 1000));
    params.push('fwd=stale', `ttl=${Math.min(...ttls)}`);
  } else if (kind === 'HIT') {
    params.push('hit');
  } else {
    params.push(kind === 'MISS' ? 'fwd=miss' : 'fwd=partial');
  }
  if (report.stored > 0) params.push('stored');
  if (report.count('collapsed') > 0) params.push('collapsed');
  params.push(`detail="hit=${report.hits} miss=${report.misses}"`);
  return params.join('; ');
}

/**
 * With the in-process tier on (`report.l1Tier`): one member per tier consulted, origin-nearest first
 * (RFC 9211 §2) — the store's, when any lookup reached it, then L1's:
 * `cacheside-redis; hit; detail="hit=2 miss=0", cacheside-l1; fwd=miss; detail="hit=0 miss=2"`.
 */
export function tieredCacheStatus(storeTier: string, report: CacheReport): string {
  const l1Tier = report.l1Tier ?? 'cacheside-l1';
  const forwarded = new CacheReport();
  for (const lookup of report.lookups) if (lookup.tier !== l1Tier) forwarded.record(lookup);
  forwarded.stored = report.stored;
  const answered = report.lookups.length - forwarded.lookups.length;
  const l1 = [
    l1Tier,
    forwarded.lookups.length === 0 ? 'hit' : answered === 0 ? 'fwd=miss' : 'fwd=partial',
    `detail="hit=${answered} miss=${forwarded.lookups.length}"`,
  ];
  const members = forwarded.lookups.length > 0 ? [cacheStatus(storeTier, forwarded)] : [];
  return [...members, l1.join('; ')].join(', ');
}

/** The RFC 9211 name of the response tier (src/cache/response/response-tier.ts). */
export const RESPONSE_TIER = 'cacheside-response';

/**
 * The response tier's member, when it was consulted: `hit` with the dependencies it validated (and
 * `checked=l1` when L1's events vouched for a copy kept in process, with no round trip);
 * `fwd=miss` (nothing stored) or `fwd=stale` (a dependency had changed), `stored` when this answer
 * was; `detail` says why an answer was not stored.
 */
export function responseStatus(report: CacheReport): string | undefined {
  const r = report.response;
  if (r === undefined) return undefined;
  if (r.outcome === 'hit') {
    const l1 = r.checked === 'l1' ? ' checked=l1' : '';
    return `${RESPONSE_TIER}; hit; detail="dependencies=${r.dependencies}${l1}"`;
  }
  const params = [RESPONSE_TIER, r.failed === undefined ? 'fwd=miss' : 'fwd=stale'];
  if (r.stored) params.push('stored');
  else if (r.skipped !== undefined) params.push(`detail="skip: ${r.skipped}"`);
  return params.join('; ');
}

function ms(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}
