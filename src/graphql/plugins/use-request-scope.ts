import type { Plugin } from 'graphql-yoga';
import { runInRequestScope } from '../../observability/request-scope.js';
import { requestStateOf } from '../request-state.js';

/**
 * Runs all the handling of a request inside its request scope, so that SQL statements and store
 * round trips made anywhere below (context building, resolvers, DataLoader batches) are counted
 * against it (see observability/request-scope.ts).
 */
export function useRequestScope(): Plugin {
  return {
    instrumentation: {
      request: ({ request }, wrapped) => runInRequestScope(requestStateOf(request).stats, wrapped),
    },
  };
}
