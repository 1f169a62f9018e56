/**
 * Times every GraphQL request by operation type and logs one line per request (request id, status,
 * operation, what the cache did, SQL statements): the access log an operator greps first.
 */
import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { requestStateOf } from '../request-state.js';
import type { GraphQLContext } from '../context.js';
import { xCacheOf } from './use-cache-headers.js';

export interface HttpMetricsOptions {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** @default /graphql */
  readonly graphqlEndpoint?: string;
}

export function useHttpMetrics({
  metrics,
  logger,
  graphqlEndpoint = '/graphql',
}: HttpMetricsOptions): Plugin<GraphQLContext> {
  return {
    onExecute({ args }) {
      const { stats } = requestStateOf(args.contextValue.request);
      const type = getOperationAST(args.document, args.operationName)?.operation ?? 'unknown';
      // Several operations in one HTTP request (batching) are one "batch" for timing purposes.
      stats.operation = stats.operation === 'none' || stats.operation === type ? type : 'batch';
    },
    onResponse({ request, response }) {
      if (new URL(request.url).pathname !== graphqlEndpoint) return;
      const { stats, report, startedAt } = requestStateOf(request);
      const seconds = (performance.now() - startedAt) / 1000;
      metrics.httpDuration.observe({ operation: stats.operation, status: String(response.status) }, seconds);
      const answer = report.response;
      if (answer !== undefined) {
        const result = answer.outcome === 'hit' ? 'hit' : answer.failed === undefined ? 'miss' : 'stale';
        metrics.responseAnswers.inc({ result });
        if (answer.outcome === 'hit' && answer.checked === 'l1') metrics.responseKeptHits.inc();
      }
      logger.info(
        {
          reqId: stats.requestId,
          method: request.method,
          status: response.status,
          operation: stats.operation,
          ms: Math.round(seconds * 10_000) / 10,
          cache: xCacheOf(report),
          ...(report.response && { response: report.response.outcome }),
          hits: report.hits,
          misses: report.misses,
          sql: stats.sqlStatements,
        },
        'request',
      );
    },
  };
}
