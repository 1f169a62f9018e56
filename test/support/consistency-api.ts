/**
 * The API calls of the consistency tests (test/write-path, docs/consistency.md), each reporting what
 * the cache did for it: the answer, X-Cache and Cache-Status, the SQL statements it ran and the
 * outcome of the key under test (through the debug extension).
 */
import { expect } from 'vitest';
import type { GraphQLResponse, TestApp } from './app.js';
import { DEBUG, debugOf, statusesOf } from './debug.js';

export const PROFILE = `query Profile($id: ID!) { user(id: $id) { id profile { userId displayName bio version } } }`;
const POSTS = `query Posts($id: ID!) { user(id: $id) { id posts(first: 1) { id title } } }`;
export const UPDATE = `mutation Update($input: UpdateProfileInput!) { updateProfile(input: $input) { userId bio version } }`;
const CREATE = `mutation Create($input: CreatePostInput!) { createPost(input: $input) { id title } }`;

export interface ProfileOut {
  userId: string;
  displayName: string;
  bio: string;
  version: number;
}
export interface PostOut {
  id: string;
  title: string;
}

/** What one read answered and what the cache did for it. */
interface Observed<T> {
  readonly value: T;
  readonly xCache: string | null;
  readonly cacheStatus: string | null;
  /** SQL statements the request ran (debug extension). */
  readonly sql: number;
  /** Lookup outcomes of the entity key under test, e.g. ['hit']. */
  readonly outcomes: string[];
  readonly debug: ReturnType<typeof debugOf>;
}

function observed<T>(response: GraphQLResponse<unknown>, value: T, keySuffix: string): Observed<T> {
  expect(response.body.errors).toBeUndefined();
  const debug = debugOf(response);
  return {
    value,
    xCache: response.headers.get('x-cache'),
    cacheStatus: response.headers.get('cache-status'),
    sql: debug.sqlStatements,
    outcomes: statusesOf(debug, keySuffix),
    debug,
  };
}

export async function readProfile(t: TestApp, userId: number): Promise<Observed<ProfileOut>> {
  const response = await t.gql<{ user: { profile: ProfileOut } | null }>(PROFILE, {
    variables: { id: String(userId) },
    headers: DEBUG,
  });
  const profile = response.body.data?.user?.profile;
  if (profile === undefined) throw new Error(`no profile in ${JSON.stringify(response.body)}`);
  return observed(response, profile, `:profile:{${userId}}`);
}

export async function readNewestPost(t: TestApp, authorId: number): Promise<Observed<PostOut | undefined>> {
  const response = await t.gql<{ user: { posts: PostOut[] } | null }>(POSTS, {
    variables: { id: String(authorId) },
    headers: DEBUG,
  });
  const posts = response.body.data?.user?.posts;
  if (posts === undefined) throw new Error(`no posts in ${JSON.stringify(response.body)}`);
  return observed(response, posts[0], `:user:{${authorId}}:posts`);
}

export async function updateProfile(t: TestApp, userId: number, input: Record<string, unknown>) {
  return t.gql<{ updateProfile: ProfileOut }>(UPDATE, { variables: { input }, token: await t.token(userId) });
}

export async function updated(
  t: TestApp,
  userId: number,
  input: Record<string, unknown>,
): Promise<ProfileOut> {
  const response = await updateProfile(t, userId, input);
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.updateProfile;
}

export async function createdPost(t: TestApp, authorId: number, title: string): Promise<PostOut> {
  const response = await t.gql<{ createPost: PostOut }>(CREATE, {
    variables: { input: { title, body: `${title}, the body` } },
    token: await t.token(authorId),
  });
  expect(response.body.errors).toBeUndefined();
  return response.body.data!.createPost;
}
