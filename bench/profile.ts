/**
 * Where the CPU went in a `.cpuprofile`, in a window of it only (startup and warm-up left out): self
 * time by component, the hottest functions, and the inclusive time of cacheside's own code. The
 * profiles come from `npm run bench -- --profile` (modes/profile.ts);
 * `tsx bench/profile.ts FILE.cpuprofile [FILE…]` summarizes profiles taken some other way.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  readonly file: string;
  /** Samples in the window, and how many of them were idle. */
  readonly samples: number;
  readonly idle: number;
  /** Self time by component, % of busy samples. */
  readonly components: Record<string, number>;
  /** Hottest functions by self time, % of busy samples. */
  readonly topSelf: { frame: string; pct: number }[];
  /** cacheside functions (src/) by inclusive time, % of busy samples. */
  readonly topInclusiveOurs: { frame: string; pct: number }[];
}

/**
 * A frame's file as a path of the repository: the servers run compiled into bench/.build/<pid>/
 * (build-server.ts), whose src/ and bench/ are the repository's. Line numbers stay the compiled
 * JavaScript's, which tsc keeps close to the source's.
 */
function sourceUrl(url: string): string {
  return url.replace(/\/bench\/\.build\/[^/]+\//, '/');
}

/** Whether a frame is cacheside's own code (src/), not a package's that has a src/ folder too. */
function isOurs(url: string): boolean {
  return !url.includes('/node_modules/') && /\/src\//.test(sourceUrl(url));
}

/** Component of a frame: which package or which folder of ours its code lives in. */
export function componentOf(rawUrl: string, functionName: string): string {
  const url = sourceUrl(rawUrl);
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8 / native (program)';
    return 'V8 / native';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg !== undefined) {
    if (pkg === 'graphql') return 'graphql-js';
    if (/^(graphql-yoga|@graphql-yoga\/|@envelop\/|@whatwg-node\/|@graphql-tools\/)/.test(pkg))
      return 'yoga + envelop + whatwg-node';
    if (/^(ioredis|@ioredis\/|redis-parser|denque|cluster-key-slot|standard-as-callback)/.test(pkg))
      return 'ioredis';
    if (pkg === '@escape.tech/graphql-armor-cost-limit' || pkg.startsWith('@escape.tech/'))
      return 'graphql-armor (limits)';
    return pkg;
  }
  const ours = /\/(src|bench)\/(.+)$/.exec(url);
  if (ours !== undefined && ours !== null) {
    if (ours[1] === 'bench') return 'bench harness';
    const folder = ours[2]!.split('/')[0]!;
    return `cacheside src/${/\.[cm]?[jt]s$/.test(folder) ? folder : `${folder}/`}`;
  }
  if (url.startsWith('node:'))
    return `node ${url
      .slice(5)
      .split('/')[0]!
      .replace(/^internal\//, '')}`;
  return 'other';
}

export function summarizeProfile(file: string, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);

  // Keep the window only when it overlaps the profile: otherwise the clocks did not agree.
  let from = -Infinity;
  let to = Infinity;
  if (window && window.fromUs < profile.endTime && window.toUs > profile.startTime) {
    from = window.fromUs;
    to = window.toUs;
  }

  const self = new Map<number, number>();
  let t = profile.startTime;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + 1);
    samples += 1;
  }

  const frameOf = (n: CpuProfileNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url === '' ? '' : ` ${shortUrl(url)}:${lineNumber + 1}`;
    return `${functionName || '(anonymous)'}${where}`;
  };

  let idle = 0;
  const components = new Map<string, number>();
  const selfByFrame = new Map<string, number>();
  const inclusiveOurs = new Map<string, number>();
  for (const [id, count] of self) {
    const node = byId.get(id)!;
    const component = componentOf(node.callFrame.url, node.callFrame.functionName);
    if (component === 'idle') {
      idle += count;
      continue;
    }
    components.set(component, (components.get(component) ?? 0) + count);
    const frame = frameOf(node);
    selfByFrame.set(frame, (selfByFrame.get(frame) ?? 0) + count);
    // Inclusive: every distinct frame of ours on the stack gets the sample once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const n = byId.get(at)!;
      if (!isOurs(n.callFrame.url)) continue;
      const f = frameOf(n);
      if (seen.has(f)) continue;
      seen.add(f);
      inclusiveOurs.set(f, (inclusiveOurs.get(f) ?? 0) + count);
    }
  }
  const busy = Math.max(1, samples - idle);
  const pct = (n: number) => Math.round((n / busy) * 1000) / 10;
  const top = (m: Map<string, number>, k: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([frame, n]) => ({ frame, pct: pct(n) }));
  return {
    file,
    samples,
    idle,
    components: Object.fromEntries(
      [...components.entries()].sort((a, b) => b[1] - a[1]).map(([c, n]) => [c, pct(n)]),
    ),
    topSelf: top(selfByFrame, 25),
    topInclusiveOurs: top(inclusiveOurs, 20),
  };
}

export function renderSummary(title: string, s: ProfileSummary): string {
  const lines = [
    `## ${title}`,
    '',
    `${s.samples} samples in the window, ${s.idle} idle.`,
    '',
    '| component (self time) | % of busy |',
    '|---|---:|',
  ];
  for (const [c, p] of Object.entries(s.components)) if (p >= 0.5) lines.push(`| ${c} | ${p} |`);
  lines.push('', '| hottest functions (self) | % |', '|---|---:|');
  for (const { frame, pct } of s.topSelf.slice(0, 20)) lines.push(`| \`${frame}\` | ${pct} |`);
  lines.push('', '| cacheside code (inclusive) | % |', '|---|---:|');
  for (const { frame, pct } of s.topInclusiveOurs.slice(0, 15)) lines.push(`| \`${frame}\` | ${pct} |`);
  return lines.join('\n');
}

function shortUrl(rawUrl: string): string {
  const url = sourceUrl(rawUrl);
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const src = /\/((?:src|bench)\/.+)$/.exec(url);
  if (src) return src[1]!;
  return url.replace(/^file:\/\//, '');
}

const isEntryPoint = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntryPoint) {
  for (const file of process.argv.slice(2))
    console.log(renderSummary(basename(file), summarizeProfile(file)), '\n');
}
