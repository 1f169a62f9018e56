/**
 * The failures a mutation reports in the service's own terms. Services throw these; the GraphQL
 * layer (src/graphql/errors.ts) is the one place that turns them into GraphQL errors with an
 * `extensions.code`, so the services never depend on GraphQL and the mapping is written once.
 */

/**
 * The base of every typed error of cacheside (these, the cache store's, the codec's): a stable
 * `code` that logs, metrics and callers group by, the class name as `name`, and the `cause` kept.
 */
export abstract class CodedError<Code extends string = string> extends Error {
  abstract readonly code: Code;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export type DomainErrorCode = 'INVALID_INPUT' | 'NOT_FOUND' | 'CONFLICT';

export abstract class DomainError extends CodedError<DomainErrorCode> {}

/** The caller sent a value the rules refuse; `field` names the input field when there is one. */
export class InvalidInputError extends DomainError {
  readonly code = 'INVALID_INPUT';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** What the caller asked to change does not exist. */
export class NotFoundError extends DomainError {
  readonly code = 'NOT_FOUND';
}

/** The change was refused because the row moved on (optimistic concurrency); `details` says how. */
export class ConflictError extends DomainError {
  readonly code = 'CONFLICT';
  constructor(
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** Shows a bad value in an error message without echoing a megabyte of it back. */
export function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}…"` : text;
}
