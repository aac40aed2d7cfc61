/** The benchmark's results: their shape, the machine they came from, and the JSON and Markdown files. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { arch, availableParallelism, cpus, hostname, release, totalmem } from 'node:os';
import { basename, join, relative } from 'node:path';
import type { GoalResult, RatioSummary, TargetSummary } from './analysis.js';
import type { CpuUse, MachineQuiet, ThreadCpu } from './cpu.js';
import type { CeilingResult } from './in-process-ceiling.js';
import type { LoadSummary } from './load.js';
import { REPO_ROOT, type BenchOptions, type ScenarioId } from './options.js';
import type { PingSummary } from './ping-prober.js';
import type { Spread } from './stats.js';
import type { HttpTargetId } from './targets.js';

export type Failure = { readonly ok: false; readonly error: string; readonly output?: string };

/** The fields of inferd's GET /models that say how it really ran. */
export interface InferdModelInfo {
  readonly provider: string;
  readonly requestedProvider: string;
  readonly instances: number;
  readonly intraOpNumThreads: number;
  readonly batching?: unknown;
}

export type TargetId = HttpTargetId | 'in-process-ceiling';

/** What a target answered to the load's first bodies, next to inferd's answers to the same bodies. */
export interface AnswerCheck {
  readonly contentType: string;
  readonly bodies: number;
  /** Largest |this - inferd| over every number of the answers; null for inferd's own (the reference). */
  readonly maxDiffVsInferd: number | null;
}

/** One target measured in one round: the raw figures. */
export type RoundResult = { readonly round: number; readonly target: TargetId; readonly label: string } & (
  | {
      readonly ok: true;
      readonly kind: 'http';
      readonly load: LoadSummary;
      readonly ping: PingSummary;
      readonly cpu: CpuUse;
      /** CPU per request by thread, over the measured window (/proc/PID/task/TID/stat). */
      readonly threads: ThreadCpu | null;
      readonly serverThreadCount: number | null;
      readonly inferd?: InferdModelInfo;
      readonly check?: AnswerCheck;
    }
  | { readonly ok: true; readonly kind: 'ceiling'; readonly ceiling: CeilingResult; readonly cpu: CpuUse }
  | Failure
);

export interface ScenarioResult {
  readonly id: ScenarioId;
  readonly title: string;
  readonly model: string;
  readonly contentType: string;
  readonly accept: string;
  readonly connections: number;
  readonly rowsPerRequest: number;
  readonly distinctBodies: number;
  readonly notes: readonly string[];
  /** The targets, in the order each round ran them. */
  readonly targets: readonly { readonly id: TargetId; readonly label: string }[];
  readonly summary: readonly TargetSummary[];
  readonly ratios: readonly RatioSummary[];
  readonly goals: readonly GoalResult[];
  /** Every round of every target, in the order they ran. */
  readonly rounds: readonly RoundResult[];
}

export interface Machine {
  readonly host: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly onnxruntimeNode: string;
  readonly autocannon: string;
  readonly revision: string | null;
}

/** How busy the machine was apart from the benchmark. */
export interface MachineLoad {
  /** Before anything ran. */
  readonly before: MachineQuiet;
  /** Other processes' cores in each measured window, over all windows of the run. */
  readonly during: Spread | null;
  readonly noisyWindows: number;
  readonly windows: number;
  /** Above this many cores of other work, a window is flagged. */
  readonly noisyAboveCores: number;
  readonly loadAverageAfter: readonly number[];
}

export interface BenchResult {
  readonly startedAt: string;
  readonly elapsedS: number;
  readonly command: string;
  readonly machine: Machine;
  readonly settings: Pick<BenchOptions, 'rounds' | 'durationS' | 'warmupS' | 'provider' | 'inferdEnv'>;
  readonly machineLoad: MachineLoad;
  readonly warnings: readonly string[];
  readonly scenarios: readonly ScenarioResult[];
}

function packageVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

function git(args: readonly string[]): string {
  return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}

