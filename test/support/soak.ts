/**
 * The soak (docs/consistency.md, "Soak"): two instances on one database and one private Redis, a
 * mixed load — 95 % reads over a hot set, 5 % API writes (updateProfile, and createPost one time in
 * five), a plain-SQL writer behind the API's back, users inserted and deleted by plain SQL above the
 * hot set — and a Redis fault every `faultEvery` operations, in turn: CLIENT PAUSE, FLUSHALL, a
 * restart with nothing on disk, memory full under noeviction. Optionally with the L1 tier on.
 *
 * What it checks, on every read — of a user, or (one in four) of a page of three users, each
 * checked alike, the page's ids too: read-your-writes against acknowledged API writes — a read that
 * starts after a write returned (without a pending-propagation notice) must see that version or a
 * newer one, on either instance; with L1 on, on the writer's instance, and on the other one once
 * `CACHE_L1_TTL_MS` has passed since the write returned (L1's documented window: a read inside it
 * that saw the version before is counted, not failed). A page of the churned users is one of the
 * pages the users table has had (which one, and how late, is measured). At the end: both instances'
 * consistency monitors found nothing, and after the faults stop the cache converges (every hot key
 * and the churned users' page, on both instances, as PostgreSQL has them). It also measures how long
 * after a plain-SQL write a read could still see the version before it (the relay's bound), and
 * after a user insert or delete a page could still be the one before it.
 *
 * Bounded by operations, never by time, so that a slow machine runs it slowly but the same.
 * `npm run soak` runs the long one (test/soak/run.ts); test/resilience/soak.test.ts a short one.
 */
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { rowsOf } from '../../src/db/client.js';
import { mulberry32 } from '../../src/db/prng.js';
import { L1_TIER } from '../../src/cache/read/l1-tier.js';
import { createTestApp, type TestApp } from './app.js';
import { DEBUG, debugIn } from './debug.js';
import { lastOutboxId, watchRelay, type Applied } from './soak-relay-watch.js';
import { startPrivateRedis, type PrivateRedis } from './redis.js';
import { until } from './until.js';

