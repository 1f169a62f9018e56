/**
 * The GraphQL-over-HTTP spec (graphql.github.io/graphql-over-http), audited by graphql-http's own
 * `serverAudits`: every MUST and every SHOULD passes. The three SHOULDs that once failed: a client
 * that accepts only the legacy `application/json` gets 200, not 400, for a document that does not
 * parse, does not validate, or whose variables cannot be coerced (400 stays for
 * `application/graphql-response+json`, which test/api/limits.test.ts and others use).
 */
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ label: 'graphql_http', store: 'memory', seed: { users: 3, postsPerUser: 1 } });
});
afterAll(() => t?.close());

const audits = serverAudits({
  url: 'http://cacheside/graphql',
  fetchFn: (input: string | URL | Request, init?: RequestInit) =>
    t.app.yoga.fetch(input as string, init as Parameters<TestApp['app']['yoga']['fetch']>[1]),
});

describe('graphql-http server audits', () => {
  test('there are MUST, SHOULD and MAY audits to run', () => {
    const levels = new Set(audits.map((a) => a.name.split(' ')[0]));
    expect(levels).toEqual(new Set(['MUST', 'SHOULD', 'MAY']));
  });

  test.each(audits.filter((a) => !a.name.startsWith('MAY')).map((a) => [a.name, a] as const))(
    '%s',
    async (_, audit) => {
      const result = await audit.fn();
      expect(
        result.status === 'ok' ? 'ok' : `${result.status}: ${(result as { reason?: string }).reason}`,
      ).toBe('ok');
    },
  );
});
