/**
 * The GraphQL HTTP layer: schema, context, error masking and the plugins, assembled from the parts
 * the composition root hands in. Knows nothing of how the parts are built.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createSchema, createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from '../observability/logger.js';
import { currentRequestStats } from '../observability/request-scope.js';
import { createContextFactory, type ContextDeps, type GraphQLContext } from './context.js';
import { createErrorMasker } from './errors.js';
import { useCacheDebug } from './plugins/use-cache-debug.js';
import { CACHE_HEADER_NAMES, useCacheHeaders } from './plugins/use-cache-headers.js';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { useBodyLimit } from './plugins/use-body-limit.js';
import { useRequestShape } from './plugins/use-request-shape.js';
import { useQueryLimits } from './plugins/use-query-limits.js';
import { useRequestErrorStatus } from './plugins/use-request-error-status.js';
import { useRequestScope } from './plugins/use-request-scope.js';
import { resolvers as cachesideResolvers } from './resolvers/index.js';
import type { Resolvers } from './generated/resolvers-types.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../schema/schema.graphql', import.meta.url));

/** GraphiQL's first query: a user, their profile and their newest posts. */
export const DEFAULT_GRAPHIQL_QUERY = `# Welcome to cacheside. Run this, then run it again and watch the X-Cache header.
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
  readonly plugins?: readonly (Plugin | Plugin<GraphQLContext>)[];
  /** Resolvers to serve instead of ours, over the same schema and plugins (the benchmark's variants A and S). */
  readonly resolvers?: Resolvers;
}

/** What the node:http adapter passes as server context. */
export interface ServerContext {
  readonly req?: IncomingMessage;
  readonly res?: ServerResponse;
}

export type CachesideYoga = YogaServerInstance<ServerContext, GraphQLContext>;

export function createCachesideYoga(deps: YogaDeps): CachesideYoga {
  const typeDefs = readFileSync(SCHEMA_FILE, 'utf8');
  return createYoga<ServerContext, GraphQLContext>({
    schema: createSchema<GraphQLContext>({ typeDefs, resolvers: deps.resolvers ?? cachesideResolvers }),
    context: createContextFactory(deps) as never,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    graphiql: { defaultQuery: DEFAULT_GRAPHIQL_QUERY, title: 'cacheside' },
    renderGraphiQL,
    // A batched request (a JSON array of operations) is one HTTP request: bounded, so that one body
    // cannot smuggle in unlimited work.
    batching: { limit: MAX_BATCHED_OPERATIONS },
    cors: { exposedHeaders: [...CACHE_HEADER_NAMES, 'X-Request-Id'] },
    logging: deps.logger,
    maskedErrors: {
      maskError: createErrorMasker((error) =>
        deps.logger.error(
          { err: error, reqId: currentRequestStats()?.requestId },
          'unexpected error in a resolver',
        ),
      ),
    },
    plugins: [
      useRequestScope(),
      useBodyLimit({ maxBytes: MAX_BODY_BYTES }),
      useRequestShape(),
      useQueryLimits(),
      ...(deps.introspection ? [] : [useDisableIntrospection()]),
      useCacheHeaders({ tier: deps.cacheTier, enabled: deps.cacheHeaders }),
      useCacheDebug({ enabled: deps.cacheDebug }),
      useRequestErrorStatus(),
      ...(deps.plugins ?? []),
    ],
  });
}
