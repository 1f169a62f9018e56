/**
 * Validation of mutation inputs (docs/contract.md, "Schema rules"); a refusal is an
 * InvalidInputError naming the field, which the GraphQL layer reports as BAD_USER_INPUT. Lengths are
 * counted in Unicode code points, as a user counts characters, not in UTF-16 units. A string is refused if PostgreSQL could not store it
 * faithfully (U+0000) or if it is not well-formed UTF-16 (a lone surrogate would be silently
 * replaced on the way to the database, so what was stored would differ from what was sent).
 */
import { InvalidInputError, preview } from '../domain/errors.js';
import type { ProfilePatch } from '../db/repositories.js';

export interface UpdateProfileInput {
  displayName?: string | null;
  bio?: string | null;
  location?: string | null;
  avatarUrl?: string | null;
  expectedVersion?: number | null;
}

export interface CreatePostInput {
  title: string;
  body: string;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const MAX_AVATAR_URL_LENGTH = 2048;

export function checkText(value: string, field: string, min: number, max: number): string {
  if (value.includes('\u0000')) throw new InvalidInputError(`${field} must not contain U+0000`, field);
  if (LONE_SURROGATE.test(value))
    throw new InvalidInputError(`${field} must be well-formed Unicode (lone surrogate)`, field);
  const length = codePoints(value);
  if (length < min || length > max) {
    throw new InvalidInputError(`${field} must be ${min} to ${max} characters, got ${length}`, field);
  }
  return value;
}

export function codePoints(value: string): number {
  let n = 0;
  for (const _ of value) n += 1;
  return n;
}

// The URL parser silently strips leading/trailing spaces and control characters and drops tabs and
// newlines anywhere; a value that needs such repairs is not the URL it claims to be, and storing it
// as sent would hand clients a broken link.
const URL_UNSAFE = /[\u0000-\u0020\u007f]/;

function checkAvatarUrl(value: string): string {
  checkText(value, 'avatarUrl', 1, MAX_AVATAR_URL_LENGTH);
  if (URL_UNSAFE.test(value)) {
    throw new InvalidInputError(
      `avatarUrl must not contain spaces or control characters, got ${preview(value)}`,
      'avatarUrl',
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidInputError(
      `avatarUrl must be an absolute http(s) URL, got ${preview(value)}`,
      'avatarUrl',
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidInputError(
      `avatarUrl must use http or https, got ${preview(url.protocol)}`,
      'avatarUrl',
    );
  }
  if (value.length > MAX_AVATAR_URL_LENGTH) {
    throw new InvalidInputError(`avatarUrl must be at most ${MAX_AVATAR_URL_LENGTH} characters`, 'avatarUrl');
  }
  return value;
}

/** Turns an UpdateProfileInput into a patch, or throws BAD_USER_INPUT naming the first bad field. */
export function toProfilePatch(input: UpdateProfileInput): { patch: ProfilePatch; expectedVersion?: number } {
  const patch: ProfilePatch = {};
  if (input.displayName !== undefined) {
    if (input.displayName === null) throw new InvalidInputError('displayName cannot be null', 'displayName');
    patch.displayName = checkText(input.displayName, 'displayName', 1, 80);
  }
  if (input.bio !== undefined) {
    if (input.bio === null) throw new InvalidInputError('bio cannot be null (send "" to clear it)', 'bio');
    patch.bio = checkText(input.bio, 'bio', 0, 1000);
  }
  if (input.location !== undefined) {
    patch.location = input.location === null ? null : checkText(input.location, 'location', 0, 120);
  }
  if (input.avatarUrl !== undefined) {
    patch.avatarUrl = input.avatarUrl === null ? null : checkAvatarUrl(input.avatarUrl);
  }
  if (Object.keys(patch).length === 0) {
    throw new InvalidInputError('updateProfile needs at least one of displayName, bio, location, avatarUrl');
  }
  if (input.expectedVersion === undefined || input.expectedVersion === null) return { patch };
  if (!Number.isInteger(input.expectedVersion) || input.expectedVersion < 1) {
    throw new InvalidInputError(
      `expectedVersion must be a positive integer, got ${String(input.expectedVersion)}`,
      'expectedVersion',
    );
  }
  return { patch, expectedVersion: input.expectedVersion };
}

export function checkNewPost(input: CreatePostInput): CreatePostInput {
  return {
    title: checkText(input.title, 'title', 1, 200),
    body: checkText(input.body, 'body', 1, 20_000),
  };
}
