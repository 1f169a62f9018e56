/**
 * The id rule (docs/contract.md, "Ids"), in one place. Users, profiles and posts are numbered by
 * PostgreSQL `integer` columns, so an id is an integer in 1..2147483647; written as text (a GraphQL
 * `ID`, a token's `sub`, a command-line argument) it must be in canonical decimal form, so that
 * `"7"`, `"007"` and `"7.0"` can never name three cache keys, three tokens or three rows for one user.
 */

/** The largest value of a PostgreSQL `integer`, and so the largest id. */
export const MAX_ID = 2_147_483_647;

/** The rule in words, for error messages: "… must be <ID_RULE>, got …". */
export const ID_RULE = `the canonical decimal form of 1..${MAX_ID}`;

const CANONICAL_ID = /^[1-9][0-9]{0,9}$/;

/** True for an integer in 1..MAX_ID. */
export function isId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1 && value <= MAX_ID;
}

/**
 * The id `text` names in canonical decimal form, or `undefined`: `"007"`, `"0"`, `"-1"`, `"1.5"`,
 * `" 1"` and `"2147483648"` are not ids.
 */
export function parseId(text: string): number | undefined {
  if (typeof text !== 'string' || !CANONICAL_ID.test(text)) return undefined;
  const id = Number(text);
  return id <= MAX_ID ? id : undefined;
}
