import type { MutationResolvers } from '../generated/resolvers-types.js';
import { authenticationRequired } from '../errors.js';
import type { GraphQLContext } from '../context.js';

function callerOf({ viewer }: GraphQLContext): number {
  if (viewer === null) throw authenticationRequired('this mutation needs a bearer token');
  return viewer.userId;
}

export const Mutation: MutationResolvers = {
  updateProfile: (_, { input }, ctx) => ctx.services.updateProfile(callerOf(ctx), input, ctx),
  createPost: (_, { input }, ctx) => ctx.services.createPost(callerOf(ctx), input, ctx),
};
