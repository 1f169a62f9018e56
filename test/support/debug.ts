/** Reading the `x-cache-debug: 1` extension (src/graphql/plugins/use-cache-debug.ts) in tests. */
import type { CacheDebugExtension } from '../../src/graphql/plugins/use-cache-debug.js';
import type { GraphQLResponse } from './app.js';

export const DEBUG = { 'x-cache-debug': '1' } as const;

/** The debug extension of a response, or undefined when it has none (asked without the header). */
export function debugIn(response: GraphQLResponse<unknown>): CacheDebugExtension | undefined {
  return (response.body as { extensions?: { cache?: CacheDebugExtension } }).extensions?.cache;
}

export function debugOf(response: GraphQLResponse<unknown>): CacheDebugExtension {
  const cache = debugIn(response);
  if (cache === undefined)
    throw new Error(`response has no extensions.cache: ${JSON.stringify(response.body)}`);
  return cache;
}

/** Lookups of one entity key (e.g. `:profile:{7}`) in a debug extension. */
export function statusesOf(debug: CacheDebugExtension, keySuffix: string): string[] {
  return debug.lookups.filter((l) => l.key.endsWith(keySuffix)).map((l) => l.status);
}
