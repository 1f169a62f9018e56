/**
 * Why a start failed, said once on stderr in words that name what to change, and an exit code a
 * supervisor can tell apart (docs/contract.md, "Exit codes"). A raw `EADDRINUSE` stack or a bare
 * "Invalid URL" told a newcomer neither which variable nor which value.
 */
import { ConfigError, type Config } from '../config.js';
import { DataDirIncompatibleError, DataDirLockedError } from '../db/client.js';
import { DatabaseStartupTimeoutError } from '../db/wait-for-database.js';

/** The exit codes of `node dist/server.js`, each written once. */
export const EXIT_CODES = {
  /** Shut down cleanly on SIGTERM or SIGINT. */
  ok: 0,
  /** An unexpected failure, or a shutdown that was not clean. */
  failed: 1,
  /** A configuration variable is malformed or out of range: the message names it and its value. */
  badConfiguration: 2,
  /** PostgreSQL did not answer within DATABASE_STARTUP_TIMEOUT_SECONDS. */
  databaseUnreachable: 3,
  /** HOST:PORT cannot be listened on: in use, or not allowed. */
  cannotListen: 4,
  /** The embedded data directory is in use by another process or from another PostgreSQL version. */
  dataDirUnusable: 5,
} as const;

export interface StartupFailure {
  readonly message: string;
  readonly exitCode: number;
}

export function explainStartupFailure(error: unknown, config?: Config): StartupFailure {
  if (error instanceof ConfigError) return { message: error.message, exitCode: EXIT_CODES.badConfiguration };
  if (error instanceof DatabaseStartupTimeoutError) {
    return { message: error.message, exitCode: EXIT_CODES.databaseUnreachable };
  }
  if (error instanceof DataDirLockedError || error instanceof DataDirIncompatibleError) {
    return { message: error.message, exitCode: EXIT_CODES.dataDirUnusable };
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (config !== undefined && (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')) {
    const { host, port } = config.http;
    const why =
      code === 'EADDRINUSE'
        ? `port ${port} is already in use on ${host}: stop what listens there, or set PORT to a free port`
        : code === 'EACCES'
          ? `not allowed to listen on port ${port}: set PORT to 1024 or above`
          : `HOST=${host} is not an address of this machine: set HOST (0.0.0.0 listens on all of them)`;
    return {
      message: `cannot listen on ${host}:${port} (${code}): ${why}`,
      exitCode: EXIT_CODES.cannotListen,
    };
  }
  return {
    message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    exitCode: EXIT_CODES.failed,
  };
}
