/**
 * docs/contract.md, "Errors": a request-level error that is the client's document or variables —
 * a parse, validation, limit or variable-coercion failure — is HTTP 400 for a client that accepts
 * `application/graphql-response+json` (or says nothing), and 200 for one that accepts only the
 * legacy `application/json`, as the GraphQL-over-HTTP spec says it SHOULD be (graphql-http's audits,
 * test/api/graphql-over-http.test.ts). yoga marks such errors `http.spec` and answers legacy clients
 * 200 for them; two kinds reach it unmarked, and are marked here:
 *
 * - variables that cannot be coerced (`$id: ID!` given `true`): graphql-tools' execute reports them
 *   with status 400 and no code; they are the client's input, so they also get BAD_USER_INPUT;
 * - our own request-level GRAPHQL_VALIDATION_FAILED (the cost limit, use-cost-limit.ts).
 *
 * A request that is not a well-formed GraphQL-over-HTTP request at all (BAD_REQUEST: no query,
 * parameters of the wrong shape) is a 4xx for every client: yoga marks those too, and the mark is
 * dropped — the spec's 200 is for well-formed requests only.
 */
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

interface HttpExtension {
  spec?: boolean;
  status?: number;
}

export function useRequestErrorStatus(): Plugin {
  return {
    onResultProcess({ result }) {
      if (Symbol.asyncIterator in result) return;
      for (const single of Array.isArray(result) ? result : [result]) {
        for (const error of (single.errors ?? []) as GraphQLError[]) {
          const http = error.extensions?.http as HttpExtension | undefined;
          if (http?.status !== 400) continue;
          const extensions = error.extensions as Record<string, unknown>;
          if (extensions.code === 'BAD_REQUEST') {
            http.spec = false;
            continue;
          }
          if (extensions.code === undefined) extensions.code = 'BAD_USER_INPUT';
          if (extensions.code === 'BAD_USER_INPUT' || extensions.code === 'GRAPHQL_VALIDATION_FAILED') {
            http.spec ??= true;
          }
        }
      }
    },
  };
}
