/**
 * Where the CPU went during a measurement: the harness (the load generator), the server under
 * test, and everything else on the machine, which on a shared box is noise in the figures.
 * Linux /proc figures; null elsewhere.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second. */
const CLOCK_TICKS_PER_S = 100;

interface CpuSample {
  readonly atMs: number;
  readonly harnessS: number;
  readonly serverS: number | null;
  readonly machineBusyS: number | null;
}

export interface CpuUse {
  /** Harness CPU time / wall time / cores: the share of the machine the load generator took. */
  readonly clientShare: number;
  /** Server process CPU time (all its threads) / wall time. */
  readonly serverCores: number | null;
  /** Busy cores not accounted for by the harness or the server: other processes, the kernel. */
  readonly otherCores: number | null;
}

function processCpuS(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // utime and stime are fields 14 and 15 of proc(5); counting starts after the command name.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

function machineBusyS(): number | null {
  try {
    const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user, nice, system, irq, softirq, steal: everything but idle and iowait.
    return [0, 1, 2, 5, 6, 7].reduce((sum, field) => sum + (ticks[field] ?? 0), 0) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

export function sampleCpu(serverPid: number): CpuSample {
  const harness = process.cpuUsage();
  return { atMs: performance.now(), harnessS: (harness.user + harness.system) / 1e6, serverS: processCpuS(serverPid), machineBusyS: machineBusyS() };
}

export function cpuUse(before: CpuSample, after: CpuSample): CpuUse {
  const wallS = (after.atMs - before.atMs) / 1000;
  const harnessCores = (after.harnessS - before.harnessS) / wallS;
  const serverCores = before.serverS === null || after.serverS === null ? null : (after.serverS - before.serverS) / wallS;
  const machineCores = before.machineBusyS === null || after.machineBusyS === null ? null : (after.machineBusyS - before.machineBusyS) / wallS;
  return {
    clientShare: harnessCores / availableParallelism(),
    serverCores,
    otherCores: machineCores === null || serverCores === null ? null : Math.max(0, machineCores - serverCores - harnessCores),
  };
}
