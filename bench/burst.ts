/**
 * The stampede's burst, run in the load generator's process (load.ts): N requests for one body at
 * once, round-robin over a few origins, each answer checked.
 */
import http from 'node:http';

export interface BurstJob {
  readonly type: 'burst';
  readonly id: number;
  /** Requests go round-robin to these origins. */
  readonly origins: readonly string[];
  readonly total: number;
  readonly body: string;
  readonly expected: string;
}

export interface BurstResult {
  readonly requests: number;
  readonly bad: number;
  readonly badSamples: string[];
  readonly latencyMs: { p50: number; p99: number; max: number };
}

/**
 * The stampede: open every connection first (a GET /health each), then send all requests in one
 * go, so what is measured is the herd on the cold key, not TCP handshakes.
 */
export async function burst(job: BurstJob): Promise<BurstResult> {
  const agents = job.origins.map(() => new http.Agent({ keepAlive: true, maxSockets: Infinity }));
  const perOrigin = Math.ceil(job.total / job.origins.length);
  try {
    await Promise.all(
      job.origins.flatMap((origin, o) =>
        Array.from({ length: perOrigin }, () => request(agents[o]!, `${origin}/health`, 'GET')),
      ),
    );
    const started: Promise<{ status: number; body: string; ms: number }>[] = [];
    for (let i = 0; i < job.total; i += 1) {
      const o = i % job.origins.length;
      started.push(request(agents[o]!, `${job.origins[o]}/graphql`, 'POST', job.body));
    }
    const answers = await Promise.all(started);
    const badOnes = answers.filter((a) => a.status !== 200 || a.body !== job.expected);
    const ms = answers.map((a) => a.ms).sort((x, y) => x - y);
    return {
      requests: answers.length,
      bad: badOnes.length,
      badSamples: badOnes.slice(0, 3).map((a) => `${a.status} ${a.body.slice(0, 300)}`),
      latencyMs: { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), max: ms.at(-1) ?? 0 },
    };
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

function request(
  agent: http.Agent,
  url: string,
  method: 'GET' | 'POST',
  body?: string,
): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = http.request(
      url,
      { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - start,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
