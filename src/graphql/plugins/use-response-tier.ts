/**
 * The response tier on the request path (src/cache/response/response-tier.ts): a query's answer is
 * looked up before it executes — a current one is served as its stored bytes, with no resolver and
 * no DataLoader — and stored after, with what it read. Also HTTP revalidation: every answer the tier
 * can vouch for carries a strong `ETag` and `Cache-Control: private, no-cache`, and a GET whose
 * `If-None-Match` names it is answered `304 Not Modified` with no body.
 *
 * Only single queries take part: a batch shares one cache report across its operations, so what
 * one of them read cannot be told apart; mutations and introspection never do. An anonymous query
 * is looked up in `onParams`, before it is parsed: a hit is then served with no parse, validation,
 * context or execution at all (docs/consistency.md, "The response tier"). It runs after the debug
 * plugin, whose `onExecuteDone` then also sees a stored answer asked for with the debug header (such
 * a request is looked up in `onExecute`, and the answer parsed, so that it can carry the extension),
 * and its `onResponse` after the cache headers, whose `Cache-Control: no-store` it replaces on the
 * answers it vouches for.
 */
import { getOperationAST, type ExecutionResult } from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import type { ResponseLookup, ResponseTier } from '../../cache/response/response-tier.js';
import type { CacheReport } from '../../observability/cache-report.js';
import { isCacheStoreError } from '../../cache/store/errors.js';
import type { GraphQLContext } from '../context.js';
import { requestStateOf } from '../request-state.js';
import { CACHE_DEBUG_HEADER } from './use-cache-debug.js';

/** A lookup's answer, or 'unavailable' when the store failed or the breaker skipped it. */
type Lookup = ResponseLookup | 'unavailable';

export interface ResponseTierPluginOptions {
  readonly tier: ResponseTier;
  /** Honour `x-cache-debug: 1` (CACHE_DEBUG): a stored answer is then parsed to carry the extension. */
  readonly debug: boolean;
  /** A digest of the schema and the query limits (`ResponseRequest.validation`). */
  readonly validation: string;
}

