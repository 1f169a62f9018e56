import { SignJWT, UnsecuredJWT, base64url } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  MAX_TOKEN_LENGTH,
  TokenError,
  signToken,
  verifyToken,
  type TokenErrorCode,
} from '../../src/auth/tokens.js';

const SECRET = 'a-test-secret-that-is-at-least-32-characters';
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** A token built by hand, so each test can break exactly one thing. */
function craft(payload: Record<string, unknown>, alg: 'HS256' | 'HS384' | 'HS512' = 'HS256'): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg }).sign(key);
}

async function refusal(token: string, secret = SECRET): Promise<TokenError> {
  const error = await verifyToken(secret, token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenError);
  const tokenError = error as TokenError;
  // Safe to log: a refusal never carries the credential it refused.
  if (token.length > 0) expect(tokenError.message).not.toContain(token);
  return tokenError;
}

async function expectRefused(token: string, code: TokenErrorCode, message: RegExp): Promise<void> {
  const error = await refusal(token);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
}

describe('signToken / verifyToken', () => {
  it('round-trips a user id, with a 24 h lifetime by default', async () => {
    const token = await signToken(SECRET, 42);
    await expect(verifyToken(SECRET, token)).resolves.toEqual({ userId: 42 });
    const [header, payload] = token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(new TextDecoder().decode(base64url.decode(part))));
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload.sub).toBe('42');
    expect(payload.exp - payload.iat).toBe(86_400);
  });

  it('accepts the largest id and honours expiresInSeconds', async () => {
    const token = await signToken(SECRET, 2_147_483_647, { expiresInSeconds: 60 });
    await expect(verifyToken(SECRET, token)).resolves.toEqual({ userId: 2_147_483_647 });
  });

  it('refuses to sign for something that is not a user id', async () => {
    for (const id of [0, -1, 1.5, 2_147_483_648, Number.NaN]) {
      await expect(signToken(SECRET, id)).rejects.toThrow(RangeError);
    }
    await expect(signToken(SECRET, 1, { expiresInSeconds: 0 })).rejects.toThrow('got 0');
  });

  it('refuses alg none', async () => {
    const token = new UnsecuredJWT({ sub: '1' }).setExpirationTime(now() + 60).encode();
    await expectRefused(token, 'TOKEN_INVALID', /only HS256/);
  });

  it.each(['HS384', 'HS512'] as const)('refuses %s even when signed with the right secret', async (alg) => {
    const token = await craft({ sub: '1', exp: now() + 60 }, alg);
    await expectRefused(token, 'TOKEN_INVALID', /only HS256/);
  });

  it('refuses a token signed with another secret', async () => {
    const token = await signToken('another-secret-also-at-least-32-characters', 1);
    await expectRefused(token, 'TOKEN_INVALID', /signature/);
  });

  it('refuses an expired token', async () => {
    const token = await craft({ sub: '1', iat: now() - 120, exp: now() - 60 });
    await expectRefused(token, 'TOKEN_EXPIRED', /expired/);
  });

  it('refuses a token without exp', async () => {
    const token = await craft({ sub: '1' });
    await expectRefused(token, 'TOKEN_INVALID', /"exp" is missing/);
  });

  it('refuses a token without sub', async () => {
    const token = await craft({ exp: now() + 60 });
    await expectRefused(token, 'TOKEN_INVALID', /"sub" is missing/);
  });

  it.each(['007', '0', '-1', 'abc', '2147483648', '1.5', ' 1', '', '99999999999'])(
    'refuses sub %j',
    async (sub) => {
      const token = await craft({ sub, exp: now() + 60 });
      await expectRefused(token, 'TOKEN_INVALID', /subject must be a user id/);
    },
  );

  it('refuses a sub that is a number rather than a string', async () => {
    const token = await craft({ sub: 1, exp: now() + 60 });
    await expectRefused(token, 'TOKEN_INVALID', /got 1$/);
  });

  it('refuses an oversized token before parsing it', async () => {
    const padded = await craft({ sub: '1', exp: now() + 60, pad: 'x'.repeat(MAX_TOKEN_LENGTH) });
    await expectRefused(padded, 'TOKEN_MALFORMED', new RegExp(`more than the ${MAX_TOKEN_LENGTH}`));
    // Not even a JWT: the length check comes first.
    await expectRefused('!'.repeat(MAX_TOKEN_LENGTH + 1), 'TOKEN_MALFORMED', /characters long/);
  });

  it('refuses garbage and a tampered payload', async () => {
    await expectRefused('not-a-token', 'TOKEN_MALFORMED', /well-formed/);
    await expectRefused('', 'TOKEN_MALFORMED', /empty/);
    const [header, , signature] = (await signToken(SECRET, 1)).split('.');
    const forged = base64url.encode(JSON.stringify({ sub: '2', exp: now() + 60 }));
    await expectRefused(`${header}.${forged}.${signature}`, 'TOKEN_INVALID', /signature/);
  });
});
