/**
 * The cost arithmetic of use-cost-limit.ts on the real schema, without a server: graphql-armor's
 * weighting (scalar 1, object 2 + 1.5 × its selection, × list size), with list sizes taken from
 * literals, variables, variable defaults and schema defaults alike.
 */
import { readFileSync } from 'node:fs';
import { buildSchema, getOperationAST, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILE } from '../../src/graphql/create-yoga.js';
import { operationCost } from '../../src/graphql/plugins/use-cost-limit.js';

const schema = buildSchema(readFileSync(SCHEMA_FILE, 'utf8'));
const listArguments = {
  'Query.users': { argument: 'ids', max: 100 },
  'Query.userPage': { argument: 'first', max: 100 },
  'User.posts': { argument: 'first', max: 50 },
};

function cost(query: string, variables: Record<string, unknown> = {}): number {
  const document = parse(query);
  return operationCost(schema, document, getOperationAST(document)!, variables, { listArguments });
}

describe('operationCost', () => {
  it('weighs scalars 1 and objects 2 + 1.5 × their selection', () => {
    expect(cost('{ user(id: "1") { id } }')).toBe(2 + 1.5 * 1);
    expect(cost('{ user(id: "1") { id name profile { bio } } }')).toBe(2 + 1.5 * (1 + 1 + (2 + 1.5 * 1)));
  });

  it('multiplies a list by its size, whichever way the size is given', () => {
    expect(cost('{ user(id: "1") { posts(first: 7) { id } } }')).toBe(2 + 1.5 * ((2 + 1.5) * 7));
    expect(cost('query ($n: Int) { user(id: "1") { posts(first: $n) { id } } }', { n: 7 })).toBe(
      2 + 1.5 * ((2 + 1.5) * 7),
    );
    expect(cost('query ($n: Int = 7) { user(id: "1") { posts(first: $n) { id } } }')).toBe(
      2 + 1.5 * ((2 + 1.5) * 7),
    );
    // Omitted, or a variable left out: the schema default, 10.
    expect(cost('{ user(id: "1") { posts { id } } }')).toBe(2 + 1.5 * ((2 + 1.5) * 10));
    expect(cost('query ($n: Int) { user(id: "1") { posts(first: $n) { id } } }')).toBe(
      2 + 1.5 * ((2 + 1.5) * 10),
    );
  });

  it('counts users(ids) by the number of ids, literal or variable, at most 100', () => {
    expect(cost('{ users(ids: ["1", "2", "3"]) { id } }')).toBe((2 + 1.5) * 3);
    expect(cost('query ($ids: [ID!]!) { users(ids: $ids) { id } }', { ids: ['1', '2'] })).toBe((2 + 1.5) * 2);
    expect(cost('query ($ids: [ID!]!) { users(ids: $ids) { id } }', { ids: Array(10_000).fill('1') })).toBe(
      (2 + 1.5) * 100,
    );
  });

  it('caps a size at the field maximum: beyond it the field refuses the value itself', () => {
    expect(cost('{ userPage(first: 5000) { nextCursor } }')).toBe((2 + 1.5) * 100);
  });

  it('counts fragments, named and inline, as the fields they hold', () => {
    const plain = cost('{ user(id: "1") { id name } }');
    expect(cost('{ user(id: "1") { ...F } } fragment F on User { id name }')).toBe(plain);
    expect(cost('{ user(id: "1") { ... on User { id } ... { name } } }')).toBe(plain);
    // Spread twice, counted twice; computed once.
    expect(cost('{ user(id: "1") { ...F ...F } } fragment F on User { id name }')).toBe(2 + 1.5 * 4);
  });

  it('survives a fragment cycle (validation refuses it; the walk must not recurse forever)', () => {
    expect(
      cost('{ me { ...A } } fragment A on User { id ...B } fragment B on User { name ...A }'),
    ).toBeGreaterThan(0);
  });

  it('leaves introspection out', () => {
    expect(cost('{ __schema { types { name fields { name type { name ofType { name } } } } } }')).toBe(0);
  });
});
