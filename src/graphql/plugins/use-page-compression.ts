/**
 * GraphiQL's page, compressed: it is one 9 MB HTML document (yoga inlines GraphiQL, Monaco and its
 * workers so that it needs no CDN), sent uncompressed it was 9 MB on every open. Brotli brings it to
 * ~1.9 MB and gzip to ~2.4 MB; the page is the same for every request, so each encoding is computed
 * once (off the event loop, by zlib's thread pool) and reused. Only HTML is touched: GraphQL answers
 * are small and per request, and compressing them would cost every request CPU for little.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

const ENCODERS = {
  br: (page: Buffer) => promisify(brotliCompress)(page, { params: { [constants.BROTLI_PARAM_QUALITY]: 9 } }),
  gzip: (page: Buffer) => promisify(gzip)(page, { level: 9 }),
} as const;
type Encoding = keyof typeof ENCODERS;

export function usePageCompression(): Plugin {
  // One page (yoga renders the same HTML each time): the last one seen, in each encoding.
  let page: string | undefined;
  let encoded = new Map<Encoding, Promise<Buffer>>();
  return {
    async onResponse({ request, response, setResponse }) {
      if (!response.headers.get('content-type')?.startsWith('text/html')) return;
      const encoding = preferred(request.headers.get('accept-encoding'));
      if (encoding === undefined) return;
      const html = await response.text();
      if (html !== page) {
        page = html;
        encoded = new Map();
      }
      let bytes = encoded.get(encoding);
      if (bytes === undefined) encoded.set(encoding, (bytes = ENCODERS[encoding](Buffer.from(html))));
      const headers = new Headers(response.headers);
      headers.set('content-encoding', encoding);
      headers.set('vary', 'accept-encoding');
      headers.delete('content-length');
      setResponse(new Response(new Uint8Array(await bytes), { status: response.status, headers }));
    },
  };
}

/** br if the client takes it, else gzip, else nothing (q=0 refuses an encoding). */
function preferred(acceptEncoding: string | null): Encoding | undefined {
  const accepted = new Set(
    (acceptEncoding ?? '')
      .split(',')
      .map((part) => part.trim().toLowerCase())
      .filter((part) => !/;\s*q=0(\.0*)?$/.test(part))
      .map((part) => part.split(';')[0]!.trim()),
  );
  if (accepted.has('br')) return 'br';
  if (accepted.has('gzip')) return 'gzip';
  return undefined;
}
