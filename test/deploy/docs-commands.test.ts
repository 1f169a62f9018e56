/**
 * The commands the docs name are the commands package.json has. README.md and bench/README.md hold
 * the runnable walkthroughs (run in order by readme.test.ts); docs/ names commands inline, in
 * tables and sentences (`npm run cache:purge -- --all` after a failover, `npm run soak`, …). Here:
 * every `npm run <script>` in any of them exists; every script a user runs is in the contract's
 * command table (the lifecycle hooks npm runs itself are not); and the ones a reader is told to
 * run as written, with no placeholder, parse their arguments (each CLI's own tests run them).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { ROOT } from '../support/http-server.js';
import { uniquePrefix, REDIS_URL } from '../support/redis.js';

const run = promisify(execFile);

const DOCS = [
  'README.md',
  'bench/README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .map((file) => `docs/${file}`),
];
const text = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const scripts = (JSON.parse(text('package.json')) as { scripts: Record<string, string> }).scripts;

/** npm's own commands the docs may name without `run`. */
const NPM_BUILTINS = new Set(['install', 'ci', 'start', 'test', 'ls']);
/** Scripts npm runs on its own (around install and start): nobody types them. */
const LIFECYCLE = new Set(['postinstall', 'prepare', 'prestart']);

interface Mention {
  readonly file: string;
  readonly command: string;
}

/** The code of a Markdown file: its inline code spans and the lines of its fenced blocks. */
function codeOf(markdown: string): string[] {
  const fenced = [...markdown.matchAll(/^```\w*\n([\s\S]*?)^```$/gm)].flatMap((m) => m[1]!.split('\n'));
  const prose = markdown.replace(/^```\w*\n[\s\S]*?^```$/gm, '');
  const inline = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  return [...fenced, ...inline];
}

/** Every `npm …` command in the code of the docs, `npm run --silent x` read as `npm run x`. */
function npmMentions(): Mention[] {
  const found: Mention[] = [];
  for (const file of DOCS) {
    for (const code of codeOf(text(file))) {
      for (const match of code.matchAll(/\bnpm (?:run (?:--[\w-]+ )*)?[a-z][\w:-]*(?: [^|&;`]*)?/g)) {
        found.push({ file, command: match[0].replace(/ --silent\b/, '').trim() });
      }
    }
  }
  return found;
}

describe('the commands in the docs', () => {
  const mentions = npmMentions();

  test('the docs name npm commands (the scan finds them)', () => {
    expect(mentions.length).toBeGreaterThan(30);
    expect(mentions.some((m) => m.file.startsWith('docs/'))).toBe(true);
  });

  test('every `npm run <script>` names a script of package.json, every other `npm <x>` is npm’s own', () => {
    const unknown = mentions.filter(({ command }) => {
      const [, verb, name] = /^npm (run )?([\w:-]+)/.exec(command)!;
      return verb ? !(name! in scripts) : !NPM_BUILTINS.has(name!) && !(name! in scripts);
    });
    expect(unknown).toEqual([]);
  });

  test('every script a user runs is in the contract’s command table', () => {
    const table = text('docs/contract.md');
    const documented = (name: string) =>
      name === 'start' || name === 'test'
        ? table.includes(`| \`npm ${name}\``)
        : table.includes(`| \`npm run ${name}`);
    const missing = Object.keys(scripts).filter((name) => !LIFECYCLE.has(name) && !documented(name));
    expect(missing).toEqual([]);
  });

  test('the purge a reader is told to run as written (after a failover) runs as written', async () => {
    const told = mentions.filter((m) => m.command === 'npm run cache:purge -- --all');
    expect(told.map((m) => m.file)).toEqual(
      expect.arrayContaining(['docs/consistency.md', 'docs/operations.md']),
    );
    const { stdout } = await run('npm', ['run', '--silent', 'cache:purge', '--', '--all'], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL, CACHE_PREFIX: uniquePrefix('docs-purge'), LOG_LEVEL: 'warn' },
      timeout: 120_000,
    });
    // A prefix of its own: nothing to invalidate, and nothing of another test's touched.
    expect(stdout).toMatch(/^invalidated 0 cached entries \(\d+ keys scanned\) in Redis/);
  }, 180_000);
});
