import type { PostRow } from '../../db/schema.js';
import { MAX_POSTS_FIRST, parseRange } from '../arguments.js';
import type { PostResolvers, ProfileResolvers, UserResolvers } from '../generated/resolvers-types.js';

export const User: UserResolvers = {
  // The user entity is cached whole, email included; the field is authorized per request, so a
  // cached copy can never show one user's email to another.
  email: (user, _, { viewer }) => (viewer !== null && viewer.userId === user.id ? user.email : null),

  async profile(user, _, { loaders }) {
    const profile = await loaders.profile.load(user.id);
    if (profile === null) throw new Error(`user ${user.id} has no profile row`);
    return profile;
  },

  async posts(user, { first }, { loaders }) {
    const size = parseRange(first, 'first', 1, MAX_POSTS_FIRST);
    const ids = (await loaders.postIdsByAuthor.load(user.id)) ?? [];
    const posts = await Promise.all(ids.slice(0, size).map((id) => loaders.post.load(id)));
    return posts.filter((p): p is PostRow => p !== null);
  },
};

export const Post: PostResolvers = {
  async author(post, _, { loaders }) {
    const author = await loaders.user.load(post.authorId);
    if (author === null) throw new Error(`post ${post.id} names missing author ${post.authorId}`);
    return author;
  },
};

export const Profile: ProfileResolvers = {
  userId: (profile) => profile.userId,
};
