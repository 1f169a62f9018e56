import type { Plugin } from 'graphql-yoga';
import type { Registry } from 'prom-client';

/** `GET /metrics`: the instance's registry in the Prometheus text format. */
export function useMetricsEndpoint({
  registry,
  endpoint = '/metrics',
}: {
  registry: Registry;
  endpoint?: string;
}): Plugin {
  return {
    async onRequest({ request, url, endResponse }) {
      if (url.pathname !== endpoint || request.method !== 'GET') return;
      endResponse(
        new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } }),
      );
    },
  };
}
