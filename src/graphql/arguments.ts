/**
 * Argument rules of docs/contract.md ("Schema rules") that the SDL cannot express. Ids follow the
 * id rule of src/domain/ids.ts; the bounds below are the API's own.
 */
import { MAX_ID, parseId } from '../domain/ids.js';
import { preview } from '../domain/errors.js';
import { badUserInput } from './errors.js';

export const MAX_IDS = 100;
export const MAX_PAGE_SIZE = 100;
export const MAX_POSTS_FIRST = 50;

export function parseIdArgument(value: string, argument: string): number {
  const id = parseId(value);
  if (id === undefined) {
    throw badUserInput(
      `${argument} must be a decimal id from 1 to ${MAX_ID} without leading zeros, got ${preview(value)}`,
      argument,
    );
  }
  return id;
}

export function parseIdsArgument(values: readonly string[], argument: string): number[] {
  if (values.length < 1 || values.length > MAX_IDS) {
    throw badUserInput(`${argument} must hold 1 to ${MAX_IDS} ids, got ${values.length}`, argument);
  }
  return values.map((value, i) => parseIdArgument(value, `${argument}[${i}]`));
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
