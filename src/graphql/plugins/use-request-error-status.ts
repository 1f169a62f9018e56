/**
 * docs/contract.md, "Errors": parse, validation and limit errors are HTTP 400 for every client. yoga follows the
 * GraphQL-over-HTTP rule for legacy `application/json` clients and answers them 200 (it marks such
 * errors `http.spec`, meaning "only for graphql-response+json"); we drop that mark so the status the
 * error carries applies whatever the client's Accept header says.
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
          if (http?.spec) http.spec = false;
          // Variables that cannot be coerced (`$id: ID!` given `true`) leave graphql-tools' execute with
          // status 400 and no code; they are the client's input: BAD_USER_INPUT (docs/contract.md, "Errors").
          if (http?.status === 400 && error.extensions.code === undefined) {
            (error.extensions as Record<string, unknown>).code = 'BAD_USER_INPUT';
          }
        }
      }
    },
  };
}
