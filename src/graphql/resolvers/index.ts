import type { Resolvers } from '../generated/resolvers-types.js';
import { Post, Profile, User } from './entities.js';
import { Mutation } from './mutation.js';
import { Query } from './query.js';
import { DateTime } from './scalars.js';

export const resolvers: Resolvers = { DateTime, Query, Mutation, User, Post, Profile };
