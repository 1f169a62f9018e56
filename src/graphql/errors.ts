/**
 * Every error a client can be shown is made here, with its `extensions.code` (DESIGN §3) and, for
 * request-level errors, its HTTP status. Anything else thrown during execution is masked by yoga and
 * logged; `maskUnexpectedError` first translates the internal failures that clients must understand.
 */
import { createGraphQLError, maskError, type YogaServerOptions } from 'graphql-yoga';
import { DatabaseUnavailableError } from '../db/errors.js';

export type ErrorCode =
  'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'NOT_FOUND' | 'CONFLICT' | 'SERVICE_UNAVAILABLE';

export function badUserInput(message: string, field?: string) {
  return createGraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', ...(field ? { field } : {}) } });
}

export function unauthenticated(message: string) {
  return createGraphQLError(message, {
    extensions: {
      code: 'UNAUTHENTICATED',
      http: { status: 401, headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } },
    },
  });
}

/** A field that needs a signed-in caller, asked anonymously: a field error (HTTP 200), not a bad token. */
export function authenticationRequired(message: string) {
  return createGraphQLError(message, { extensions: { code: 'UNAUTHENTICATED' } });
}

export function notFound(message: string) {
  return createGraphQLError(message, { extensions: { code: 'NOT_FOUND' } });
}

export function conflict(message: string, extra: Record<string, unknown> = {}) {
  return createGraphQLError(message, { extensions: { code: 'CONFLICT', ...extra } });
}

/**
 * As a field error it is HTTP 200 like any other; raised before execution (nothing could be answered)
 * it carries `httpStatus` 503 and a Retry-After.
 */
export function serviceUnavailable(
  message = 'the database is unavailable; try again shortly',
  { httpStatus }: { httpStatus?: 503 } = {},
) {
  return createGraphQLError(message, {
    extensions: {
      code: 'SERVICE_UNAVAILABLE',
      ...(httpStatus ? { http: { status: httpStatus, headers: { 'Retry-After': '1' } } } : {}),
    },
  });
}

type MaskErrorFn = NonNullable<
  Exclude<YogaServerOptions<object, object>['maskedErrors'], boolean>
>['maskError'];

/**
 * A PostgreSQL outage is not a bug: the client gets SERVICE_UNAVAILABLE and may retry. Everything
 * else unexpected stays masked ("Unexpected error.") and is reported through `onUnexpected`.
 */
export function createErrorMasker(onUnexpected: (error: unknown) => void): NonNullable<MaskErrorFn> {
  return (error, message, isDev) => {
    const original = (error as { originalError?: unknown }).originalError ?? error;
    if (original instanceof DatabaseUnavailableError) {
      const masked = serviceUnavailable();
      return createGraphQLError(masked.message, {
        extensions: masked.extensions,
        path: (error as { path?: readonly (string | number)[] }).path,
      });
    }
    const result = maskError(error, message, isDev);
    if (result !== error) onUnexpected(original);
    return result;
  };
}
