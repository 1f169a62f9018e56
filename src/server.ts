/**
 * `node dist/server.js`: reads the configuration, builds the app (src/app/create-app.ts), listens,
 * and shuts down gracefully on SIGTERM or SIGINT (src/app/shutdown.ts). A start that fails says why
 * on stderr and exits with the code of its kind (src/app/startup-failure.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createApp, type App } from './app/create-app.js';
import { shutDown } from './app/shutdown.js';
import { EXIT_CODES, explainStartupFailure } from './app/startup-failure.js';
import { describeStore } from './cache/store/from-config.js';
import { loadConfig, type Config } from './config.js';
import { createLogger } from './observability/logger.js';

/** Starts the HTTP server; resolves once it listens. */
export async function listen(app: App): Promise<Server> {
  const server = createServer(app.yoga);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(app.config.http.port, app.config.http.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** Config, app and server, or — having said why on stderr and closed what it opened — the exit. */
async function start(): Promise<{ config: Config; app: App; server: Server }> {
  let config: Config | undefined;
  let app: App | undefined;
  try {
    config = loadConfig();
    const logger = createLogger(config.logLevel);
    if (config.auth.usingDevSecret) {
      logger.warn(
        'AUTH_SECRET is not set: using the built-in development secret (never do this in production)',
      );
    }
    if (config.database.kind === 'pglite' && !existsSync(join(config.database.dataDir, 'PG_VERSION'))) {
      await prepareEmbeddedDatabase();
    }
    app = await createApp(config, { logger });
    return { config, app, server: await listen(app) };
  } catch (error) {
    await app?.close().catch(() => {});
    const failure = explainStartupFailure(error, config);
    console.error(`cacheside failed to start: ${failure.message}`);
    process.exit(failure.exitCode);
  }
}

/**
 * A new embedded database is created, migrated and seeded by a child process (src/cli/
 * prepare-embedded.ts), so that this one opens it as a restart would: PGlite's memory grows while it
 * seeds and never shrinks. The child runs as this process does (dist/*.js under node, or the
 * sources under tsx for `npm run dev`: same execArgv, same extension).
 */
async function prepareEmbeddedDatabase(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const entry = join(dirname(self), 'cli', `prepare-embedded${extname(self)}`);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, entry], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (exitCode) => resolve(exitCode));
  });
  // The child has said why on stderr, with the exit code of its kind (a locked DATA_DIR: 5).
  if (code !== 0) process.exit(code ?? EXIT_CODES.failed);
}

async function main(): Promise<void> {
  const { config, app, server } = await start();
  const logger = app.logger;
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.http.port;
  logger.info(
    { database: app.database.description, cache: describeStore(config) },
    `cacheside listening on http://${config.http.host === '0.0.0.0' ? 'localhost' : config.http.host}:${port}/graphql — database: ${app.database.description}; cache: ${describeStore(config)}`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const { delayMs } = config.shutdown;
    logger.info({ signal, delayMs }, 'shutting down: draining, then finishing in-flight requests');
    // /ready 503 → keep serving delayMs → stop accepting → in-flight finish → relay, store, database.
    void shutDown({ server, app, logger, delayMs }).then(
      (clean) => {
        if (clean) logger.info('shut down cleanly');
        process.exit(clean ? EXIT_CODES.ok : EXIT_CODES.failed);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(EXIT_CODES.failed);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntryPoint) {
  main().catch((error: unknown) => {
    console.error('cacheside failed:', error);
    process.exit(EXIT_CODES.failed);
  });
}
