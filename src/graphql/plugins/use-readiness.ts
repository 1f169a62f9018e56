import type { Plugin } from 'graphql-yoga';
import type { ReadinessProbe } from '../../app/readiness.js';

/**
 * `GET /ready`: 200 when the instance can serve (`ready`, or `degraded` with Redis down), 503 with
 * the reasons when PostgreSQL is unreachable, migrations are missing, or the instance is draining.
 */
export function useReadiness({
  probe,
  endpoint = '/ready',
}: {
  probe: ReadinessProbe;
  endpoint?: string;
}): Plugin {
  return {
    async onRequest({ request, url, endResponse }) {
      if (url.pathname !== endpoint || (request.method !== 'GET' && request.method !== 'HEAD')) return;
      const report = await probe.check();
      const ok = report.status === 'ready' || report.status === 'degraded';
      endResponse(
        Response.json(report, { status: ok ? 200 : 503, headers: { 'cache-control': 'no-store' } }),
      );
    },
  };
}
