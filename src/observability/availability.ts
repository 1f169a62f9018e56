/**
 * Whether a dependency (PostgreSQL, Redis) is reachable, as the traffic sees it, logged as state
 * changes. An outage is expected — the service is built to keep answering through one — so it gets
 * one warn line when it begins and one when it ends (how long it lasted, how many calls failed), not
 * a line per failed request: a few seconds of PostgreSQL outage used to log over a hundred
 * error-level lines with stacks, burying anything unexpected. In between, failures are counted in
 * metrics (`cacheside_dependency_failures_total`, `cacheside_dependency_available`).
 *
 * Fed by outcomes, not by probes (metric-adapters.ts): `lost` where the dependency was found
 * unreachable (PostgreSQL: a connection-level failure; Redis: the circuit opened, or a connection
 * error), `failed` for each call that failed meanwhile, `recovered` where it answered again.
 * Proof: test/resilience/outage-logs.test.ts.
 */
import type { Logger } from './logger.js';

export type Dependency = 'postgres' | 'redis';

const LABEL: Record<Dependency, string> = { postgres: 'PostgreSQL', redis: 'Redis' };

export interface Availability {
  /** The dependency is unreachable: counted as a failure, and the start of an outage if none is on. */
  lost(error?: unknown): void;
  /** A call failed (it may not mean an outage: one slow Redis call does not open the circuit). */
  failed(): void;
  /** The dependency answered: the end of the outage, if one is on. */
  recovered(): void;
}

export interface AvailabilityDeps {
  readonly dependency: Dependency;
  readonly logger: Logger;
  /** What the service does meanwhile, for the warn line (e.g. "cached reads are served; …"). */
  readonly meanwhile: string;
  /** The state changed. */
  readonly onChange?: (available: boolean) => void;
  /** One more failure. */
  readonly onFailure?: () => void;
}

export function createAvailability({
  dependency,
  logger,
  meanwhile,
  onChange,
  onFailure,
}: AvailabilityDeps): Availability {
  const label = LABEL[dependency];
  let available = true;
  let since = 0;
  // Failed calls since the outage began: the end line's count.
  let failures = 0;
  const failed = () => {
    onFailure?.();
    if (!available) failures += 1;
  };
  return {
    failed,
    lost(error) {
      if (available) {
        available = false;
        since = performance.now();
        failures = 0;
        logger.warn({ dependency, err: error }, `${label} unavailable; ${meanwhile}`);
        onChange?.(false);
      }
      failed();
    },
    recovered() {
      if (available) return;
      available = true;
      logger.warn(
        { dependency, downMs: Math.round(performance.now() - since), failures },
        `${label} available again`,
      );
      onChange?.(true);
    },
  };
}
