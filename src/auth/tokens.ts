/**
 * Bearer tokens (docs/contract.md, "Auth"): compact JWS, HS256 with `AUTH_SECRET`, `sub` = the user id, `exp`
 * required. Verification is deliberately narrow — one algorithm, one subject form, a size cap —
 * because everything a token may carry beyond that is attack surface, not a feature.
 *
 * Whether the named user still exists is not checked here: that needs the database, and the caller
 * (the GraphQL context) answers it through the same loaders as every other read.
 */
import { SignJWT, errors, jwtVerify } from 'jose';
import { isId, MAX_ID, parseId } from '../domain/ids.js';

/** Tokens longer than this are refused before any parsing: ours are ~150 characters. */
export const MAX_TOKEN_LENGTH = 4096;

/** Lifetime of a token from `signToken`, seconds. @default 86400 (24 h) */
export const DEFAULT_TOKEN_TTL_SECONDS = 86_400;

// The only algorithm accepted. jose never accepts "none"; listing HS256 alone also closes the door
// on HS384/HS512 tokens signed with the same secret by some other tool.
const ALGORITHM = 'HS256';

// Tolerated clock skew between the instance that signed and the one verifying, seconds.
const CLOCK_TOLERANCE_SECONDS = 5;

export type TokenErrorCode =
  /** Not a compact JWS, too long, or undecodable. */
  | 'TOKEN_MALFORMED'
  /** Well-formed but not acceptable: algorithm, signature, or a claim (missing `exp`, bad `sub`, `nbf`). */
  | 'TOKEN_INVALID'
  /** Valid signature, but `exp` has passed. */
  | 'TOKEN_EXPIRED';

/** Why a token was refused. The message never contains the token, so it is safe to log. */
export class TokenError extends Error {
  readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenError';
    this.code = code;
  }
}

export interface SignTokenOptions {
  /** Lifetime, seconds. @default 86400 */
  readonly expiresInSeconds?: number;
}

/** Signs a token naming `userId`, valid from now for `expiresInSeconds`. */
export async function signToken(
  secret: string,
  userId: number,
  options: SignTokenOptions = {},
): Promise<string> {
  if (!isId(userId)) {
    throw new RangeError(`user id must be an integer in 1..${MAX_ID}, got ${String(userId)}`);
  }
  const ttl = options.expiresInSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl < 1) {
    throw new RangeError(`expiresInSeconds must be a positive integer, got ${String(ttl)}`);
  }
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
    .setSubject(String(userId))
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .sign(secretKey(secret));
}

/** Verifies a token and returns the user id it names, or throws a `TokenError`. */
export async function verifyToken(secret: string, token: string): Promise<{ userId: number }> {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TokenError('TOKEN_MALFORMED', 'token is empty');
  }
  // Checked before jose sees it, so an oversized header costs a length comparison, not a base64
  // decode and a JSON parse.
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new TokenError(
      'TOKEN_MALFORMED',
      `token is ${token.length} characters long, more than the ${MAX_TOKEN_LENGTH} accepted`,
    );
  }

  let sub: unknown;
  try {
    const { payload } = await jwtVerify(token, secretKey(secret), {
      algorithms: [ALGORITHM],
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    sub = payload.sub;
  } catch (error) {
    throw toTokenError(error);
  }

  const userId = typeof sub === 'string' ? parseId(sub) : undefined;
  if (userId === undefined) {
    throw new TokenError(
      'TOKEN_INVALID',
      `token subject must be a user id in canonical form (1..${MAX_ID}), got ${describe(sub)}`,
    );
  }
  return { userId };
}

// Private:

function secretKey(secret: string): Uint8Array {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new TypeError('the token secret must be a non-empty string');
  }
  return new TextEncoder().encode(secret);
}

/** The one place jose's errors are read. Anything that is not a JOSEError is a bug and propagates. */
function toTokenError(error: unknown): unknown {
  if (error instanceof errors.JWTExpired) {
    return new TokenError('TOKEN_EXPIRED', 'token has expired', { cause: error });
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return new TokenError('TOKEN_INVALID', `token algorithm is not accepted: only ${ALGORITHM} is`, {
      cause: error,
    });
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError('TOKEN_INVALID', 'token signature does not verify', { cause: error });
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const what = error.reason === 'missing' ? 'is missing' : `is not acceptable (${error.reason})`;
    return new TokenError('TOKEN_INVALID', `token claim "${error.claim}" ${what}`, { cause: error });
  }
  if (error instanceof errors.JOSEError) {
    return new TokenError('TOKEN_MALFORMED', 'token is not a well-formed JWT (compact JWS)', {
      cause: error,
    });
  }
  return error;
}

/** A claim value for a message: JSON, cut short so a hostile claim cannot flood the logs. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 40 ? `${json.slice(0, 40)}…` : json;
}
