/**
 * `x-cache-debug: 1` adds `extensions.cache` to the response: every entity key the request looked
 * up, the tier that answered, the outcome and the remaining logical TTL, plus the request's SQL
 * statements and store round trips. It is how a developer (and our tests) see what one request did.
 * Off unless CACHE_DEBUG allows it; the key names reveal ids, so production keeps it off by default.
 */
import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../context.js';
import { requestStateOf } from '../request-state.js';

export const CACHE_DEBUG_HEADER = 'x-cache-debug';

export interface CacheDebugExtension {
  readonly lookups: readonly { key: string; tier: string; status: string; ttlMs: number | null }[];
  readonly sqlStatements: number;
  readonly storeRoundTrips: number;
  /**
   * The response tier, when consulted, as known when this extension was added (before the answer
   * is stored: `Cache-Status` says whether it was): hit, or miss with the dependency that changed.
   */
  readonly response?: {
    readonly outcome: 'hit' | 'miss';
    readonly dependencies?: number;
    /** On a hit: what vouched for it (the store, or L1's events for a copy kept in process). */
    readonly checked?: 'store' | 'l1';
    readonly failed?: string;
  };
}

export function useCacheDebug({ enabled }: { enabled: boolean }): Plugin<GraphQLContext> {
  return {
    onExecute({ args }) {
      if (!enabled) return;
      const request = args.contextValue.request;
      if (request.headers.get(CACHE_DEBUG_HEADER) !== '1') return;
      return {
        onExecuteDone({ result, setResult }) {
          if (Symbol.asyncIterator in result) return;
          const { report, stats } = requestStateOf(request);
          const cache: CacheDebugExtension = {
            lookups: report.lookups.map((l) => ({
              key: l.key,
              tier: l.tier,
              status: l.outcome,
              ttlMs: l.ttlMs === undefined ? null : Math.round(l.ttlMs),
            })),
            sqlStatements: stats.sqlStatements,
            storeRoundTrips: stats.storeRoundTrips,
            ...(report.response && {
              response:
                report.response.outcome === 'hit'
                  ? {
                      outcome: 'hit',
                      dependencies: report.response.dependencies,
                      checked: report.response.checked,
                    }
                  : { outcome: 'miss', ...(report.response.failed && { failed: report.response.failed }) },
            }),
          };
          setResult({ ...result, extensions: { ...result.extensions, cache } });
        },
      };
    },
  };
}
