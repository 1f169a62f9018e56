/**
 * Headless Chromium for the browser tests: Debian's `chromium` package driven by playwright-core.
 * Nothing is downloaded (playwright-core ships no browser); a missing binary fails with the command
 * that installs it. Each launch gets a fresh profile directory, removed on close, so no state
 * (cookies, GraphiQL's saved tabs in localStorage) leaks from one run into the next.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for a quiet, self-contained browser: no sandbox (CI runs as root in a container), no GPU, and
 * none of the background traffic (component updates, sync, QUIC probes) that would reach the network.
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export interface Browser {
  readonly context: BrowserContext;
  /** Closes the browser and removes its profile directory. Idempotent. */
  close(): Promise<void>;
}

/** Launches headless Chromium with a fresh `--user-data-dir`. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `browser tests need Chromium at ${CHROMIUM_PATH}; install it with: apt-get install -y chromium`,
    );
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'cacheside-chromium-'));
  try {
    // Playwright refuses `--user-data-dir` in `args`: a persistent context is how it takes one.
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_FLAGS],
      viewport: { width: 1400, height: 900 },
      timeout: 30_000,
    });
    let closing: Promise<void> | undefined;
    return {
      context,
      close: () =>
        (closing ??= context.close().finally(() => rm(userDataDir, { recursive: true, force: true }))),
    };
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
}
