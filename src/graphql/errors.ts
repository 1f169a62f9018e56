/**
 * Every error a client can be shown is made here, with its `extensions.code` (docs/contract.md,
 * "Errors") and, for request-level errors, its HTTP status. The services throw domain errors
 * (src/domain/errors.ts) and know nothing of GraphQL; `createErrorMasker` is the one place that maps
 * them, and the internal failures clients must understand (PostgreSQL down), to GraphQL errors.
 * Anything else thrown during execution is masked by yoga and logged.
 */
import type { GraphQLError } from 'graphql';
import { createGraphQLError, maskError, type YogaServerOptions } from 'graphql-yoga';
import { DatabaseUnavailableError } from '../db/errors.js';
import { ConflictError, DomainError, InvalidInputError, NotFoundError } from '../domain/errors.js';

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

/** The client-facing error for a failure the client must understand, or undefined for a bug. */
function clientErrorFor(error: unknown): GraphQLError | undefined {
  if (error instanceof DatabaseUnavailableError) return serviceUnavailable();
  if (!(error instanceof DomainError)) return undefined;
  if (error instanceof InvalidInputError) return badUserInput(error.message, error.field);
  if (error instanceof NotFoundError) return notFound(error.message);
  if (error instanceof ConflictError) return conflict(error.message, error.details);
  return undefined;
}

/**
 * Domain errors and a PostgreSQL outage are not bugs: the client gets their code (and may retry a
 * SERVICE_UNAVAILABLE), at the field that failed. Everything else unexpected stays masked
 * ("Unexpected error.") and is reported through `onUnexpected`.
 */
export function createErrorMasker(onUnexpected: (error: unknown) => void): NonNullable<MaskErrorFn> {
  return (error, message, isDev) => {
    const original = (error as { originalError?: unknown }).originalError ?? error;
    const known = clientErrorFor(original);
    if (known !== undefined) {
      // Where it happened (path, locations) comes from the error graphql-js located at the field.
      const located = error as Partial<GraphQLError>;
      return createGraphQLError(known.message, {
        extensions: known.extensions,
        ...(located.nodes && { nodes: located.nodes }),
        ...(located.source && { source: located.source }),
        ...(located.positions && { positions: located.positions }),
        ...(located.path && { path: located.path }),
      });
    }
    const result = maskError(error, message, isDev);
    if (result !== error) onUnexpected(original);
    return result;
  };
}
