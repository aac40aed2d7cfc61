/**
 * `inferd autoscale simulate`: replays a load trace through the scaling policies with a measured
 * per-instance capacity, and writes the picture (SVG), a Markdown summary and the summary as JSON.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { InferdError } from '../errors.js';
import { timelineSvg } from './chart.js';
import { parsePolicyFile, parseTrace, type PolicyFile } from './simulation-files.js';
import { simulate, type SimulationSummary } from './simulation.js';

export const AUTOSCALE_USAGE = `Usage: inferd autoscale simulate --trace FILE.csv --policy FILE.json [--out DIR] [--name NAME]

Replays the load in --trace (CSV with the header at_s,requests_per_s) through the scaling
policies in --policy, with the per-instance capacity measured there, and writes to --out
(default: the current directory) NAME.svg (load, instances, latency), NAME.md (a summary and
the scale events) and NAME.json (the summary). NAME defaults to the trace's file name without
its extension.

Exit status: 0 done, 1 an input file is unreadable or invalid, 2 bad usage.`;

export interface AutoscaleIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export interface SimulationRequest {
  readonly tracePath: string;
  readonly policyPath: string;
  readonly outDir: string;
  readonly name?: string | undefined;
}

/** What `<name>.json` holds. */
export interface SimulationReport {
  readonly name: string;
  readonly trace: string;
  readonly policy: string;
  readonly capacityRps: number;
  readonly capacitySource: string;
  readonly summary: SimulationSummary;
}

class UsageError extends Error {}

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const SAFE_NAME = /^[\w.-]+$/;
/** A week in 1-second steps: more is a mistake (a tiny stepS), and would take gigabytes. */
const MAX_STEPS = 604_800;