export interface SoakOptions {
  /** Operations in all (reads and API writes; plain-SQL writes come on top). */
  readonly operations: number;
  /** A Redis fault every this many operations. */
  readonly faultEvery: number;
  /** Concurrent clients. @default 12 */
  readonly concurrency?: number;
  /** Hot profiles the reads and writes go to. @default 20 */
  readonly hot?: number;
  /** Share of operations that are API writes; the rest are reads. @default 0.05 */
  readonly writeShare?: number;
  /** A write by plain SQL every this many operations. @default 40 */
  readonly sqlWriteEvery?: number;
  /**
   * A user inserted or deleted by plain SQL (no API does either) every this many operations, above
   * the hot set: every one changes the user directory's version, which every page and every stored
   * answer over a page depends on, and the page of the churned users itself. 0: none. @default 60
   */
  readonly userChurnEvery?: number;
  /** Both instances with the L1 tier on (CACHE_L1_MAX_ENTRIES 10 000, CACHE_L1_TTL_MS default). @default false */
  readonly l1?: boolean;
  /** PRNG seed. @default Date.now() */
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

export interface SoakReport {
  readonly seed: number;
  readonly elapsedMs: number;
  readonly operations: number;
  readonly reads: number;
  /** Of the reads, those of a page of users (`userPage`): each user on it is checked as a read is. */
  readonly pageReads: number;
  readonly apiWrites: number;
  readonly posts: number;
  readonly sqlWrites: number;
  /**
   * Plain-SQL changes (profile writes, user inserts and deletes) seen applied by the relay while the
   * soak ran: what the causal checks had to go on.
   */
  readonly sqlApplied: number;
  /** Users inserted or deleted by plain SQL, and the reads of their page. */
  readonly userChurns: number;
  readonly churnPageReads: number;
  /** The longest a page read, begun after a user insert or delete committed, still saw the page before it, ms. */
  readonly churnPageStaleMaxMs: number;
  /** Whether the instances ran with L1 on; its window (CACHE_L1_TTL_MS) when they did. */
  readonly l1TtlMs: number | undefined;
  /**
   * With L1 on: reads on the instance that did not make an acknowledged write which still saw the
   * version before it, inside L1's window (allowed), and the longest such lag after the write
   * returned, ms. A lag beyond the window counts as a stale read.
   */
  readonly l1Lagged: number;
  readonly l1LagMaxMs: number;
  /** With L1 on: reads L1 answered any key of (or whose answer it kept): proof that it was on. */
  readonly l1Served: number;
  readonly faults: Record<FaultName, number>;
  /** Requests that did not answer 200 without errors, by code or status. */
  readonly errors: Record<string, number>;
  /** API writes that returned with `extensions.propagation = "pending"`. */
  readonly pendingWrites: number;
  /** Reads older than an API write acknowledged before they began: must be 0. */
  readonly staleReads: number;
  readonly staleSamples: readonly string[];
  /** Consistency monitor violations, both instances: must be 0. */
  readonly monitorViolations: number;
  /** The longest a read, begun after a plain-SQL write committed, still saw the version before it, ms. */
  readonly sqlStaleMaxMs: number;
  /** After the faults stopped, hot profiles (and the churned users' page) differing from PostgreSQL. */
  readonly unconverged: number;
}

export type FaultName = 'pause' | 'flushall' | 'restart' | 'oom';

/** An API write acknowledged without a pending-propagation notice. */
interface AckedWrite {
  /** The profile version it made (0 for a createPost). */
  readonly version: number;
  /** The post it made and its `createdAt` (0 and -∞ for an updateProfile). */
  readonly post: number;
  readonly postAt: number;
  /** Which instance made it (0: a, 1: b), and when it returned (performance.now()). */
  readonly instance: number;
  readonly ackedAt: number;
}
const FAULTS: readonly FaultName[] = ['pause', 'flushall', 'restart', 'oom'];

/** The churned users' page after one insert or delete (soak.ts, `churnUser`). */
interface ChurnPage {
  readonly ids: readonly number[];
  readonly hasMore: boolean;
  /** When its statement returned (+∞ while it runs), and when the relay applied it. */
  at: number;
  applied: Applied;
  /** The user its statement deleted, if it was a delete. */
  readonly deletedId?: number;
}
/** The page before any churn: in the cache's view since the start. */
const APPLIED_BEFORE_ALL: Applied = { outboxId: 0, appliedAt: Number.NEGATIVE_INFINITY };

const PROFILE = 'query ($id: ID!) { user(id: $id) { profile { version } posts(first: 1) { id createdAt } } }';
const PAGE_SIZE = 3;
/** The same fields over a page of users (a page of ids, then its users' entities): one read in four. */
const PAGE = `query ($after: ID) { userPage(first: ${PAGE_SIZE}, after: $after) { nodes { id profile { version } posts(first: 1) { id createdAt } } } }`;
/** The page right above the hot set's seeded users: the users the churn inserts and deletes. */
const CHURN_PAGE = `query ($after: ID) { userPage(first: ${PAGE_SIZE}, after: $after) { nodes { id } nextCursor } }`;
/** L1's window when the soak turns L1 on: the default, which the checks read from here. */
const L1_TTL_MS = 1000;
/** The first id the churn inserts: far above the seeded users' identity values, which nothing else draws. */
const CHURN_FIRST_ID = 1_000_000;
const UPDATE = 'mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { version } }';
const CREATE = 'mutation ($input: CreatePostInput!) { createPost(input: $input) { id createdAt } }';

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? Date.now() % 1_000_000;
  const random = mulberry32(seed);
  const hot = options.hot ?? 20;
  const concurrency = options.concurrency ?? 12;
  const writeShare = options.writeShare ?? 0.05;
  const sqlWriteEvery = options.sqlWriteEvery ?? 40;
  const userChurnEvery = options.userChurnEvery ?? 60;
  const l1TtlMs = options.l1 ? L1_TTL_MS : undefined;
  const log = options.log ?? (() => {});

