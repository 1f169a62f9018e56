/**
 * `GET /graphiql/<name>.<hash>.<ext>`: GraphiQL's assets (src/graphql/graphiql/assets.ts), cached
 * for a year as `immutable` (the hash in the path changes with the content), brotli- or
 * gzip-compressed when the browser takes it. Any other path under /graphiql/ is a 404.
 */
import type { Plugin } from 'graphql-yoga';
import { GRAPHIQL_ASSETS_PATH, graphiqlAssets } from '../graphiql/assets.js';
import { preferredEncoding } from '../graphiql/compression.js';

const IMMUTABLE = 'public, max-age=31536000, immutable';

export function useGraphiQLAssets(): Plugin {
  return {
    async onRequest({ request, url, endResponse }) {
      if (!url.pathname.startsWith(GRAPHIQL_ASSETS_PATH)) return;
      const asset = (await graphiqlAssets()).byPath.get(url.pathname);
      if (asset === undefined || (request.method !== 'GET' && request.method !== 'HEAD')) {
        endResponse(new Response('not found', { status: 404, headers: { 'content-type': 'text/plain' } }));
        return;
      }
      const encoding = preferredEncoding(request.headers.get('accept-encoding'));
      const bytes = encoding === undefined ? asset.body.bytes : await asset.body.encoded(encoding);
      const headers = new Headers({
        'content-type': asset.contentType,
        'cache-control': IMMUTABLE,
        vary: 'accept-encoding',
      });
      if (encoding !== undefined) headers.set('content-encoding', encoding);
      endResponse(new Response(request.method === 'HEAD' ? null : new Uint8Array(bytes), { headers }));
    },
  };
}