export function useResponseTier({
  tier,
  debug,
  validation,
}: ResponseTierPluginOptions): Plugin<GraphQLContext> {
  const batched = new WeakSet<Request>();
  /** The validator of each answer the tier vouches for, by request. */
  const etags = new WeakMap<Request, string>();
  /**
   * What `onParams` looked up, by request: `onExecute` reuses it (one round trip per request) for the
   * same parameters — a plugin that replaced them (`setParams`) would otherwise store another
   * query's answer under this key.
   */
  const early = new WeakMap<Request, { params: GraphQLParams; key: string; found: Lookup }>();

  /** The key of the answer to `query` with `params` for `viewerId`, under this schema and these limits. */
  const keyFor = (query: string, params: GraphQLParams, viewerId: number | null) =>
    tier.keyOf({
      query,
      operationName: params.operationName ?? undefined,
      variables: params.variables,
      viewerId,
      validation,
    });

  /** The stored answer under `key`; 'unavailable' when the store failed or is skipped. */
  async function lookup(key: string): Promise<Lookup> {
    try {
      return await tier.lookup(key);
    } catch (error) {
      if (!isCacheStoreError(error)) throw error;
      return 'unavailable';
    }
  }

  /** What the request's report says of the lookup (the debug extension reads a miss before it is stored). */
  function record(report: CacheReport, found: Lookup): void {
    report.response =
      found === 'unavailable'
        ? { outcome: 'miss', stored: false, skipped: 'store unavailable' }
        : found.status === 'hit'
          ? { outcome: 'hit', dependencies: found.dependencies, checked: found.checked }
          : { outcome: 'miss', ...(found.failed !== undefined && { failed: found.failed }), stored: false };
  }

  return {
    onRequestParse({ request }) {
      return {
        onRequestParseDone({ requestParserResult }) {
          if (Array.isArray(requestParserResult)) batched.add(request);
        },
      };
    },

    // An anonymous single query is looked up as soon as its parameters are known: a current answer
    // is then served before parsing, validation, the context and the plugins that act on execution
    // (query limits, cost) — as only an answer to this text, these variables, no viewer and this
    // schema can be, and that answer once passed every one of them (an answer with errors is never
    // stored). What may need a viewer, the debug extension, parameters yoga would refuse, or by its
    // text is not a plain query waits for `onExecute`, which also reuses a miss found here. Nothing
    // is reported until then: a request that fails to parse or validate says nothing of the tier.
    async onParams({ params, request, setResult }) {
      if (batched.has(request) || !isPlainQuery(params)) return;
      if (request.headers.has('authorization')) return;
      if (debug && request.headers.get(CACHE_DEBUG_HEADER) === '1') return;
      const key = keyFor(params.query, params, null);
      if (key === undefined) return;
      const found = await lookup(key);
      if (found === 'unavailable' || found.status !== 'hit') {
        early.set(request, { params, key, found });
        return;
      }
      const { report, stats } = requestStateOf(request);
      record(report, found);
      // Only queries are ever stored: the access log's operation type.
      stats.operation = 'query';
      etags.set(request, found.etag);
      const body = found.body;
      // yoga sends `stringify`'s output as the body: the stored bytes, not re-serialised.
      setResult({ stringify: () => body } as ExecutionResult);
    },

    async onExecute({ args, setResultAndStopExecution }) {
      const context = args.contextValue;
      const { request, params } = context;
      if (batched.has(request) || typeof params.query !== 'string') return;
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query' || INTROSPECTION.test(params.query)) return;

      const { report } = requestStateOf(request);
      // Looked up early only without a viewer: a signed-in viewer's answer has a key of its own.
      const earlier = early.get(request);
      const looked = context.viewer === null && earlier?.params === params ? earlier : undefined;
      const key = looked?.key ?? keyFor(params.query, params, context.viewer?.userId ?? null);
      if (key === undefined) return;
      const wantsDebug = debug && request.headers.get(CACHE_DEBUG_HEADER) === '1';
      const found = looked ? looked.found : await lookup(key);
      record(report, found);
      // The store is failing or skipped: execute, as the entity tier will (without it).
      if (found === 'unavailable') return;
      if (found.status === 'hit') {
        // A debug answer's body is not the stored one (it carries the extension): no validator.
        if (!wantsDebug) etags.set(request, found.etag);
        const body = found.body;
        // yoga sends `stringify`'s output as the body: the stored bytes, not re-serialised.
        setResultAndStopExecution(wantsDebug ? JSON.parse(body) : { stringify: () => body });
        return;
      }
      const failed = found.failed;
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

/**
 * What cannot be looked up before parsing: a document that may hold a mutation or a subscription (a
 * lookup would be a wasted round trip: none is ever stored) or asks for the schema. Read off the
 * text, erring on the safe side: a query that merely names one of these words is looked up later.
 */
const MAY_WRITE_OR_STREAM = /\b(?:mutation|subscription)\b/;

/** A GraphQL name (spec §2.1.9): an `operationName` that can name an operation. */
const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

/** The parameters a request may carry (GraphQL over HTTP): yoga refuses any other with a 400. */
const PARAMETERS = new Set(['query', 'operationName', 'variables', 'extensions']);

/**
 * True for parameters yoga accepts and whose text is, by the look of it, a plain query: anything
 * else is looked up later, after yoga's own checks, or not at all (an empty or malformed
 * `operationName` must still be refused, never answered from a stored answer of another request).
 */
function isPlainQuery(params: GraphQLParams): params is GraphQLParams & { query: string } {
  const { query } = params;
  if (typeof query !== 'string' || MAY_WRITE_OR_STREAM.test(query) || INTROSPECTION.test(query)) return false;
  const { operationName, variables, extensions } = params;
  if (operationName != null && (typeof operationName !== 'string' || !NAME.test(operationName))) return false;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return false;
  if (extensions != null && (typeof extensions !== 'object' || Array.isArray(extensions))) return false;
  for (const name of Object.keys(params)) if (!PARAMETERS.has(name)) return false;
  return true;
}

/** RFC 9110 §13.1.2: `*`, or a list of entity tags one of which is `etag` (weak comparison). */
function matches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
