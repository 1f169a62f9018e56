/**
 * GraphiQL at /graphql for a browser, with its cache panel, unless GRAPHIQL is off (the default in
 * production, where introspection is off too and GraphiQL could show nothing but errors). The panel
 * itself is driven in a real browser by test/e2e/graphiql.e2e.ts.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
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

  test('on: a browser gets GraphiQL with the cache panel, before GraphiQL runs', async () => {
    const response = await on.fetch('/graphql', asBrowser);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const page = await response.text();
    expect(page).toContain(CACHE_PANEL_ID);
    // The panel wraps window.fetch before GraphiQL's bundle captures it.
    expect(page.indexOf(CACHE_PANEL_ID)).toBeLessThan(page.indexOf('YogaGraphiQL.renderYogaGraphiQL'));
  });

  test('the page is sent compressed, brotli preferred, and decompresses to the same page', async () => {
    const plain = await (await on.fetch('/graphql', asBrowser)).text();
    const sizes: Record<string, number> = { identity: Buffer.byteLength(plain) };
    for (const [accept, encoding, decode] of [
      ['gzip, deflate, br', 'br', brotliDecompressSync],
      ['gzip', 'gzip', gunzipSync],
    ] as const) {
      const response = await on.fetch('/graphql', {
        headers: { ...asBrowser.headers, 'accept-encoding': accept },
      });
      expect(response.headers.get('content-encoding')).toBe(encoding);
      expect(response.headers.get('vary')).toMatch(/accept-encoding/i);
      const bytes = Buffer.from(await response.arrayBuffer());
      sizes[encoding] = bytes.length;
      expect(decode(bytes).toString()).toBe(plain);
    }
    console.log(`[graphiql page bytes] ${JSON.stringify(sizes)}`);
    expect(sizes.br).toBeLessThan(sizes.identity! / 3);
    // Not for GraphQL answers: those stay uncompressed.
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
