/**
 * Where the CPU went during a measurement: the harness (the load generator), the server under
 * test, and everything else on the machine, which on a shared box is noise in the figures; and,
 * inside the server, which of its threads spent it (/proc/PID/task/TID/stat). Linux /proc
 * figures; null elsewhere.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

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

/** The fields of a proc(5) stat line after the command name: fields[0] is field 3 (state). */
function statFields(path: string): string[] | null {
  try {
    const stat = readFileSync(path, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime (fields 14 and 15), in ticks. */
function cpuTicks(fields: readonly string[]): number {
  return Number(fields[11]) + Number(fields[12]);
}

function processCpuS(pid: number): number | null {
  const fields = statFields(`/proc/${pid}/stat`);
  return fields === null ? null : cpuTicks(fields) / CLOCK_TICKS_PER_S;
}

/** CPU time of this process's children that have exited and been waited for (cutime + cstime). */
function reapedChildrenCpuS(): number | null {
  const fields = statFields('/proc/self/stat');
  return fields === null ? null : (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_S;
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

/**
 * As sampleCpu, with the "server" being this process's children that exit within the window
 * (a child run to completion, such as the in-process ceiling): their CPU counts once reaped.
 */
export function sampleCpuOfChildren(): CpuSample {
  const harness = process.cpuUsage();
  return { atMs: performance.now(), harnessS: (harness.user + harness.system) / 1e6, serverS: reapedChildrenCpuS(), machineBusyS: machineBusyS() };
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

export interface MachineQuiet {
  readonly seconds: number;
  /** Busy cores, this process's own time taken off, while the harness sat idle: other processes and the kernel. */
  readonly otherCores: number | null;
  /** os.loadavg() at the end of the sample: 1, 5 and 15 minutes. */
  readonly loadAverage: readonly number[];
}

/** How busy the machine is while the harness does nothing and no target runs. */
export async function sampleQuiet(seconds: number): Promise<MachineQuiet> {
  const before = sampleCpuOfChildren();
  await sleep(seconds * 1000);
  const use = cpuUse(before, sampleCpuOfChildren());
  return { seconds, otherCores: use.otherCores, loadAverage: loadavg().map((v) => Math.round(v * 100) / 100) };
}

// ---------------------------------------------------------------------------------------------
// Per thread

interface ThreadTicks {
  readonly ticks: number;
  /** Field 22, starttime: ticks after boot. */
  readonly startTicks: number;
}

export interface ThreadSample {
  readonly pid: number;
  /** The whole process's utime + stime: threads that have exited included. */
  readonly processTicks: number | null;
  readonly threads: ReadonlyMap<number, ThreadTicks>;
}

/** utime + stime of every thread of `pid`, now; null where /proc cannot tell. */
export function sampleThreads(pid: number): ThreadSample | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const threads = new Map<number, ThreadTicks>();
  for (const tid of tids) {
    const fields = statFields(`/proc/${pid}/task/${tid}/stat`);
    if (fields !== null) threads.set(Number(tid), { ticks: cpuTicks(fields), startTicks: Number(fields[19]) });
  }
  const fields = statFields(`/proc/${pid}/stat`);
  return { pid, processTicks: fields === null ? null : cpuTicks(fields), threads };
}

export interface OtherThread {
  readonly tid: number;
  /** When it started, after the main thread: Node's own threads (V8 platform, libuv pool) start within a few ms; worker threads later. */
  readonly startedAfterMainMs: number;
  readonly usPerRequest: number;
}

/** CPU time per request of the server's threads over one measured window. */
export interface ThreadCpu {
  readonly requests: number;
  /** The main thread (TID = PID): HTTP, parsing, encoding, and whatever else runs on the event loop. */
  readonly mainUsPerRequest: number;
  /** Every other thread that was alive at the end: worker threads and what they run (ONNX Runtime), V8's GC and compiler threads, libuv's pool. */
  readonly otherThreadsUsPerRequest: number;
  /** The process as a whole (/proc/PID/stat), threads that exited in the window included. */
  readonly processUsPerRequest: number | null;
  /** The other threads that used CPU in the window, busiest first. */
  readonly otherThreads: readonly OtherThread[];
}

const US_PER_TICK = 1e6 / CLOCK_TICKS_PER_S;

export function threadCpu(before: ThreadSample | null, after: ThreadSample | null, requests: number): ThreadCpu | null {
  if (before === null || after === null || requests <= 0) return null;
  const perRequest = (ticks: number) => (ticks * US_PER_TICK) / requests;
  const mainStart = after.threads.get(after.pid)?.startTicks ?? 0;
  let main = 0;
  let others = 0;
  const otherThreads: OtherThread[] = [];
  for (const [tid, now] of after.threads) {
    // A thread born inside the window spent all its time in it.
    const used = now.ticks - (before.threads.get(tid)?.ticks ?? 0);
    if (tid === after.pid) {
      main = used;
      continue;
    }
    others += used;
    if (used > 0) otherThreads.push({ tid, startedAfterMainMs: (now.startTicks - mainStart) * (1000 / CLOCK_TICKS_PER_S), usPerRequest: perRequest(used) });
  }
  otherThreads.sort((a, b) => b.usPerRequest - a.usPerRequest);
  const processTicks = before.processTicks === null || after.processTicks === null ? null : after.processTicks - before.processTicks;
  return {
    requests,
    mainUsPerRequest: perRequest(main),
    otherThreadsUsPerRequest: perRequest(others),
    processUsPerRequest: processTicks === null ? null : perRequest(processTicks),
    otherThreads,
  };
}
