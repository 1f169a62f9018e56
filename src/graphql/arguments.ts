/**
 * Argument rules of DESIGN §3 that the SDL cannot express. An id is accepted only in its canonical
 * decimal form, so `"7"`, `"007"` and `"7.0"` can never name three cache keys for one user.
 */
import { badUserInput } from './errors.js';

const CANONICAL_ID = /^[1-9][0-9]{0,9}$/;
export const MAX_ID = 2147483647;
export const MAX_IDS = 100;
export const MAX_PAGE_SIZE = 100;
export const MAX_POSTS_FIRST = 50;

export function parseId(value: string, argument: string): number {
  if (typeof value !== 'string' || !CANONICAL_ID.test(value) || Number(value) > MAX_ID) {
    throw badUserInput(
      `${argument} must be a decimal id from 1 to ${MAX_ID} without leading zeros, got ${preview(value)}`,
      argument,
    );
  }
  return Number(value);
}

export function parseIds(values: readonly string[], argument: string): number[] {
  if (values.length < 1 || values.length > MAX_IDS) {
    throw badUserInput(`${argument} must hold 1 to ${MAX_IDS} ids, got ${values.length}`, argument);
  }
  return values.map((value, i) => parseId(value, `${argument}[${i}]`));
}

export function parseRange(value: number, argument: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw badUserInput(
      `${argument} must be an integer from ${min} to ${max}, got ${String(value)}`,
      argument,
    );
  }
  return value;
}

/** Shows a bad value without echoing a megabyte of it back. */
export function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}…"` : text;
}