  let redis: PrivateRedis = await startPrivateRedis();
  const admin = () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    return client;
  };
  const env = {
    REDIS_URL: redis.url,
    OUTBOX_POLL_INTERVAL_MS: '50',
    ...(l1TtlMs !== undefined && { CACHE_L1_MAX_ENTRIES: '10000', CACHE_L1_TTL_MS: String(l1TtlMs) }),
  };
  const seededUsers = hot * 5;
  const a = await createTestApp({ label: 'soak', seed: { users: seededUsers, postsPerUser: 1 }, env });
  const b = await createTestApp({ label: 'soak', share: a, env });
  const instances = [a, b];
  const tokens = new Map<number, string>();
  for (let id = 1; id <= hot; id += 1) tokens.set(id, await a.token(id));

  /**
   * Per user, every acknowledged write: the profile version or the post it made, when it returned
   * and through which instance. A post is placed by its `createdAt`, not its id: the list is newest
   * first by `created_at`, which is the inserting transaction's start (`now()`), so two concurrent
   * createPosts of one user can take ids in one order and timestamps in the other — the higher id
   * then rightly comes second (one failed soak counted 69 "stale" reads of exactly that: newest post
   * 115, acked 116). With `createdAt` at millisecond precision, a read misses a post only when its
   * newest post is strictly older than the acked one.
   */
  const acked = new Map<number, AckedWrite[]>();
  /**
   * The churned users' page (the first PAGE_SIZE ids above the seeded ones, and whether more follow)
   * after each insert or delete, with when that statement returned and when the relay applied it: a
   * page read must be one of these.
   */
  const churnPages: ChurnPage[] = [
    { ids: [], hasMore: false, at: Number.NEGATIVE_INFINITY, applied: APPLIED_BEFORE_ALL },
  ];
  // In order: the oldest churned user first (the first to be deleted; ids only grow).
  const churned: number[] = [];
  let userChurns = 0;
  let churnPageReads = 0;
  let churnPageStaleMaxMs = 0;
  let l1Lagged = 0;
  let l1LagMaxMs = 0;
  let l1Served = 0;
  /** Per user, the plain-SQL writes to their profile: when each returned, and when the relay applied it. */
  const sqlWrites = new Map<number, { version: number; at: number; applied: Applied }[]>();
  const headers = l1TtlMs === undefined ? undefined : DEBUG;
  let sqlWriteCount = 0;
  let sqlStaleMaxMs = 0;
  const errors: Record<string, number> = {};
  const faults: Record<FaultName, number> = { pause: 0, flushall: 0, restart: 0, oom: 0 };
  const staleSamples: string[] = [];
  let reads = 0;
  let pageReads = 0;
  let apiWrites = 0;
  let posts = 0;
  let pendingWrites = 0;
  let staleReads = 0;
  let done = 0;
  let faultsDue = 0;
  let faulting: Promise<void> = Promise.resolve();

  const fail = (what: string) => (errors[what] = (errors[what] ?? 0) + 1);
  const relay = watchRelay(a.testDb.database.db, (error) =>
    fail(`relay watch: ${error instanceof Error ? error.message.slice(0, 60) : String(error)}`),
  );
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const hotUser = () => 1 + Math.floor(random() * hot);

  type ReadUser = { profile: { version: number }; posts: { id: string; createdAt: string }[] };

  /**
   * A read of one user, or (one in four) of the page of users that starts with them — or, one page
   * read in eight, of the churned users' page. With L1 on, reads carry the debug header: which tier
   * answered each key is what L1's window applies to.
   */
  async function read(t: TestApp, userId: number) {
    const onPage = Array.from({ length: PAGE_SIZE }, (_, i) => userId + i);
    const startedAt = performance.now();
    const at = instances.indexOf(t);
    if (random() < 0.25) {
      if (userChurnEvery > 0 && random() < 1 / 8) return readChurnPage(t, startedAt);
      const response = await t.gql<{ userPage: { nodes: (ReadUser & { id: string })[] } }>(PAGE, {
        // The page that starts with this user: after the id before it (ids are positive: none for 1).
        variables: { after: userId > 1 ? String(userId - 1) : null },
        headers,
      });
      reads += 1;
      pageReads += 1;
      countL1(response);
      const nodes = response.body.data?.userPage.nodes;
      if (response.status !== 200 || response.body.errors || !nodes) {
        return fail(String(response.body.errors?.[0]?.extensions?.code ?? response.status));
      }
      // Users are inserted and deleted only above the hot set: a page here that names other ids is wrong.
      const ids = nodes.map((node) => Number(node.id));
      if (ids.join() !== onPage.join()) return fail('wrong page');
      for (const node of nodes) check(response, Number(node.id), node, at, startedAt);
      return;
    }
    const response = await t.gql<{ user: ReadUser }>(PROFILE, {
      variables: { id: String(userId) },
      headers,
    });
    reads += 1;
    countL1(response);
    const user = response.body.data?.user;
    if (response.status !== 200 || response.body.errors || !user) {
      return fail(String(response.body.errors?.[0]?.extensions?.code ?? response.status));
    }
    check(response, userId, user, at, startedAt);
  }

  /**
   * The churned users' page: one the users table has had since the relay applied the last change it
   * had applied when the read began — less users deleted since that page, which `userPage` skips (its
   * ids and its users are two reads, in PostgreSQL too: resolvers/query.ts). An older page is stale
   * (with L1 on: allowed for an answer kept in process, within L1's window since the relay applied the
   * change it missed). How long after a change returned a page could still be the one before is
   * measured, not failed.
   */
  async function readChurnPage(t: TestApp, startedAt: number) {
    const response = await t.gql<{ userPage: { nodes: { id: string }[]; nextCursor: string | null } }>(
      CHURN_PAGE,
      { variables: { after: String(seededUsers) }, headers },
    );
    reads += 1;
    pageReads += 1;
    churnPageReads += 1;
    countL1(response);
    const page = response.body.data?.userPage;
    if (response.status !== 200 || response.body.errors || !page) {
      return fail(String(response.body.errors?.[0]?.extensions?.code ?? response.status));
    }
    const ids = page.nodes.map((node) => Number(node.id));
    // The latest state it matches (the most charitable reading), with the users deleted after it.
    let seen = -1;
    const deletedSince = new Set<number>();
    for (let j = churnPages.length - 1; j >= 0; j -= 1) {
      const state = churnPages[j]!;
      const cursor = state.hasMore ? String(state.ids.at(-1)) : null;
      if (cursor === page.nextCursor && isPageLess(state.ids, ids, deletedSince)) {
        seen = j;
        break;
      }
      if (state.deletedId !== undefined) deletedSince.add(state.deletedId);
    }
    if (seen < 0) return fail('wrong churned page');
    const next = churnPages[seen + 1];
    if (next !== undefined && next.at < startedAt) {
      churnPageStaleMaxMs = Math.max(churnPageStaleMaxMs, startedAt - next.at);
    }
    // The first change after that page the relay had applied before the read began, if any.
    const missed = churnPages
      .slice(seen + 1)
      .find((state) => state.applied.appliedAt !== undefined && state.applied.appliedAt < startedAt);
    if (missed === undefined) return;
    const sinceMs = startedAt - missed.applied.appliedAt!;
    if (l1TtlMs !== undefined && l1Answered(response) && sinceMs < l1TtlMs) return;
    stale(
      `churned page [${ids.join()}] next ${page.nextCursor}, the table's [${missed.ids.join()}] applied ${Math.round(sinceMs)} ms before`,
      response,
    );
  }

  /**
   * One user as a read on instance `at` saw it, against the writes acknowledged before the read
   * began — any missed one is a stale read; with L1 on, one made through the other instance is
   * allowed for a key L1 answered, until L1's window has passed since the write returned — and
   * against the plain-SQL writes the relay had applied before it began (the same L1 allowance, from
   * when the relay applied it).
   */
  function check(
    response: Awaited<ReturnType<TestApp['gql']>>,
    userId: number,
    user: ReadUser,
    at: number,
    startedAt: number,
  ) {
    const newestPost = Number(user.posts[0]?.id ?? 0);
    const newestAt = user.posts[0] ? Date.parse(user.posts[0].createdAt) : Number.NEGATIVE_INFINITY;
    const seen = `user ${userId} on instance ${at}: profile v${user.profile.version}, newest post ${newestPost} at ${user.posts[0]?.createdAt ?? '-'}`;
    const profileKey = `:profile:{${userId}}`;
    let lagMs = 0;
    for (const w of acked.get(userId) ?? []) {
      if (w.ackedAt >= startedAt || (user.profile.version >= w.version && newestAt >= w.postAt)) continue;
      const sinceMs = startedAt - w.ackedAt;
      const key = w.post > 0 ? `:user:{${userId}}:posts` : profileKey;
      if (w.instance !== at && l1TtlMs !== undefined && sinceMs < l1TtlMs && l1Answered(response, key)) {
        lagMs = Math.max(lagMs, sinceMs);
        continue;
      }
      const what = w.post > 0 ? `post ${w.post} at ${new Date(w.postAt).toISOString()}` : `v${w.version}`;
      return stale(
        `${seen}; missed ${what} acked through instance ${w.instance} ${Math.round(sinceMs)} ms before`,
        response,
      );
    }
    for (const w of sqlWrites.get(userId) ?? []) {
      if (w.version <= user.profile.version) continue;
      if (w.at < startedAt) sqlStaleMaxMs = Math.max(sqlStaleMaxMs, startedAt - w.at);
      const { appliedAt } = w.applied;
      if (appliedAt === undefined || appliedAt >= startedAt) continue;
      const sinceMs = startedAt - appliedAt;
      if (l1TtlMs !== undefined && sinceMs < l1TtlMs && l1Answered(response, profileKey)) {
        lagMs = Math.max(lagMs, sinceMs);
        continue;
      }
      return stale(
        `${seen}; missed v${w.version} by plain SQL, applied ${Math.round(sinceMs)} ms before`,
        response,
      );
    }
    if (lagMs > 0) {
      l1Lagged += 1;
      l1LagMaxMs = Math.max(l1LagMaxMs, lagMs);
    }
  }

  /** A stale read, with which tier answered it and from what: the first thing to know about one. */
  function stale(what: string, response: Awaited<ReturnType<TestApp['gql']>>) {
    staleReads += 1;
    if (staleSamples.length < 10) {
      staleSamples.push(
        `${what}; ${response.headers.get('cache-status') ?? ''} etag ${response.headers.get('etag') ?? '-'}`,
      );
    }
  }

  function countL1(response: Awaited<ReturnType<TestApp['gql']>>) {
    const debug = debugIn(response);
    const kept = debug?.response?.outcome === 'hit' && debug.response.checked === 'l1';
    if (kept || debug?.lookups.some((lookup) => lookup.tier === L1_TIER)) l1Served += 1;
  }

  /**
   * With L1 on: whether L1 answered — an answer kept in process (checked on L1's word), or every
   * lookup of `keySuffix` (from the debug extension). Counts the reads L1 answered anything of.
   */
  function l1Answered(response: Awaited<ReturnType<TestApp['gql']>>, keySuffix?: string): boolean {
    const debug = debugIn(response);
    if (debug === undefined) return false;
    if (debug.response?.outcome === 'hit') return debug.response.checked === 'l1';
    if (keySuffix === undefined) return false;
    const lookups = debug.lookups.filter((lookup) => lookup.key.endsWith(keySuffix));
    return lookups.length > 0 && lookups.every((lookup) => lookup.tier === L1_TIER);
  }

  async function write(t: TestApp, userId: number) {
    const post = random() < 0.2;
    const response = await t.gql<{
      updateProfile?: { version: number };
      createPost?: { id: string; createdAt: string };
    }>(post ? CREATE : UPDATE, {
      variables: { input: post ? { title: `soak ${done}`, body: 'soak' } : { bio: `soak ${done}` } },
      token: tokens.get(userId)!,
    });
    apiWrites += 1;
    if (post) posts += 1;
    if (response.status !== 200 || response.body.errors) {
      return fail(String(response.body.errors?.[0]?.extensions?.code ?? response.status));
    }
    if ((response.body as { extensions?: { propagation?: string } }).extensions?.propagation === 'pending') {
      // Committed, but not yet on every instance: the one documented exception to read-your-writes.
      pendingWrites += 1;
      return;
    }
    const created = response.body.data?.createPost;
    const writes = acked.get(userId) ?? [];
    acked.set(userId, writes);
    writes.push({
      version: response.body.data?.updateProfile?.version ?? 0,
      post: created ? Number(created.id) : 0,
      postAt: created ? Date.parse(created.createdAt) : Number.NEGATIVE_INFINITY,
      instance: instances.indexOf(t),
      ackedAt: performance.now(),
    });
  }

  /**
   * Inserts a user above the hot set, or deletes the oldest churned one once there are more than a
   * page's. The page it makes is listed before the statement runs (as not yet returned): a read may
   * see it committed before the statement's reply reaches us. Ids are chosen here, far above the
   * identity's, so that the next page is known in advance. One at a time (`churning`): two in flight
   * could commit in the other order than listed.
   */
  async function churnUser() {
    const { db } = a.testDb.database;
    const inserting = churned.length <= PAGE_SIZE;
    const id = inserting ? CHURN_FIRST_ID + userChurns : churned[0]!;
    const after = inserting ? [...churned, id] : churned.slice(1);
    const page: ChurnPage = {
      ids: after.slice(0, PAGE_SIZE),
      hasMore: after.length > PAGE_SIZE,
      at: Number.POSITIVE_INFINITY,
      applied: { outboxId: Number.POSITIVE_INFINITY, appliedAt: undefined },
      ...(!inserting && { deletedId: id }),
    };
    churnPages.push(page);
    churned.splice(0, churned.length, ...after);
    userChurns += 1;
    const outboxId = await db.transaction(async (tx) => {
      await tx.execute(
        inserting
          ? sql`insert into users (id, name, email) values (${id}, ${`churn ${id}`}, ${`churn-${id}@example.test`})`
          : sql`delete from users where id = ${id}`,
      );
      return lastOutboxId(tx);
    });
    page.at = performance.now();
    page.applied = relay.track(outboxId);
  }
  let churning: Promise<void> = Promise.resolve();

  async function sqlWrite() {
    const userId = hotUser();
    const { version, outboxId } = await a.testDb.database.db.transaction(async (tx) => {
      const result = await tx.execute(
        sql`update profiles set bio = ${`sql ${done}`} where user_id = ${userId} returning version`,
      );
      return {
        version: Number(rowsOf<{ version: number }>(result)[0]!.version),
        outboxId: await lastOutboxId(tx),
      };
    });
    const writes = sqlWrites.get(userId) ?? [];
    sqlWrites.set(userId, writes);
    writes.push({ version, at: performance.now(), applied: relay.track(outboxId) });
    sqlWriteCount += 1;
  }

  async function fault(name: FaultName) {
    faults[name] += 1;
    log(`fault ${name} at operation ${done}`);
    const client = admin();
    try {
      if (name === 'pause') await client.call('CLIENT', 'PAUSE', '300', 'ALL');
      if (name === 'flushall') await client.flushall();
      if (name === 'restart') {
        await redis.stop();
        redis = await startPrivateRedis({ port: redis.port });
      }
      if (name === 'oom') {
        const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]);
        await client.config('SET', 'maxmemory-policy', 'noeviction');
        await client.config('SET', 'maxmemory', String(Math.max(1, Math.floor(used / 2))));
        // Memory stays full for a while of traffic, then is given back.
        await until(
          'traffic under a full Redis',
          () => done >= Math.min(options.operations, faultStartedAt + options.faultEvery / 4),
        );
        await client.config('SET', 'maxmemory', '0');
      }
    } finally {
      client.disconnect();
    }
  }
  let faultStartedAt = 0;

  /**
   * Hot profiles and the churned users' page, on both instances, that differ from PostgreSQL now. With
   * L1 on, an instance that missed an event may hold an entry for up to L1's window: the check is
   * repeated until it comes out clean or that window has surely passed (`until`'s bound), and the
   * last count is the result.
   */
  async function countUnconverged(): Promise<number> {
    const { db } = a.testDb.database;
    const count = async () => {
      let differing = 0;
      for (let userId = 1; userId <= hot; userId += 1) {
        const result = await db.execute(sql`select version from profiles where user_id = ${userId}`);
        const version = Number(rowsOf<{ version: number }>(result)[0]!.version);
        for (const t of instances) {
          const response = await t.gql<{ user: { profile: { version: number } } }>(PROFILE, {
            variables: { id: String(userId) },
          });
          if (response.body.data?.user.profile.version !== version) differing += 1;
        }
      }
      const page = await db.execute(
        sql`select id from users where id > ${seededUsers} order by id limit ${PAGE_SIZE}`,
      );
      const ids = rowsOf<{ id: number }>(page)
        .map((row) => String(row.id))
        .join();
      for (const t of instances) {
        const response = await t.gql<{ userPage: { nodes: { id: string }[] } }>(CHURN_PAGE, {
          variables: { after: String(seededUsers) },
        });
        if (response.body.data?.userPage.nodes.map((node) => node.id).join() !== ids) differing += 1;
      }
      return differing;
    };
    let differing = await count();
    if (differing === 0 || l1TtlMs === undefined) return differing;
    // Bounded by L1's window, with room for the counting itself: past it, no L1 entry or kept answer
    // from before the check is left, and what still differs is not L1's. The last count begins after
    // that bound, however long one count takes on a slow machine (a count that began inside the
    // window may still have seen L1's entries).
    await until("the cache to converge within L1's window", async () => (differing = await count()) === 0, {
      timeoutMs: 2 * l1TtlMs + 2_000,
    }).catch(async () => void (differing = await count()));
    return differing;
  }

  const started = performance.now();
  async function client() {
    while (done < options.operations) {
      // This operation's number: `done` moves on while this client awaits (the plain-SQL write).
      const op = (done += 1);
      if (op % options.faultEvery === 0 && op < options.operations) {
        const name = FAULTS[faultsDue++ % FAULTS.length]!;
        faultStartedAt = op;
        faulting = faulting
          .then(() => fault(name))
          .catch((error: unknown) => void fail(`fault ${name}: ${String(error)}`));
      }
      if (op % sqlWriteEvery === 0) await sqlWrite().catch(() => fail('sql writer'));
      if (userChurnEvery > 0 && op % userChurnEvery === 0) {
        await (churning = churning.then(churnUser).catch(() => void fail('user churn')));
      }
      const t = pick(instances);
      const userId = hotUser();
      await (random() < writeShare ? write(t, userId) : read(t, userId)).catch((error: unknown) =>
        fail(error instanceof Error ? error.message.slice(0, 60) : String(error)),
      );
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
    await faulting;
    const elapsedMs = performance.now() - started;

    // The faults have stopped: every instance catches up, then every hot key must be current.
    await until('the relays to drain and the circuits to close', async () => {
      for (const t of instances) {
        await t.app.relay.drain().catch(() => {});
        await t.gql('{ user(id: "1") { id } }');
      }
      return instances.every((t) => t.app.breaker.state === 'closed');
    });
    const unconverged = await countUnconverged();
    const report: SoakReport = {
      seed,
      elapsedMs: Math.round(elapsedMs),
      operations: done,
      reads,
      pageReads,
      apiWrites,
      posts,
      sqlWrites: sqlWriteCount,
      sqlApplied: relay.applied,
      userChurns,
      churnPageReads,
      churnPageStaleMaxMs: Math.round(churnPageStaleMaxMs),
      l1TtlMs,
      l1Lagged,
      l1LagMaxMs: Math.round(l1LagMaxMs),
      l1Served,
      faults,
      errors,
      pendingWrites,
      staleReads,
      staleSamples,
      monitorViolations: instances.reduce((n, t) => n + (t.app.cache.monitor?.violations ?? 0), 0),
      sqlStaleMaxMs: Math.round(sqlStaleMaxMs),
      unconverged,
    };
    return report;
  } finally {
    await relay.stop();
    await b.close().catch(() => {});
    await a.close().catch(() => {});
    await redis.stop();
  }
}

/** Whether `page` is `listed` less some users of `deleted`, in order. */
function isPageLess(
  listed: readonly number[],
  page: readonly number[],
  deleted: ReadonlySet<number>,
): boolean {
  let i = 0;
  for (const id of listed) {
    if (page[i] === id) i += 1;
    else if (!deleted.has(id)) return false;
  }
  return i === page.length;
}
