/**
 * GraphiQL in a real browser: the page at /graphql renders offline (no CDN), runs its default query,
 * shows the answer in the result pane, and the answer carries the cache headers — a MISS the first
 * time, a HIT the second — which the cache panel shows, with the keys looked up (CACHE_DEBUG is on
 * outside production). A screenshot of the page, panel included, is kept in
 * test-artifacts/graphiql.png.
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page, Request as BrowserRequest, Response as BrowserResponse } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { startHttpServer, type HttpTestServer } from '../support/http-server.js';
import { CACHE_PANEL_ID } from '../../src/graphql/graphiql/cache-panel.js';
import { launchChromium, type Browser } from './browser.js';

const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const SCREENSHOT = `${ARTIFACTS_DIR}graphiql.png`;

/** The operation name of DEFAULT_GRAPHIQL_QUERY (src/graphql/create-yoga.ts). */
const DEFAULT_OPERATION = 'UserWithPosts';

interface SeenResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: { data?: { user?: { name?: string } | null } | null; errors?: unknown[] };
}

describe('GraphiQL in headless Chromium', () => {
  let t: TestApp;
  let server: HttpTestServer;
  let browser: Browser;
  let page: Page;
  /** Every POST /graphql of the default operation, as the browser received it, in order. */
  const operationResponses: Promise<SeenResponse>[] = [];
  /** Every URL the page requested: GraphiQL must load everything from the app itself. */
  const requestedUrls: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    t = await createTestApp({
      label: 'e2e_graphiql',
      seed: { users: 5, postsPerUser: 3 },
      // E2E_LOG_LEVEL=info shows the app's log lines (one `request` line per request) while debugging.
      env: { LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'silent' },
    });
    server = await startHttpServer(t.app);
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on('request', (request) => requestedUrls.push(request.url()));
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('response', (response) => {
      if (isDefaultOperationPost(response)) operationResponses.push(readResponse(response));
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await t?.close();
  });

  test('opens at /graphql with the default query, offline', async () => {
    const response = await page.goto(`${server.origin}/graphql`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toContain('text/html');

    await page.locator('.graphiql-execute-button').waitFor();
    await page.locator('.graphiql-query-editor').getByText(DEFAULT_OPERATION).waitFor();
    await expect(page.title()).resolves.toBe('cacheside');

    expect(requestsElsewhere()).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  test('runs the query: the result pane shows the answer, the headers say MISS, then HIT', async () => {
    const first = await execute(page);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.errors).toBeUndefined();
    const name = first.body.data?.user?.name;
    expect(name).toEqual(expect.any(String));
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['cache-status']).toMatch(/^cacheside-redis; fwd=miss; stored/);
    expect(first.headers['x-request-id']).toMatch(/\S/);
    expect(first.headers['server-timing']).toMatch(/^cache;dur=[\d.]+, db;dur=[\d.]+$/);
    await resultLine(page, `"name": "${name}"`).waitFor();
    const panel = page.locator(`#${CACHE_PANEL_ID}`);
    await panel.getByText('X-Cache: MISS').waitFor();
    await panel.getByText(/^Cache-Status: cacheside-redis; fwd=miss; stored/).waitFor();
    await panel.getByText(/^Server-Timing: cache;dur=/).waitFor();
    // The keys the request looked up (x-cache-debug, which the panel adds): the user, then its
    // profile and post list, each a miss.
    await panel.locator('td', { hasText: /:v1:user:\{1\}$/ }).waitFor();
    await expect(panel.locator('td', { hasText: /^miss$/ }).count()).resolves.toBeGreaterThanOrEqual(3);

    const second = await execute(page);
    expect(second.body.data).toEqual(first.body.data); // extensions.cache (the panel's debug detail) differs
    expect(second.headers['x-cache']).toBe('HIT');
    expect(Number(second.headers['x-cache-hits'])).toBeGreaterThan(0);
    expect(second.headers['x-cache-misses']).toBe('0');
    expect(second.headers['cache-status']).toMatch(/^cacheside-redis; hit/);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    await panel.getByText(/^X-Cache: HIT \(\d+ hits, 0 misses\)$/).waitFor();
    await panel.getByText(/^Cache-Status: cacheside-redis; hit/).waitFor();
    await expect(panel.locator('td', { hasText: /^miss$/ }).count()).resolves.toBe(0);

    await resultLine(page, `"name": "${name}"`).waitFor();
    const resultPane = normalize(await page.locator('.graphiql-response').innerText());
    expect(resultPane).toContain('"user": {');
    expect(resultPane).toContain(`"name": "${name}"`);
    expect(requestsElsewhere()).toEqual([]);
    expect(pageErrors).toEqual([]);

    await mkdir(ARTIFACTS_DIR, { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
  });

  test('a first open transfers GraphiQL compressed; a reopen takes its assets from the browser cache', async () => {
    const fresh = await browser.context.browser()!.newContext();
    try {
      const opened = await fresh.newPage();
      const first = await transferred(opened, () => opened.goto(`${server.origin}/graphql`));
      const again = await transferred(opened, () => opened.reload());
      console.log(
        `[graphiql transfer] first open ${first.bytes} bytes in ${first.requests} requests; ` +
          `reopen ${again.bytes} bytes in ${again.requests} requests`,
      );
      // The assets are 8.9 MB uncompressed; compressed, and the workers loaded as Monaco needs them.
      expect(first.bytes).toBeLessThan(3_000_000);
      // Immutable, fingerprinted: on a reopen only the page and GraphiQL's introspection go out.
      expect(again.bytes).toBeLessThan(first.bytes / 20);
    } finally {
      await fresh.close();
    }
  });

  /** Requests that left the app's origin (GraphiQL must not need a CDN). */
  function requestsElsewhere(): string[] {
    return requestedUrls.filter(
      (url) => !url.startsWith(server.origin) && !url.startsWith('data:') && !url.startsWith('blob:'),
    );
  }

  /** Clicks GraphiQL's run button and resolves with the response the browser got. */
  async function execute(on: Page): Promise<SeenResponse> {
    const before = operationResponses.length;
    await Promise.all([
      on.waitForResponse(isDefaultOperationPost),
      on.locator('.graphiql-execute-button').click(),
    ]);
    const seen = operationResponses[before];
    if (seen === undefined) throw new Error('the response listener did not see the operation');
    return seen;
  }
});

// Private:

/**
 * Bytes (encoded bodies and headers) the page received over the network while `navigate` ran, until
 * GraphiQL had its schema (its introspection answered); a response from the browser cache counts 0.
 */
async function transferred(on: Page, navigate: () => Promise<unknown>) {
  const finished: BrowserRequest[] = [];
  const listener = (request: BrowserRequest) => void finished.push(request);
  on.on('requestfinished', listener);
  const introspected = on.waitForResponse(
    (r) => r.request().method() === 'POST' && (r.request().postData() ?? '').includes('IntrospectionQuery'),
  );
  await navigate();
  await introspected;
  await on.locator('.graphiql-execute-button').waitFor();
  on.off('requestfinished', listener);
  let bytes = 0;
  for (const request of finished) {
    const sizes = await request.sizes();
    bytes += Math.max(0, sizes.responseBodySize) + Math.max(0, sizes.responseHeadersSize);
  }
  return { bytes, requests: finished.length };
}

/** A POST /graphql of the default operation (GraphiQL also POSTs its introspection query there). */
function isDefaultOperationPost(response: BrowserResponse): boolean {
  const request = response.request();
  if (request.method() !== 'POST' || new URL(request.url()).pathname !== '/graphql') return false;
  const payload = request.postDataJSON() as { operationName?: string } | null;
  return payload?.operationName === DEFAULT_OPERATION;
}

async function readResponse(response: BrowserResponse): Promise<SeenResponse> {
  return {
    status: response.status(),
    headers: await response.allHeaders(),
    body: (await response.json()) as SeenResponse['body'],
  };
}

/** A line of GraphiQL's result pane (a read-only Monaco editor) containing `text`. */
function resultLine(on: Page, text: string) {
  return on.locator('.graphiql-response .view-line').filter({ hasText: text }).first();
}

/** Monaco draws spaces as U+00A0. */
function normalize(text: string): string {
  return text.replace(/\u00a0/g, ' ');
}
