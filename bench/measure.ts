/**
 * One measured run: one variant's server under the load generator for one workload, with what the
 * server counted and the CPU that it, the load generator and the whole machine used meanwhile. CPU
 * is there to tell a bottleneck (server near 100 % of a core) from waiting (server well below it,
 * machine at 100 %).
 */
import { countedBetween, machineCpu, type BenchServer, type LoadProcess } from './harness.js';
import type { RunRecord } from './results.js';
import type { WorkloadName } from './workloads.js';

export async function measure(
  load: LoadProcess,
  server: BenchServer,
  workload: WorkloadName | 'mix',
  run: { readonly connections: number; readonly durationSec: number; readonly round: number },
): Promise<RunRecord> {
  const before = await server.stats();
  const machineBefore = machineCpu();
  const result = await load.run({
    url: server.origin,
    workload,
    connections: run.connections,
    durationSec: run.durationSec,
  });
  const after = await server.stats();
  const machineAfter = machineCpu();

  const wallUs = result.wallMs * 1000;
  const counted = countedBetween(before, after);
  const perRequest = (n: number) => (result.requests === 0 ? 0 : n / result.requests);
  const machine =
    machineBefore && machineAfter && machineAfter.total > machineBefore.total
      ? ((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)) * 100
      : undefined;
  const record: RunRecord = {
    variant: server.variant,
    workload,
    round: run.round,
    rps: result.rps,
    p50Ms: result.latencyMs.p50,
    p99Ms: result.latencyMs.p99,
    requests: result.requests,
    bad: result.bad,
    badSamples: result.badSamples,
    socketErrors: result.socketErrors,
    bytesPerResponse: result.bytesPerResponse,
    serverCpuPct: (counted.cpuUs / wallUs) * 100,
    loadCpuPct: (result.loadCpuUs / wallUs) * 100,
    machineCpuPct: machine,
    // Under load (not deterministic: concurrent requests share flights and the relay runs too).
    sqlPerRequest: perRequest(counted.sql),
    roundTripsPerRequest: perRequest(counted.roundTrips),
    breakerOpened: after.breaker.opened - before.breaker.opened,
    ...(result.mix ? { mix: result.mix } : {}),
  };
  if (record.bad > 0) {
    console.error(
      `  ${server.variant} ${workload}: ${record.bad} bad responses, e.g. ${result.badSamples[0]}`,
    );
  }
  return record;
}
