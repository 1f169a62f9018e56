/**
 * What the benchmark asks: the operations, the parameters each request uses, and the order in which
 * requests walk through them. Everything is drawn from fixed-seed PRNGs, so every run, every variant
 * and every round sends the same requests in the same order.
 *
 * The read workloads select no field the write mix changes (a profile's `bio`, `version` and
 * `updatedAt`), so one expected body per distinct request stays right for the whole run, whatever
 * the mix wrote before.
 */
import { mulberry32 as prng } from '../src/db/prng.js';

/** Users seeded for the benchmark (ids 1..USERS), each with POSTS_PER_USER posts. */
export const USERS = 10_000;
export const POSTS_PER_USER = 5;
/** Zipf exponent of `user(id)`: YCSB's 0.99, a few hot users and a long tail. */
export const ZIPF_S = 0.99;

export type WorkloadName = 'users20' | 'userPage' | 'zipf';
export const WORKLOADS: readonly WorkloadName[] = ['users20', 'userPage', 'zipf'];

export const WORKLOAD_TITLES: Record<WorkloadName | 'mix', string> = {
  users20: 'users(ids: 20)',
  userPage: 'userPage nested',
  zipf: 'user(id) Zipf',
  mix: '95/5 read/write',
};

export const QUERIES: Record<WorkloadName, string> = {
  users20: `query Users($ids: [ID!]!) {
  users(ids: $ids) { id name createdAt profile { displayName location avatarUrl } posts(first: 3) { id title createdAt } }
}`,
  userPage: `query Page($after: ID) {
  userPage(first: 20, after: $after) {
    nodes { id name profile { displayName location } posts(first: 3) { id title author { id name } } }
    nextCursor
  }
}`,
  zipf: `query User($id: ID!) {
  user(id: $id) { id name createdAt profile { displayName location } posts(first: 3) { id title createdAt } }
}`,
};

/** The mix reads the fields its writes change, so a stale answer can be seen. */
export const MIX_READ_QUERY = `query User($id: ID!) {
  user(id: $id) { id name profile { displayName bio version } }
}`;
export const MIX_WRITE_QUERY = `mutation Bio($bio: String!) {
  updateProfile(input: { bio: $bio }) { userId version bio }
}`;
/** One request in WRITE_EVERY is a write: 5 %. */
export const WRITE_EVERY = 20;

export interface Workload {
  readonly name: WorkloadName;
  /** JSON request bodies of the distinct requests. */
  readonly bodies: readonly string[];
  /** The order in which requests use them: indexes into `bodies`; walked round-robin by all connections. */
  readonly sequence: readonly number[];
}

export interface MixPlan {
  /** Read bodies by user id (MIX_READ_QUERY). */
  readonly readBody: (userId: number) => string;
  /** User ids in the order requests use them; every WRITE_EVERY-th is a write by that user. */
  readonly sequence: readonly number[];
  /** Users that write: each needs a token. */
  readonly writers: readonly number[];
}

export function buildWorkloads(): Record<WorkloadName, Workload> {
  // users(ids: 20): 500 distinct requests of 20 distinct uniformly drawn ids each, walked in order.
  const random = prng(0x5eed_0020);
  const users20Bodies: string[] = [];
  for (let r = 0; r < 500; r += 1) {
    const ids = new Set<number>();
    while (ids.size < 20) ids.add(1 + Math.floor(random() * USERS));
    users20Bodies.push(body(QUERIES.users20, { ids: [...ids].map(String) }));
  }

  // userPage: every page of 20 (after 0, 20, …, 9980), walked in a shuffled order.
  const pageBodies: string[] = [];
  for (let after = 0; after < USERS; after += 20) {
    pageBodies.push(body(QUERIES.userPage, after === 0 ? {} : { after: String(after) }));
  }

  // user(id): 30 000 Zipf draws; the distinct ids among them are the distinct requests.
  const draws = zipfDraws(30_000, 0x5eed_21bf);
  const zipfIds = [...new Set(draws)];
  const indexOfId = new Map(zipfIds.map((id, i) => [id, i]));

  return {
    users20: { name: 'users20', bodies: users20Bodies, sequence: users20Bodies.map((_, i) => i) },
    userPage: {
      name: 'userPage',
      bodies: pageBodies,
      sequence: shuffle(
        pageBodies.map((_, i) => i),
        0x5eed_9a9e,
      ),
    },
    zipf: {
      name: 'zipf',
      bodies: zipfIds.map((id) => body(QUERIES.zipf, { id: String(id) })),
      sequence: draws.map((id) => indexOfId.get(id)!),
    },
  };
}

export function buildMixPlan(): MixPlan {
  const sequence = zipfDraws(30_000, 0x5eed_313c);
  const writers = [...new Set(sequence.filter((_, i) => i % WRITE_EVERY === 0))];
  return { readBody: (id) => body(MIX_READ_QUERY, { id: String(id) }), sequence, writers };
}

export function writeBody(bio: string): string {
  return body(MIX_WRITE_QUERY, { bio });
}

export function body(query: string, variables: Record<string, unknown>): string {
  return JSON.stringify({ query, variables });
}

// Private:

/**
 * `count` draws of user ids from a Zipf(ZIPF_S) distribution over USERS ranks. Ranks map to ids
 * through a fixed permutation, so the hot users are scattered over the id space (and over pages),
 * not ids 1, 2, 3.
 */
function zipfDraws(count: number, seed: number): number[] {
  const cdf = new Float64Array(USERS);
  let sum = 0;
  for (let rank = 1; rank <= USERS; rank += 1) {
    sum += 1 / rank ** ZIPF_S;
    cdf[rank - 1] = sum;
  }
  const idOfRank = shuffle(
    Array.from({ length: USERS }, (_, i) => i + 1),
    0x5eed_1d5,
  );
  const random = prng(seed);
  const draws: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const u = random() * sum;
    let lo = 0;
    let hi = USERS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    draws.push(idOfRank[lo]!);
  }
  return draws;
}

function shuffle<T>(items: T[], seed: number): T[] {
  const random = prng(seed);
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
