/**
 * The per-request context. Built fresh for every request by `createContextFactory`: its loaders and
 * cache report belong to that request alone.
 */
import type { YogaInitialContext } from 'graphql-yoga';
import { verifyToken, TokenError } from '../auth/tokens.js';
import { CacheReport } from '../observability/cache-report.js';
import { createLoaders, type Loaders } from '../loaders/create-loaders.js';
import type { EntityReaders } from '../cache/read/cached-readers.js';
import type { RequestStats } from '../observability/request-scope.js';
import type { Services } from '../services/create-services.js';
import { DatabaseUnavailableError } from '../db/errors.js';
import { serviceUnavailable, unauthenticated } from './errors.js';
import { requestStateOf } from './request-state.js';

export interface Viewer {
  readonly userId: number;
}

export interface GraphQLContext extends YogaInitialContext {
  /** The authenticated caller, or null for an anonymous request. */
  readonly viewer: Viewer | null;
  readonly loaders: Loaders;
  readonly services: Services;
  readonly cache: CacheReport;
  readonly stats: RequestStats;
  /** What the operation's mutations have to tell the client (use-propagation-notice.ts). */
  readonly notices: { propagationPending: boolean };
}

export interface ContextDeps {
  readonly readers: EntityReaders;
  readonly services: Services;
  readonly authSecret: string;
}

/** Longest Authorization header value we parse; real tokens are a few hundred bytes. */
export const MAX_AUTHORIZATION_LENGTH = 4096;

export function createContextFactory(deps: ContextDeps) {
  return async ({ request }: YogaInitialContext): Promise<Omit<GraphQLContext, keyof YogaInitialContext>> => {
    const { report: cache, stats } = requestStateOf(request);
    const loaders = createLoaders({ readers: deps.readers, report: cache });
    const viewer = await authenticate(request.headers.get('authorization'), deps.authSecret, deps.readers);
    return { viewer, loaders, services: deps.services, cache, stats, notices: { propagationPending: false } };
  };
}

/**
 * No header: anonymous. A header that is present but not a valid bearer token for an existing user
 * fails the whole operation (docs/contract.md, "Auth"): a client that believes it is signed in must not silently
 * get anonymous answers.
 */
async function authenticate(
  header: string | null,
  secret: string,
  readers: EntityReaders,
): Promise<Viewer | null> {
  if (header === null) return null;
  if (header.length > MAX_AUTHORIZATION_LENGTH) {
    throw unauthenticated(`Authorization header must be at most ${MAX_AUTHORIZATION_LENGTH} characters`);
  }
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (match === null) throw unauthenticated('Authorization must be "Bearer <token>"');
  let userId: number;
  try {
    ({ userId } = await verifyToken(secret, match[1]!));
  } catch (error) {
    if (error instanceof TokenError) throw unauthenticated(error.message);
    throw error;
  }
  // Read through the cache like any user, but outside the request's report: checking the caller is
  // not a lookup the client asked for, and must not turn a mutation's BYPASS into a HIT.
  const [user] = await readers.user([userId], new CacheReport());
  // PostgreSQL down and the caller not cached: the operation cannot be authorized at all.
  if (user instanceof DatabaseUnavailableError) throw serviceUnavailable(undefined, { httpStatus: 503 });
  if (user instanceof Error) throw user;
  if (user === null || user === undefined)
    throw unauthenticated(`the token names user ${userId}, who does not exist`);
  return { userId };
}
