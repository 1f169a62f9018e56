/**
 * State that spans one HTTP request, from the first plugin hook to `onResponse`: the cache report
 * and timing figures behind the response headers. Keyed by the Request object, so a batched request
 * (several operations, several GraphQL contexts) shares one tally and gets one set of headers.
 */
import { CacheReport } from '../observability/cache-report.js';
import { createRequestStats, type RequestStats } from '../observability/request-scope.js';

export interface RequestState {
  readonly report: CacheReport;
  readonly stats: RequestStats;
  readonly startedAt: number;
}

const states = new WeakMap<Request, RequestState>();

export function requestStateOf(request: Request): RequestState {
  let state = states.get(request);
  if (state === undefined) {
    state = { report: new CacheReport(), stats: createRequestStats(), startedAt: performance.now() };
    states.set(request, state);
  }
  return state;
}

/** A plugin that replaces the Request object (to buffer its body) keeps the request's state. */
export function adoptRequestState(from: Request, to: Request): void {
  states.set(to, requestStateOf(from));
}
