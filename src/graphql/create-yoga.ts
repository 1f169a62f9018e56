/**
 * The GraphQL HTTP layer: schema, context, error masking and the one list of plugins, assembled from
 * the parts the composition root hands in. Knows nothing of how the parts are built.
 */
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  createSchema,
  createYoga,
  type Plugin,
  type YogaServerInstance,
  type YogaServerOptions,
} from 'graphql-yoga';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { currentRequestStats } from '../observability/request-scope.js';
import { createContextFactory, type ContextDeps, type GraphQLContext } from './context.js';
import { createErrorMasker } from './errors.js';
import { useCacheDebug } from './plugins/use-cache-debug.js';
import { useResponseTier } from './plugins/use-response-tier.js';
import type { ResponseTier } from '../cache/response/response-tier.js';
import { CACHE_HEADER_NAMES, useCacheHeaders } from './plugins/use-cache-headers.js';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { renderGraphiQLPage } from './graphiql/assets.js';
import { useBodyLimit } from './plugins/use-body-limit.js';
import { useRequestShape } from './plugins/use-request-shape.js';
import { DEFAULT_QUERY_LIMITS, useQueryLimits } from './plugins/use-query-limits.js';
import { usePropagationNotice } from './plugins/use-propagation-notice.js';
import { useRequestErrorStatus } from './plugins/use-request-error-status.js';
import type { DrainingTracker } from './plugins/use-draining.js';
import { useHttpMetrics } from './plugins/use-http-metrics.js';
import { useMetricsEndpoint } from './plugins/use-metrics-endpoint.js';
import { useLiveness } from './plugins/use-liveness.js';
import { useGraphiQLAssets } from './plugins/use-graphiql-assets.js';
import { useReadiness, type ReadinessCheck } from './plugins/use-readiness.js';
import { useRequestId } from './plugins/use-request-id.js';
import { useRequestScope } from './plugins/use-request-scope.js';
import { resolvers as cachesideResolvers } from './resolvers/index.js';
import type { Resolvers } from './generated/resolvers-types.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../schema/schema.graphql', import.meta.url));

/** GraphiQL's first query: a user, their profile and their newest posts. */
export const DEFAULT_GRAPHIQL_QUERY = `# Welcome to cacheside. Run this twice: the Cache panel
# (bottom right) shows what the cache did each time.
query UserWithPosts {
  user(id: "1") {
    name
    createdAt
    profile { displayName bio location version }
    posts(first: 3) { id title createdAt }
  }
}
`;

/** Most operations in one batched request. */
export const MAX_BATCHED_OPERATIONS = 10;
/**
 * Largest request body. The largest legitimate one is a createPost with a 20 000-character body of
 * JSON-escaped astral characters (12 bytes each): about 240 KB.
 */
export const MAX_BODY_BYTES = 256 * 1024;

export interface YogaDeps extends ContextDeps {
  readonly logger: Logger;
  /** RFC 9211 name of the cache tier. */
  readonly cacheTier: string;
  readonly cacheHeaders: boolean;
  /** Honour `x-cache-debug: 1`. */
  readonly cacheDebug: boolean;
  readonly introspection: boolean;
  /** Serve GraphiQL with its cache panel to browsers (GRAPHIQL). @default true */
  readonly graphiql?: boolean;
  /** This instance's metrics: the HTTP histogram and the access log, and `/metrics`. */
  readonly metrics: Metrics;
  /** What `/ready` reports. */
  readonly readiness: ReadinessCheck;
  /** Counts requests in flight and closes connections once draining (src/app/shutdown.ts). */
  readonly draining: DrainingTracker;
  /** The response tier (RESPONSE_CACHE), when on. */
  readonly responseTier?: ResponseTier;
  /** Plugins to run after ours (the benchmark's response-cache variant). */
  readonly extraPlugins?: readonly Plugin[];
  /** Resolvers to serve instead of ours, over the same schema and plugins (the benchmark's `naive` and `static`). */
  readonly resolvers?: Resolvers;
}

/** What the node:http adapter passes as server context. */
export interface ServerContext {
  readonly req?: IncomingMessage;
  readonly res?: ServerResponse;
}

export type CachesideYoga = YogaServerInstance<ServerContext, GraphQLContext>;
type YogaPlugins = NonNullable<YogaServerOptions<ServerContext, GraphQLContext>['plugins']>;

/**
 * What a query is validated against, as a digest: the schema's text and the query limits. The
 * response tier keys answers by it, since it may serve one without validating it again.
 */
export function validationDigest(typeDefs = readFileSync(SCHEMA_FILE, 'utf8')): string {
  return hash('sha256', JSON.stringify([typeDefs, DEFAULT_QUERY_LIMITS]), 'base64url').slice(0, 16);
}

