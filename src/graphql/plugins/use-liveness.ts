/**
 * `GET /health` (or `HEAD`): liveness. 200 `{"status":"ok"}` while the process runs and answers
 * HTTP, checking nothing else: a restart would not mend PostgreSQL or Redis, that is /ready's
 * business. It replaces yoga's built-in health check, which answered an empty body for any method
 * and for any URL that merely ended in `/health` (create-yoga.ts turns that one off).
 */
import type { Plugin } from 'graphql-yoga';

export function useLiveness({ endpoint = '/health' }: { endpoint?: string } = {}): Plugin {
  return {
    onRequest({ request, url, endResponse }) {
      if (url.pathname !== endpoint || (request.method !== 'GET' && request.method !== 'HEAD')) return;
      endResponse(Response.json({ status: 'ok' }, { headers: { 'cache-control': 'no-store' } }));
    },
  };
}
