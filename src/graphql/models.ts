/** Parent types of the GraphQL objects that are not plain rows (see codegen.ts `mappers`). */
import type { UserRow } from '../db/schema.js';

export interface UserPageModel {
  readonly nodes: UserRow[];
  readonly nextCursor: string | null;
}