export function createCachesideYoga(deps: YogaDeps): CachesideYoga {
  const typeDefs = readFileSync(SCHEMA_FILE, 'utf8');
  return createYoga<ServerContext, GraphQLContext>({
    schema: createSchema<GraphQLContext>({ typeDefs, resolvers: deps.resolvers ?? cachesideResolvers }),
    context: createContextFactory(deps) as never,
    graphqlEndpoint: '/graphql',
    // yoga always installs its own health check, before every plugin of ours, and matches any URL
    // that ends with this string. A URL never ends with a raw space (it is sent as %20), so this
    // turns it off; useLiveness answers /health instead.
    healthCheckEndpoint: ' ',
    landingPage: false,
    graphiql: deps.graphiql === false ? false : { defaultQuery: DEFAULT_GRAPHIQL_QUERY, title: 'cacheside' },
    renderGraphiQL: renderGraphiQLPage({ endpoint: '/graphql', debug: deps.cacheDebug }),
    // A batched request (a JSON array of operations) is one HTTP request: bounded, so that one body
    // cannot smuggle in unlimited work.
    batching: { limit: MAX_BATCHED_OPERATIONS },
    cors: { exposedHeaders: [...CACHE_HEADER_NAMES, 'X-Request-Id'] },
    logging: yogaLogger(deps.logger),
    maskedErrors: {
      maskError: createErrorMasker((error) =>
        deps.logger.error(
          { err: error, reqId: currentRequestStats()?.requestId },
          'unexpected error in a resolver',
        ),
      ),
    },
    plugins: plugins(deps, validationDigest(typeDefs)),
  });
}

type YogaLogger = Exclude<YogaServerOptions<object, object>['logging'], boolean | string | undefined>;

/**
 * yoga writes an error-level line, with the stack, for every error its masker replaced (graphql-yoga
 * `server.js`, `maskError`). Ours replaces the expected ones too — NOT_FOUND, BAD_USER_INPUT, a
 * PostgreSQL outage (one line per failed request: over a hundred in a few seconds of outage) — and
 * reports the unexpected ones itself, with the request id (`onUnexpected` above). So yoga's line is
 * either a false alarm or a duplicate: it goes to debug. test/resilience/outage-logs.test.ts.
 */
function yogaLogger(logger: Logger): YogaLogger {
  return {
    debug: logger.debug.bind(logger),
    info: logger.info.bind(logger),
    warn: logger.warn.bind(logger),
    error: (error: unknown) => logger.debug({ err: error }, 'error replaced by the error masker'),
  };
}

/**
 * Every plugin, in one list. yoga runs each hook in list order (and nests `instrumentation`, first
 * outermost), so the order is part of the behaviour:
 *
 * 1. Request scope first: its instrumentation wraps all that follows, so every SQL statement and
 *    store round trip below is counted against the request (observability/request-scope.ts).
 * 2. Refusals before any work, cheapest first: the body cap reads the body before anyone buffers it
 *    (413), the request shape refuses malformed parameters (400), the query limits and the
 *    introspection switch run as validation rules.
 * 3. Response shaping: the cache headers and the debug extension read the request's report, the
 *    propagation notice the operation's; the error status turns request errors into their status.
 *    The response tier comes after both: the debug extension's `onExecuteDone` then runs on a
 *    stored answer too, and the tier's `ETag` and `Cache-Control` replace the headers' `no-store`.
 * 4. Request id, then the HTTP metrics and access log: their `onResponse` runs after the headers
 *    above are set, so the log line names what the cache did.
 * 5. The non-GraphQL endpoints (`/metrics`, `/ready`, `/health`) answer in `onRequest`; their responses still
 *    pass every `onResponse` above (a request id, no cache headers: those are /graphql only). So do
 *    GraphiQL's fingerprinted assets (`/graphiql/…`).
 * 6. Extra plugins (the benchmark's response cache) see requests after ours.
 * 7. Draining last: it counts the request for the shutdown and, once draining, sets
 *    `Connection: close` on every response, whoever built the app (server, tests, benchmark).
 */
function plugins(deps: YogaDeps, validation: string): YogaPlugins {
  return [
    useRequestScope(),
    useBodyLimit({ maxBytes: MAX_BODY_BYTES }),
    useRequestShape(),
    useQueryLimits(DEFAULT_QUERY_LIMITS),
    ...(deps.introspection ? [] : [useDisableIntrospection()]),
    useCacheHeaders({ tier: deps.cacheTier, enabled: deps.cacheHeaders }),
    useCacheDebug({ enabled: deps.cacheDebug }),
    ...(deps.responseTier
      ? [useResponseTier({ tier: deps.responseTier, debug: deps.cacheDebug, validation })]
      : []),
    usePropagationNotice(),
    useRequestErrorStatus(),
    useRequestId(),
    useHttpMetrics({ metrics: deps.metrics, logger: deps.logger }),
    useMetricsEndpoint({ registry: deps.metrics.registry }),
    useReadiness({ probe: deps.readiness }),
    useLiveness(),
    useGraphiQLAssets(),
    ...(deps.extraPlugins ?? []),
    deps.draining.plugin,
  ];
}
