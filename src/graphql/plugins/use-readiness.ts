/**
 * `GET /ready`: 200 when the instance can serve (`ready`, or `degraded` with Redis down), 503 with
 * the reasons when PostgreSQL is unreachable, migrations are missing, or the instance is draining.
 */
import type { Plugin } from 'graphql-yoga';

/** What `/ready` asks; src/app/readiness.ts answers it from the database and the store. */
export interface ReadinessCheck {
  check(): Promise<{ readonly status: 'ready' | 'degraded' | 'unavailable' | 'draining' }>;
}

export function useReadiness({
  probe,
  endpoint = '/ready',
}: {
  probe: ReadinessCheck;
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