/** The commit, and whether src/ differed from it: the server under test may be work in progress. */
function sourceRevision(): string | null {
  try {
    const commit = git(['rev-parse', '--short', 'HEAD']);
    const changed = git(['diff', '--name-only', 'HEAD', '--', 'src']) !== '' || git(['ls-files', '--others', '--exclude-standard', '--', 'src']) !== '';
    return changed ? `${commit} with uncommitted changes in src/` : commit;
  } catch {
    return null;
  }
}

export function describeMachine(): Machine {
  return {
    host: hostname(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${process.platform} ${release()} ${arch()}`,
    node: process.version,
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    autocannon: packageVersion('autocannon'),
    revision: sourceRevision(),
  };
}

function shellQuote(value: string): string {
  return /^[\w.,:/=@+-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The command line that reproduces this run: its BENCH_* variables, then the entry point (`npm run bench` by default). */
export function reproducingCommand(benchEnv: Readonly<Record<string, string>>, entry?: string): string {
  const assignments = Object.entries(benchEnv).map(([name, value]) => `${name}=${shellQuote(value)}`);
  return [...assignments, entry ?? (process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'node dist/bench/run.js')].join(' ');
}

export const DASH = '–';

export function count(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
}

export function ms(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(value >= 100 ? 0 : 1);
}

export const times = (value: number) => `${value.toFixed(2)}×`;
export const us = (value: number) => (value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1));
const cores = (value: number) => value.toFixed(2);

export function spreadCell(value: Spread | null, format: (v: number) => string): string {
  if (value === null) return DASH;
  return value.n === 1 || value.min === value.max ? format(value.median) : `${format(value.median)} (${format(value.min)}–${format(value.max)})`;
}

export function row(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

/** A table's header: the first `textColumns` columns left-aligned, the figures right-aligned. */
export function header(columns: readonly string[], textColumns = 1): string[] {
  return [row(columns), row(columns.map((_, i) => (i < textColumns ? '---' : '--:')))];
}

export function goalCell(goal: GoalResult): string {
  const threshold = goal.metric === 'ping-p99-ms' ? `${goal.threshold} ms` : times(goal.threshold);
  return `${goal.comparison === '>=' ? '≥' : '<'} ${threshold}`;
}

export function goalMeasured(goal: GoalResult): string {
  return spreadCell(goal.measured, goal.metric === 'ping-p99-ms' ? (v) => `${ms(v)} ms` : times);
}

export function verdictCell(goal: GoalResult): string {
  if (goal.verdict !== 'met') return `**${goal.verdict}**`;
  return goal.everyRound ? '**met**' : '**met** (not in every round)';
}

function summaryRow(summary: TargetSummary): string {
  const failed = summary.failures > 0 ? ` (${summary.failures} round${summary.failures === 1 ? '' : 's'} failed)` : '';
  return row([
    `${summary.label}${failed}`,
    spreadCell(summary.requestsPerS, count),
    spreadCell(summary.rowsPerS, count),
    spreadCell(summary.p50Ms, ms),
    spreadCell(summary.p99Ms, ms),
    spreadCell(summary.pingP99Ms, ms),
    spreadCell(summary.mainUsPerRequest, us),
    spreadCell(summary.otherThreadsUsPerRequest, us),
    spreadCell(summary.processUsPerRequest, us),
    spreadCell(summary.serverCores, cores),
    spreadCell(summary.otherCores, cores),
  ]);
}

function pingCell(ping: PingSummary): string {
  const p99 = ping.p99Ms === null ? DASH : ms(ping.p99Ms);
  const remarks = [...(ping.count < 50 ? [`n=${ping.count}`] : []), ...(ping.failures > 0 ? [`${ping.failures} failed`] : [])];
  return remarks.length > 0 ? `${p99} (${remarks.join(', ')})` : p99;
}

function roundRow(result: RoundResult): string {
  const cells: (string | number)[] = [result.round, result.target];
  if (!result.ok) return row([...cells, `failed: ${result.error.replaceAll('|', '/').replaceAll('\n', ' ').slice(0, 200)}`, ...new Array<string>(14).fill(DASH)]);
  if (result.kind === 'ceiling') {
    const { best, sweep, threads, processes } = result.ceiling;
    const detail = `${processes} process${processes === 1 ? '' : 'es'} × ${threads} thread${threads === 1 ? '' : 's'}; rows/s by batch size: ${sweep.map((s) => `${s.batchSize}: ${s.rowsPerS === null ? 'failed' : count(s.rowsPerS)}`).join(', ')}`;
    return row([...cells, DASH, best?.rowsPerS == null ? DASH : count(best.rowsPerS), ...new Array<string>(10).fill(DASH), cores(result.cpu.otherCores ?? NaN), DASH, detail]);
  }
  const { load, threads, check } = result;
  const answers = check === undefined ? DASH : check.maxDiffVsInferd === null ? `${check.contentType} (reference)` : `${check.contentType}, max diff ${check.maxDiffVsInferd.toExponential(1)}`;
  return row([
    ...cells,
    count(load.requestsPerS),
    count(load.rowsPerS),
    load.latencyMs.p50,
    load.latencyMs.p90,
    load.latencyMs.p99,
    load.non2xx + load.errors,
    pingCell(result.ping),
    threads === null ? DASH : us(threads.mainUsPerRequest),
    threads === null ? DASH : us(threads.otherThreadsUsPerRequest),
    threads?.processUsPerRequest == null ? DASH : us(threads.processUsPerRequest),
    result.serverThreadCount ?? DASH,
    result.cpu.serverCores === null ? DASH : cores(result.cpu.serverCores),
    result.cpu.otherCores === null ? DASH : cores(result.cpu.otherCores),
    `${Math.round(result.cpu.clientShare * 100)}%`,
    answers,
  ]);
}

function scenarioSection(scenario: ScenarioResult, rounds: number): string[] {
  const lines = [
    `## ${scenario.id}: ${scenario.title}`,
    '',
    `\`${scenario.model}\`, \`${scenario.contentType}\` in, \`${scenario.accept}\` out, ${scenario.connections} connections, ` +
      `${scenario.rowsPerRequest === 1 ? '1 row' : `${scenario.rowsPerRequest} rows`} per request, ${scenario.distinctBodies} distinct bodies cycled. ` +
      `Each round ran, in this order: ${scenario.targets.map((t) => t.id).join(', ')}.`,
    '',
  ];
  if (scenario.rounds.length === 0) return [...lines, ...scenario.notes.map((n) => `- ${n}`), ''];
  lines.push(
    `### Targets over ${rounds} round${rounds === 1 ? '' : 's'}: median (min–max)`,
    '',
    ...header(['target', 'req/s', 'rows/s', 'p50 ms', 'p99 ms', '/ping p99 ms', 'main thread µs/req', 'other threads µs/req', 'process µs/req', 'server cores', 'other cores']),
    ...scenario.summary.map(summaryRow),
    '',
    '### Ratios, each computed within a round',
    '',
    ...header(['ratio', 'median (min–max)', ...Array.from({ length: rounds }, (_, i) => `round ${i + 1}`), 'ratio of medians']),
    ...scenario.ratios.map((ratio) =>
      row([
        `${ratio.label}${ratio.unit === 'rows/s' ? ' (rows/s)' : ''}`,
        `**${spreadCell(ratio.spread, times)}**`,
        ...ratio.perRound.map((v) => (v === null ? DASH : times(v))),
        ratio.ratioOfMedians === null ? DASH : times(ratio.ratioOfMedians),
      ]),
    ),
    '',
  );
  if (scenario.goals.length > 0) {
    lines.push('### Goals', '', ...header(['goal', 'threshold', 'measured: median (min–max)', 'verdict'], 1));
    for (const goal of scenario.goals) lines.push(row([goal.goal, goalCell(goal), goalMeasured(goal), verdictCell(goal)]));
    lines.push('');
  }
  lines.push(
    '### Rounds',
    '',
    ...header(['round', 'target', 'req/s', 'rows/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx + errors', '/ping p99 ms', 'main µs/req', 'other threads µs/req', 'process µs/req', 'threads', 'server cores', 'other cores', 'client CPU', 'answers'], 2),
    ...scenario.rounds.map(roundRow),
    '',
  );
  for (const note of scenario.notes) lines.push(`- ${note}`);
  if (scenario.notes.length > 0) lines.push('');
  return lines;
}

export function renderMarkdown(result: BenchResult): string {
  const { machine, settings, machineLoad } = result;
  const inferdEnv = Object.keys(settings.inferdEnv).length > 0 ? `; extra inferd env ${JSON.stringify(settings.inferdEnv)}` : '';
  const before = machineLoad.before;
  return [
    `# inferd load benchmark, ${result.startedAt}`,
    '',
    `Command: \`${result.command}\` (${Math.round(result.elapsedS)} s)`,
    '',
    `Machine: ${machine.host}, ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, autocannon ${machine.autocannon}; revision ${machine.revision ?? 'unknown'}.`,
    '',
    `Method: ${settings.rounds} round${settings.rounds === 1 ? '' : 's'}; in each round every target runs once, in the same order (A, B, C, A, B, C…), ` +
      `each in a fresh child process on this machine with the load generator on the same cores, so that a slowdown of the machine during a round hits every target of it. ` +
      `Per target and round: ${settings.warmupS} s warm-up on the same server, then ${settings.durationS} s of closed-loop autocannon load while a separate thread GETs /ping every 20 ms. ` +
      `Provider: ${settings.provider}${inferdEnv}. Throughput and latency count 2xx responses only; autocannon latency has 1 ms resolution. ` +
      `Ratios are computed within each round and summarised by their median and min–max; the goals are judged on that median. ` +
      `Before each measurement every target but the HTTP ceiling answered the load's first bodies, compared with inferd's answers (column "answers"). ` +
      `**Main thread / other threads µs/req**: the server's CPU time (utime + stime of /proc/PID/task/TID/stat, read before and after the measured window) per 2xx answer, ` +
      `on the main thread (HTTP, parsing, encoding, and in the baselines the model itself) and on all its other threads (inferd's worker threads and ONNX Runtime in them; V8's and libuv's helper threads); ` +
      `process µs/req is the whole process (/proc/PID/stat), threads that exited included; 10 ms clock ticks. ` +
      `Server cores is the target's CPU time per wall second; other cores the rest of the machine's busy time (other processes, the kernel) in the window.`,
    '',
    `Machine load: before the run, ${before.seconds} s idle: ${before.otherCores === null ? 'unknown' : `${cores(before.otherCores)} cores busy`}, load average ${before.loadAverage.join(' / ')}; ` +
      `during the ${machineLoad.windows} measured windows, other processes used ${spreadCell(machineLoad.during, cores)} cores (median, min–max), ` +
      `more than ${machineLoad.noisyAboveCores} core in ${machineLoad.noisyWindows}; load average after the run ${machineLoad.loadAverageAfter.join(' / ')}.`,
    '',
    ...(result.warnings.length > 0 ? ['**Warnings**', '', ...result.warnings.map((w) => `- ${w}`), ''] : []),
    ...result.scenarios.flatMap((scenario) => scenarioSection(scenario, settings.rounds)),
  ]
    .join('\n')
    .trimEnd()
    .concat('\n');
}

/** Writes `<date>-<host>.json` and `.md` under bench/results, and overwrites latest.json and latest.md. */
export function writeResults(result: BenchResult): { json: string; markdown: string } {
  const directory = join(REPO_ROOT, 'bench/results');
  mkdirSync(directory, { recursive: true });
  const stamp = result.startedAt.slice(0, 16).replace(':', '');
  const base = join(directory, `${stamp}-${result.machine.host}`);
  const markdown = renderMarkdown(result);
  const json = `${JSON.stringify({ ...result, report: `${basename(base)}.md` }, null, 2)}\n`;
  writeFileSync(`${base}.json`, json);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(join(directory, 'latest.json'), json);
  writeFileSync(join(directory, 'latest.md'), markdown);
  return { json: `${base}.json`, markdown: `${base}.md` };
}

/** Writes `bench/results/<timestamp>-<name>.{json,md}` and prints the markdown. */
export async function saveResults(name: string, dateIso: string, result: unknown, markdown: string): Promise<void> {
  const base = join(REPO_ROOT, 'bench/results', `${dateIso.slice(0, 16).replace(/:/g, '')}-${name}`);
  await writeFile(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(`${base}.md`, markdown);
  process.stdout.write(markdown);
  process.stderr.write(`wrote ${relative(REPO_ROOT, base)}.{json,md}\n`);
}
