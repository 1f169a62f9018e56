/**
 * GraphiQL at /graphql for a browser, with its cache panel, unless GRAPHIQL is off (the default in
 * production, where introspection is off too and GraphiQL could show nothing but errors). The panel
 * itself is driven in a real browser by test/e2e/graphiql.e2e.ts.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { graphiqlAssets } from '../../src/graphql/graphiql/assets.js';
import { CACHE_PANEL_ID } from '../../src/graphql/graphiql/cache-panel.js';
import { createTestApp, TEST_AUTH_SECRET, type TestApp } from '../support/app.js';

const asBrowser = { headers: { accept: 'text/html,application/xhtml+xml' } };

describe('GRAPHIQL', () => {
  let on: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    [on, off] = await Promise.all([
      createTestApp({ label: 'graphiql_on', store: 'memory', seed: { users: 1, postsPerUser: 0 } }),
      createTestApp({
        label: 'graphiql_off',
        store: 'memory',
        seed: { users: 1, postsPerUser: 0 },
        env: { GRAPHIQL: 'off' },
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([on?.close(), off?.close()]);
  });

  test('on: a browser gets a small page with the cache panel, before GraphiQL runs', async () => {
    const response = await on.fetch('/graphql', asBrowser);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const page = await response.text();
    expect(page).toContain(CACHE_PANEL_ID);
    // The panel wraps window.fetch before GraphiQL's bundle captures it.
    expect(page.indexOf(CACHE_PANEL_ID)).toBeLessThan(page.indexOf((await graphiqlAssets()).js.path));
    expect(Buffer.byteLength(page)).toBeLessThan(20_000); // was 9 MB, GraphiQL inlined
  });

  test('its assets: fingerprinted, cached a year, brotli or gzip, the same bytes decompressed', async () => {
    const page = await (await on.fetch('/graphql', asBrowser)).text();
    const figures: Record<string, Record<string, number>> = {};
    const { byPath: _byPath, ...assets } = await graphiqlAssets();
    for (const [name, asset] of Object.entries(assets)) {
      expect(page).toContain(asset.path);
      expect(asset.path).toMatch(/^\/graphiql\/[\w.]+\.[0-9a-f]{16}\.(js|css|ico)$/);
      const sizes: Record<string, number> = { identity: asset.body.bytes.length };
      for (const [accept, encoding, decode] of [
        ['gzip, deflate, br', 'br', brotliDecompressSync],
        ['gzip', 'gzip', gunzipSync],
        ['identity', null, (b: Buffer) => b],
      ] as const) {
        const response = await on.fetch(asset.path, { headers: { 'accept-encoding': accept } });
        expect(response.status).toBe(200);
        expect(response.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
        expect(response.headers.get('content-type')).toBe(asset.contentType);
        expect(response.headers.get('content-encoding')).toBe(encoding);
        const bytes = Buffer.from(await response.arrayBuffer());
        if (encoding !== null) sizes[encoding] = bytes.length;
        expect(decode(bytes).equals(asset.body.bytes)).toBe(true);
      }
      figures[name] = sizes;
    }
    console.log(`[graphiql asset bytes] ${JSON.stringify(figures)}`);
    expect(figures.js!.br).toBeLessThan(figures.js!.identity! / 3);
    expect((await on.fetch('/graphiql/graphiql.0000000000000000.js')).status).toBe(404);
    // GraphQL answers stay uncompressed: small, per request, and compressing them costs CPU.
    const answer = await on.fetch('/graphql?query=%7B__typename%7D', {
      headers: { 'accept-encoding': 'br, gzip' },
    });
    expect(answer.headers.get('content-encoding')).toBeNull();
  });

  test('off: a browser gets no GraphiQL page', async () => {
    const response = await off.fetch('/graphql', asBrowser);
    expect(response.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await response.text()).not.toContain('YogaGraphiQL');
  });

  test('off by default in production, on elsewhere', () => {
    const production = { NODE_ENV: 'production', AUTH_SECRET: TEST_AUTH_SECRET };
    expect(loadConfig(production).graphql.graphiql).toBe(false);
    expect(loadConfig({ ...production, GRAPHIQL: 'on' }).graphql.graphiql).toBe(true);
    expect(loadConfig({}).graphql.graphiql).toBe(true);
  });
});
