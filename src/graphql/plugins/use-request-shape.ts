/**
 * Request bodies and parameters that yoga's parsers mishandle, answered as what they are — the
 * client's mistake, HTTP 400 BAD_REQUEST — instead of a 500 or a success:
 *
 * - the parser fails with a plain error: `variables` or `extensions` that are not JSON in a GET query
 *   string or a form-encoded body (`JSON.parse` throws a SyntaxError), a multipart `map` of the wrong
 *   shape (a TypeError) — each was an "Unexpected error." with status 500;
 * - the parser fails with a GraphQL error that has no code or status (a multipart body without
 *   `operations`): now it has both;
 * - a batch of zero operations (`[]`): yoga bounds a batch from above only, and answered 200 with an
 *   empty array — a request that asked for nothing and got no error.
 *
 * test/api/fuzz.test.ts found the first; test/api/limits.test.ts pins all three.
 */
import { createGraphQLError, type Plugin } from 'graphql-yoga';

export function useRequestShape(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (requestParser !== undefined) {
        setRequestParser(async (request) => {
          try {
            return await requestParser(request);
          } catch (error) {
            throw asBadRequest(error);
          }
        });
      }
      return {
        onRequestParseDone({ requestParserResult }) {
          if (Array.isArray(requestParserResult) && requestParserResult.length === 0) {
            throw badRequest('a batched request must hold at least one operation, got an empty array');
          }
        },
      };
    },
  };
}

// Private:

function badRequest(message: string) {
  return createGraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });
}

/** A parser's failure as a 400: GraphQL errors keep their message and code, anything else is wrapped. */
function asBadRequest(error: unknown): unknown {
  // By name, not `instanceof`: a second copy of graphql (ESM beside CommonJS) fails `instanceof`.
  if ((error as { name?: unknown } | null)?.name === 'GraphQLError') {
    const extensions = (error as { extensions: Record<string, unknown> }).extensions;
    if (extensions.code === undefined) {
      return createGraphQLError((error as Error).message, {
        extensions: { ...extensions, code: 'BAD_REQUEST', http: { status: 400 } },
      });
    }
    return error;
  }
  if ((error as { name?: unknown } | null)?.name === 'AbortError') return error; // the client went away
  const reason = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 120) : String(error);
  return badRequest(`the request could not be parsed: ${reason}`);
}
