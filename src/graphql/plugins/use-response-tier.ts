/**
 * The response tier on the request path (src/cache/response/response-tier.ts): a query's answer is
 * looked up before it executes — a current one is served as its stored bytes, with no resolver and
 * no DataLoader — and stored after, with what it read. Also HTTP revalidation: every answer the tier
 * can vouch for carries a strong `ETag` and `Cache-Control: private, no-cache`, and a GET whose
 * `If-None-Match` names it is answered `304 Not Modified` with no body.
 *
 * Only single queries take part: a batch shares one cache report across its operations, so what
 * one of them read cannot be told apart; mutations and introspection never do. It runs after the
 * debug plugin, whose `onExecuteDone` then also sees a stored answer (parsed, so that it can add its
 * extension), and its `onResponse` after the cache headers, whose `Cache-Control: no-store` it
 * replaces on the answers it vouches for.
 */
import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { ResponseTier } from '../../cache/response/response-tier.js';
import { isCacheStoreError } from '../../cache/store/errors.js';
import type { GraphQLContext } from '../context.js';
import { requestStateOf } from '../request-state.js';
import { CACHE_DEBUG_HEADER } from './use-cache-debug.js';

export interface ResponseTierPluginOptions {
  readonly tier: ResponseTier;
  /** Honour `x-cache-debug: 1` (CACHE_DEBUG): a stored answer is then parsed to carry the extension. */
  readonly debug: boolean;
}

export function useResponseTier({ tier, debug }: ResponseTierPluginOptions): Plugin<GraphQLContext> {
  const batched = new WeakSet<Request>();
  /** The validator of each answer the tier vouches for, by request. */
  const etags = new WeakMap<Request, string>();

  return {
    onRequestParse({ request }) {
      return {
        onRequestParseDone({ requestParserResult }) {
          if (Array.isArray(requestParserResult)) batched.add(request);
        },
      };
    },

    async onExecute({ args, setResultAndStopExecution }) {
      const context = args.contextValue;
      const { request, params } = context;
      if (batched.has(request) || typeof params.query !== 'string') return;
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query' || INTROSPECTION.test(params.query)) return;

      const { report } = requestStateOf(request);
      const key = tier.keyOf({
        query: params.query,
        operationName: params.operationName ?? undefined,
        variables: params.variables,
        viewerId: context.viewer?.userId ?? null,
      });
      if (key === undefined) return;
      const wantsDebug = debug && request.headers.get(CACHE_DEBUG_HEADER) === '1';
      let found;
      try {
        found = await tier.lookup(key);
      } catch (error) {
        // The store is failing or skipped: execute, as the entity tier will (without it).
        if (!isCacheStoreError(error)) throw error;
        report.response = { outcome: 'miss', stored: false, skipped: 'store unavailable' };
        return;
      }
      if (found.status === 'hit') {
        report.response = { outcome: 'hit', dependencies: found.dependencies };
        // A debug answer's body is not the stored one (it carries the extension): no validator.
        if (!wantsDebug) etags.set(request, found.etag);
        const body = found.body;
        // yoga sends `stringify`'s output as the body: the stored bytes, not re-serialised.
        setResultAndStopExecution(wantsDebug ? JSON.parse(body) : { stringify: () => body });
        return;
      }
      const failed = found.failed;
      // Known now (the debug extension reads it before the answer is stored); `stored` comes after.
      report.response = { outcome: 'miss', ...(failed !== undefined && { failed }), stored: false };
      // The answer may be stored: its pages of users must read what they depend on.
      report.pagesNeedDirectory = true;
      return {
        async onExecuteDone({ result }) {
          const miss = { outcome: 'miss', ...(failed !== undefined && { failed }) } as const;
          if (Symbol.asyncIterator in result || (result.errors?.length ?? 0) > 0) {
            report.response = { ...miss, stored: false, skipped: 'errors' };
            return;
          }
          // What an execution sends, less extensions (the debug one belongs to this request alone).
          const body = JSON.stringify({ data: result.data });
          try {
            const stored = await tier.store(key, body, report, found.generation);
            report.response = stored.stored
              ? { ...miss, stored: true }
              : { ...miss, stored: false, skipped: stored.reason };
            if (stored.stored && !wantsDebug) etags.set(request, stored.etag);
          } catch (error) {
            if (!isCacheStoreError(error)) throw error;
            report.response = { ...miss, stored: false, skipped: 'store unavailable' };
          }
        },
      };
    },

    onResultProcess({ request, setResultProcessor, acceptableMediaTypes }) {
      const etag = etags.get(request);
      if (etag === undefined || request.method !== 'GET') return;
      if (!matches(request.headers.get('if-none-match'), etag)) return;
      setResultProcessor(
        (_result, fetchAPI) => new fetchAPI.Response(null, { status: 304 }),
        acceptableMediaTypes[0] ?? 'application/graphql-response+json',
      );
    },

    onResponse({ request, response }) {
      const etag = etags.get(request);
      if (etag === undefined || (response.status !== 200 && response.status !== 304)) return;
      response.headers.set('ETag', etag);
      // The browser may keep it but must ask again each time; no shared cache may keep it at all
      // (answers with a viewer are that viewer's).
      response.headers.set('Cache-Control', 'private, no-cache');
    },
  };
}

/**
 * A document that asks for the schema anywhere (fragments included) is never stored: it is not data.
 * Read off the text, which errs on the safe side (a comment naming `__schema` opts out too);
 * `__typename` is data and does not match.
 */
const INTROSPECTION = /__schema|__type\b/;

/** RFC 9110 §13.1.2: `*`, or a list of entity tags one of which is `etag` (weak comparison). */
function matches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