const processIo: AutoscaleIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** `argv` is what follows `inferd autoscale`. Returns the exit code. */
export async function runSimulateCommand(argv: readonly string[], io: AutoscaleIo = processIo): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h') {
      io.stdout(`${AUTOSCALE_USAGE}\n`);
      return 0;
    }
    if (command !== 'simulate') throw new UsageError(`unknown autoscale command '${command}'`);
    const { values } = parseArgs({
      args: rest,
      options: { trace: { type: 'string' }, policy: { type: 'string' }, out: { type: 'string' }, name: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      io.stdout(`${AUTOSCALE_USAGE}\n`);
      return 0;
    }
    if (values.trace === undefined) throw new UsageError('--trace is required');
    if (values.policy === undefined) throw new UsageError('--policy is required');
    if (values.name !== undefined && !SAFE_NAME.test(values.name)) throw new UsageError(`--name ${values.name}: use letters, digits, '.', '_' and '-'`);
    const report = await simulateFiles({ tracePath: values.trace, policyPath: values.policy, outDir: values.out ?? '.', name: values.name });
    io.stdout(`${oneLine(report)}\nwrote ${report.name}.svg, ${report.name}.md and ${report.name}.json to ${values.out ?? '.'}\n`);
    return 0;
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const code = error instanceof InferdError ? `[${error.code}] ` : '';
    io.stderr(`inferd autoscale: ${code}${(error as Error).message}\n${usage ? `\n${AUTOSCALE_USAGE}\n` : ''}`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  }
}

/** Reads both files, simulates, writes `<name>.svg`, `.md` and `.json` under `outDir`. */
export async function simulateFiles(request: SimulationRequest): Promise<SimulationReport> {
  const trace = parseTrace(await readInput(request.tracePath, 'trace'), request.tracePath);
  const policy = parsePolicyFile(await readInput(request.policyPath, 'policy'), request.policyPath);
  const name = request.name ?? basename(request.tracePath, extname(request.tracePath)).replace(/[^\w.-]/g, '_');
  const steps = Math.ceil((trace.at(-1)!.atS - trace[0]!.atS) / policy.stepS);
  if (steps > MAX_STEPS) {
    throw new InferdError(
      'INFERD_ERR_CONFIG_INVALID',
      `${request.policyPath}: stepS ${policy.stepS} makes ${steps} steps of the trace, more than ${MAX_STEPS}: use a larger step`,
    );
  }
  const { timeline, summary } = simulate(trace, policy);
  const report: SimulationReport = {
    name,
    trace: request.tracePath,
    policy: request.policyPath,
    capacityRps: policy.capacityRps,
    capacitySource: policy.capacitySource,
    summary,
  };

  await mkdir(request.outDir, { recursive: true });
  const title = `${basename(request.tracePath)} through ${basename(request.policyPath)}: ${count(policy.capacityRps)} requests/s per instance`;
  await writeFile(join(request.outDir, `${name}.svg`), timelineSvg({ title, subtitle: oneLine(report), stepS: policy.stepS, sloMs: policy.sloMs, timeline, scaleEvents: summary.scaleEvents }));
  await writeFile(join(request.outDir, `${name}.md`), markdown(report, policy));
  await writeFile(join(request.outDir, `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new InferdError('INFERD_ERR_CONFIG_INVALID', `cannot read the ${what} file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

const count = (value: number) => Math.round(value).toLocaleString('en-US');

/** 0 s, 45 s, 9 min 20 s, 3 h 05 min. */
export function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min${whole % 60 ? ` ${whole % 60} s` : ''}`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')} min`;
}

const clock = (atS: number) => `${Math.floor(atS / 3600)}:${String(Math.floor((atS % 3600) / 60)).padStart(2, '0')}:${String(Math.floor(atS % 60)).padStart(2, '0')}`;

const slo = (ms: number) => (ms < 1000 ? `${ms} ms` : formatDuration(ms / 1000));

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

const share = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '0%');

function oneLine({ summary: s }: SimulationReport): string {
  return (
    `${s.instanceHours.toFixed(1)} instance-hours, peak ${plural(s.peakInstances, 'instance')}, ${plural(s.scaleOuts, 'scale-out')} and ${plural(s.scaleIns, 'scale-in')}, ` +
    `${formatDuration(s.timeOverSloS)} over the ${slo(s.sloMs)} SLO, ${share(s.requestsThatWaited, s.requests)} of requests waited`
  );
}

function markdown(report: SimulationReport, policy: PolicyFile): string {
  const s = report.summary;
  const lines = [
    `# Autoscaling simulation: ${report.name}`,
    '',
    `Trace \`${report.trace}\` (${formatDuration(s.durationS)}, ${count(s.requests)} requests); policy \`${report.policy}\`${policy.description ? `: ${policy.description}` : '.'}`,
    '',
    `One instance serves ${policy.capacityRps.toLocaleString('en-US')} requests/s (${policy.capacitySource}) and ${policy.serviceTimeMs} ms per request when idle; ` +
      `a new one serves ${formatDuration(policy.instanceStartupS)} after it is asked for; ${policy.stepS} s steps, starting with ${policy.initialCapacity}.`,
    '',
    `![${report.name}](${report.name}.svg)`,
    '',
    '| | |',
    '|---|---|',
    `| instance-hours | ${s.instanceHours.toFixed(2)} |`,
    `| peak instances | ${s.peakInstances} |`,
    `| scale-outs / scale-ins | ${s.scaleOuts} / ${s.scaleIns} |`,
    `| time over the ${slo(s.sloMs)} SLO (latency proxy) | ${formatDuration(s.timeOverSloS)} (${share(s.timeOverSloS, s.durationS)}) |`,
    `| requests that waited in a backlog | ${count(s.requestsThatWaited)} (${share(s.requestsThatWaited, s.requests)}) |`,
    `| peak backlog | ${count(s.peakBacklog)} requests |`,
    `| longest wait in the backlog | ${formatDuration(s.longestWaitS)} |`,
    '',
    '## Policies',
    '',
    '| # | type | metric | target | capacity | datapoint | scale out after | scale in after | cooldowns out / in |',
    '|---|---|---|---|---|---|---|---|---|',
    ...policy.policies.map(
      (p, i) =>
        `| ${i} | ${p.type} | \`${p.metric}\` | ${p.targetValue.toLocaleString('en-US')} | ${p.minCapacity}–${p.maxCapacity} | ${p.metricPeriodS} s | ` +
        `${p.scaleOutAfterS} s | ${p.disableScaleIn ? 'disabled' : `${p.scaleInAfterS} s`} | ${p.scaleOutCooldownS} s / ${p.scaleInCooldownS} s |`,
    ),
    '',
    '## Scale events',
    '',
  ];
  if (s.scaleEvents.length === 0) lines.push('None.');
  else {
    lines.push('| time | instances | policy | rule | reason |', '|---|---|---|---|---|');
    for (const event of s.scaleEvents) {
      lines.push(`| ${clock(event.atS)} | ${event.from} → ${event.to} | ${event.policy} | \`${event.rule}\` | ${event.reason.replace(/\|/g, '\\|')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}
