import type { UserRow } from '../../db/schema.js';
import { MAX_PAGE_SIZE, parseIdArgument, parseIdsArgument, parseRange } from '../arguments.js';
import type { QueryResolvers } from '../generated/resolvers-types.js';

export const Query: QueryResolvers = {
  user: (_, { id }, { loaders }) => loaders.user.load(parseIdArgument(id, 'id')),

  users: (_, { ids }, { loaders }) =>
    Promise.all(parseIdsArgument(ids, 'ids').map((id) => loaders.user.load(id))),

  async userPage(_, { first, after }, { loaders }) {
    const size = parseRange(first, 'first', 1, MAX_PAGE_SIZE);
    const cursor = after === null || after === undefined ? 0 : parseIdArgument(after, 'after');
    const page = await loaders.userPageIds.load({ first: size, after: cursor });
    const users = await Promise.all(page.ids.map((id) => loaders.user.load(id)));
    // A user deleted between the page query and the load is skipped rather than failing the page.
    const nodes = users.filter((u): u is UserRow => u !== null);
    const last = page.ids.at(-1);
    return { nodes, nextCursor: page.hasMore && last !== undefined ? String(last) : null };
  },

  me: (_, __, { viewer, loaders }) => (viewer === null ? null : loaders.user.load(viewer.userId)),

  post: (_, { id }, { loaders }) => loaders.post.load(parseIdArgument(id, 'id')),
};
