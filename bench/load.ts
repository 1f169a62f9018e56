/**
 * The load generator: autocannon, driven programmatically, in a process of its own (forked by
 * bench/harness.ts `startLoadProcess`), so that it never shares a core's event loop with the server
 * it measures. It checks every response it gets.
 *
 * IPC, parent → this process:
 *   { type: 'expect', workload, expected }   the expected body of each distinct request of a workload
 *   { type: 'tokens', tokens }               bearer tokens of the mix's writers
 *   { type: 'run', id, … }                   one autocannon run → { type: 'result', id, result }
 *   { type: 'burst', id, … }                 the stampede: N requests at once → { type: 'result', id, result }
 */
import autocannon from 'autocannon';
import { burst, type BurstJob } from './burst.js';
import { buildMixPlan, buildWorkloads, writeBody, WRITE_EVERY, type WorkloadName } from './workloads.js';

export interface RunJob {
  readonly type: 'run';
  readonly id: number;
  readonly url: string;
  readonly workload: WorkloadName | 'mix';
  readonly connections: number;
  readonly durationSec: number;
}

export interface RunResult {
  readonly requests: number;
  readonly rps: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Responses that were not 200 with exactly the expected body (or, in the mix, the expected shape). */
  readonly bad: number;
  readonly badSamples: string[];
  readonly socketErrors: number;
  readonly timeouts: number;
  /** Mean response body bytes. */
  readonly bytesPerResponse: number;
  /** CPU time of this process during the run, µs. */
  readonly loadCpuUs: number;
  readonly wallMs: number;
  readonly mix?: { reads: number; writes: number; stale: number };
}

const workloads = buildWorkloads();
const mixPlan = buildMixPlan();
const expected = new Map<WorkloadName, readonly string[]>();
const tokens = new Map<number, string>();
/** The newest profile version each user's writes have returned so far (persists across runs). */
const committed = new Map<number, number>();
let writeSerial = 0;

process.on('message', (message: { type: string }) => {
  if (message.type === 'expect') {
    const m = message as unknown as { workload: WorkloadName; expected: string[] };
    expected.set(m.workload, m.expected);
  } else if (message.type === 'tokens') {
    for (const [id, token] of (message as unknown as { tokens: [number, string][] }).tokens)
      tokens.set(id, token);
  } else if (message.type === 'run') {
    const job = message as RunJob;
    void run(job).then(
      (result) => process.send!({ type: 'result', id: job.id, result }),
      (error: unknown) => process.send!({ type: 'result', id: job.id, error: String(error) }),
    );
  } else if (message.type === 'burst') {
    const job = message as BurstJob;
    void burst(job).then(
      (result) => process.send!({ type: 'result', id: job.id, result }),
      (error: unknown) => process.send!({ type: 'result', id: job.id, error: String(error) }),
    );
  }
});
process.on('disconnect', () => process.exit(0));

interface Context {
  index?: number;
  userId?: number;
  write?: boolean;
  minVersion?: number;
}

async function run(job: RunJob): Promise<RunResult> {
  let cursor = 0;
  let bad = 0;
  const badSamples: string[] = [];
  let bytes = 0;
  let responses = 0;
  const mix = { reads: 0, writes: 0, stale: 0 };
  const fail = (what: string) => {
    bad += 1;
    if (badSamples.length < 3) badSamples.push(what.slice(0, 400));
  };

  let setupRequest: (req: Record<string, unknown>, context: Context) => Record<string, unknown>;
  let onResponse: (status: number, body: string, context: Context) => void;

  if (job.workload === 'mix') {
    setupRequest = (req, context) => {
      const i = cursor++;
      const userId = mixPlan.sequence[i % mixPlan.sequence.length]!;
      context.userId = userId;
      if (i % WRITE_EVERY === 0) {
        context.write = true;
        writeSerial += 1;
        return {
          ...req,
          body: writeBody(`bench write ${writeSerial}`),
          headers: { ...(req.headers as object), authorization: `Bearer ${tokens.get(userId)}` },
        };
      }
      context.write = false;
      // Any write of this user that returned before this read was sent must be visible to it.
      context.minVersion = committed.get(userId) ?? 0;
      return { ...req, body: mixPlan.readBody(userId) };
    };
    onResponse = (status, body, context) => {
      responses += 1;
      bytes += Buffer.byteLength(body);
      const userId = context.userId!;
      let parsed: {
        data?: Record<
          string,
          { userId?: string; id?: string; version?: number; profile?: { version: number } } | null
        >;
        errors?: unknown;
      };
      try {
        parsed = JSON.parse(body);
      } catch {
        return fail(`${status} ${body}`);
      }
      if (status !== 200 || parsed.errors !== undefined) return fail(`${status} ${body}`);
      if (context.write) {
        mix.writes += 1;
        const row = parsed.data?.updateProfile;
        if (row?.userId !== String(userId) || typeof row.version !== 'number') return fail(body);
        committed.set(userId, Math.max(committed.get(userId) ?? 0, row.version));
      } else {
        mix.reads += 1;
        const user = parsed.data?.user;
        if (user?.id !== String(userId) || typeof user.profile?.version !== 'number') return fail(body);
        if (user.profile.version < context.minVersion!) mix.stale += 1;
      }
    };
  } else {
    const workload = workloads[job.workload];
    const want = expected.get(job.workload);
    if (want === undefined) throw new Error(`no expected bodies for ${job.workload}`);
    setupRequest = (req, context) => {
      const index = workload.sequence[cursor++ % workload.sequence.length]!;
      context.index = index;
      return { ...req, body: workload.bodies[index] };
    };
    onResponse = (status, body, context) => {
      responses += 1;
      bytes += Buffer.byteLength(body);
      if (status !== 200 || body !== want[context.index!]) fail(`${status} ${body}`);
    };
  }

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await autocannon({
    url: job.url,
    connections: job.connections,
    pipelining: 1,
    duration: job.durationSec,
    requests: [
      {
        method: 'POST',
        path: '/graphql',
        headers: { 'content-type': 'application/json' },
        setupRequest: setupRequest as never,
        onResponse: onResponse as never,
      },
    ],
  });
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  // autocannon counts 2xx in `requests`; `non2xx` and mismatches are already `bad` from the checks.
  return {
    requests: responses,
    rps: responses / (wallMs / 1000),
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: result.latency.average,
    },
    bad,
    badSamples,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    bytesPerResponse: responses === 0 ? 0 : bytes / responses,
    loadCpuUs: cpu.user + cpu.system,
    wallMs,
    ...(job.workload === 'mix' ? { mix } : {}),
  };
}
