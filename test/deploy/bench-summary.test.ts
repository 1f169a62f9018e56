/**
 * The benchmark's arithmetic (bench/summary.ts): server CPU per request from a run's CPU share and
 * throughput, and ratios as medians of per-round ratios — so that a round the whole machine was
 * slow in cancels out instead of skewing one variant.
 */
import { describe, expect, test } from 'vitest';
import type { RunRecord } from '../../bench/results.js';
import { cpuUsPerRequest, summarize } from '../../bench/summary.js';

const run = (variant: RunRecord['variant'], round: number, rps: number, serverCpuPct: number): RunRecord => ({
  variant,
  workload: 'users20',
  round,
  rps,
  p50Ms: 1,
  p99Ms: 2,
  requests: rps * 3,
  bad: 0,
  badSamples: [],
  socketErrors: 0,
  bytesPerResponse: 100,
  serverCpuPct,
  loadCpuPct: 10,
  machineCpuPct: 50,
  sqlPerRequest: 0,
  roundTripsPerRequest: 4,
  breakerOpened: 0,
});

describe('bench summary', () => {
  test('CPU per request is the CPU share of one core over the requests answered per second', () => {
    // 80 % of a core answering 400 req/s: 0.8 s of CPU per second over 400 requests = 2 000 µs.
    expect(cpuUsPerRequest({ serverCpuPct: 80, rps: 400 })).toBe(2000);
    expect(cpuUsPerRequest({ serverCpuPct: 80, rps: 0 })).toBeNaN();
  });

  test('CPU ratios are medians of per-round ratios; warm-up rounds are left out', () => {
    const runs = [
      // Warm-up (round 0): would give a ratio of 10 if counted.
      run('cacheside', 0, 100, 100),
      run('static', 0, 1000, 100),
      // Round 1: cacheside 2 000 µs/req, static 1 000 → 2.
      run('cacheside', 1, 500, 100),
      run('static', 1, 1000, 100),
      // Round 2, the machine busy: both slower, same CPU per request → 2 again.
      run('cacheside', 2, 250, 50),
      run('static', 2, 500, 50),
      // Round 3: cacheside 1 000 µs/req, static 1 000 → 1.
      run('cacheside', 3, 1000, 100),
      run('static', 3, 1000, 100),
    ];
    const { cpuRatios, ratios, medians } = summarize(runs);
    expect(cpuRatios['cacheside/static']?.users20).toBe(2);
    expect(ratios['cacheside/static']?.users20).toBe(0.5);
    expect(medians.cacheside?.users20?.serverCpuUsPerRequest).toBe(2000);
    expect(medians.static?.users20?.serverCpuUsPerRequest).toBe(1000);
  });
});
