/**
 * The README's examples reproduce, in the README's order, on a fresh embedded start (the built
 * server, no DATABASE_URL, no REDIS_URL, an empty DATA_DIR): the newcomer query of the quick start,
 * the read and the mutation with a token of "Using the API" (their shell blocks run as written,
 * `localhost:4000` pointed at this server's port), and the header walkthrough, whose output must
 * be the README's line for line (durations aside). A README edit that breaks one fails here.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ensureBuilt,
  freePort,
  ROOT,
  SERVER_ENTRY,
  spawnNode,
  type ChildServer,
} from '../support/http-server.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

interface Block {
  readonly section: string;
  readonly lang: string;
  readonly code: string;
}

/** Every fenced block of the README, with the heading it is under. */
function blocks(): Block[] {
  const found: Block[] = [];
  let section = '';
  const lines = README.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i]!;
    if (/^#{2,3} /.test(line)) section = line.replace(/^#+ /, '');
    const fence = /^```(\w*)$/.exec(line);
    if (!fence) continue;
    const body: string[] = [];
    for (i += 1; i < lines.length && lines[i] !== '```'; i += 1) body.push(lines[i]!);
    found.push({ section, lang: fence[1]!, code: body.join('\n') });
  }
  return found;
}
const inSection = (section: string, lang: string) =>
  blocks().filter((b) => b.section === section && b.lang === lang);

const dataDir = mkdtempSync(join(tmpdir(), 'cs-readme-'));
let port: number;
let server: ChildServer;
/** What a newcomer's shell has: the defaults, nothing configured but where to listen and keep data. */
let env: Record<string, string>;

/** Runs a README shell snippet as written, against this test's server. */
async function sh(code: string): Promise<string> {
  const script = code.replaceAll('localhost:4000', `127.0.0.1:${port}`);
  const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    timeout: 60_000,
  });
  return stdout;
}

beforeAll(async () => {
  await ensureBuilt();
  port = await freePort();
  env = { PORT: String(port), DATA_DIR: dataDir };
  server = spawnNode([SERVER_ENTRY], env, ROOT);
  await server.waitForLine(/listening/, 120_000);
}, 240_000);

afterAll(async () => {
  await server?.kill();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(`${dataDir}.lock`, { force: true });
});

describe('README.md, in order, on a fresh embedded start', () => {
  test('Quick start: the start line names the embedded database and the memory store', () => {
    const [startLine] = inSection('Quick start', '');
    expect(startLine).toBeDefined();
    const shown = startLine!.code
      .replace('localhost:4000', `localhost:${port}`)
      .replace('in .data', `in ${dataDir}`);
    expect(server.output()).toContain(shown);
  });

  test('Quick start: the query to paste answers three users with profiles and posts', async () => {
    const [query] = inSection('Quick start', 'graphql');
    const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: query!.code }),
    });
    const body = (await response.json()) as {
      data?: { userPage: { nodes: { profile: unknown; posts: unknown[] }[]; nextCursor: string } };
    };
    expect(body.data?.userPage.nodes).toHaveLength(3);
    for (const node of body.data!.userPage.nodes) {
      expect(node.profile).not.toBeNull();
      expect(node.posts).toHaveLength(2);
    }
  });

  test('Using the API: the read, then the mutation with a token from npm run token', async () => {
    const [read, write] = inSection('Using the API', 'sh');
    const user = JSON.parse(await sh(read!.code)) as {
      data: { user: { name: string; profile: { version: number } } };
    };
    expect(user.data.user).toMatchObject({ name: expect.any(String), profile: { version: 1 } });

    const updated = JSON.parse(await sh(write!.code)) as {
      data: { updateProfile: { version: number; bio: string } };
    };
    expect(updated.data.updateProfile).toMatchObject({ version: 2, bio: 'Hello' });
  }, 120_000);

  test('What the cache did: the walkthrough prints what the README shows', async () => {
    const [walkthrough] = inSection('What the cache did: response headers', 'sh');
    const lines = walkthrough!.code.split('\n');
    // "$ command" (continued by indented lines), its output, then "$ # the same again": run it twice.
    // Durations vary and HTTP header lines end in \r: both are normalised away.
    const command = lines
      .slice(
        0,
        lines.findIndex((l, i) => i > 0 && !l.startsWith('    ')),
      )
      .join('\n')
      .replace(/^\$ /, '');
    const shown = lines.filter((l) => !l.startsWith('$ ') && !l.startsWith('    '));
    const output = `${await sh(command)}${await sh(command)}`.split('\n').filter((l) => l !== '');
    const normalise = (l: string) => l.replace(/dur=[\d.]+/g, 'dur=…').replace(/\r$/, '').toLowerCase();
    expect(output.map(normalise)).toEqual(shown.map(normalise));
  });
});
