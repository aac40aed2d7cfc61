/** The benchmark's results: their shape, the machine they came from, and the JSON and Markdown files. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { arch, availableParallelism, cpus, hostname, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import type { CpuUse } from './cpu.js';
import type { CeilingResult } from './in-process-ceiling.js';
import type { LoadSummary } from './load.js';
import { REPO_ROOT, type BenchOptions } from './options.js';
import type { PingSummary } from './ping-prober.js';
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

export type HttpTargetResult = { readonly id: HttpTargetId; readonly label: string } & (
  | {
      readonly ok: true;
      readonly load: LoadSummary;
      readonly ping: PingSummary;
      readonly cpu: CpuUse;
      readonly inferd?: InferdModelInfo;
    }
  | Failure
);

export type CeilingTargetResult = { readonly label: string } & ({ readonly ok: true; readonly result: CeilingResult } | Failure);

export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly model: string;
  readonly contentType: string;
  readonly connections: number;
  readonly rowsPerRequest: number;
  readonly distinctBodies: number;
  readonly notes: readonly string[];
  readonly targets: readonly HttpTargetResult[];
  readonly inProcessCeiling?: CeilingTargetResult;
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

export interface BenchResult {
  readonly startedAt: string;
  readonly elapsedS: number;
  readonly command: string;
  readonly machine: Machine;
  readonly settings: Pick<BenchOptions, 'durationS' | 'warmupS' | 'provider' | 'inferdEnv'>;
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

const DASH = '–';

function count(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
}

function ms(value: number | null): string {
  return value === null ? DASH : value.toFixed(value >= 100 ? 0 : 1);
}

function cores(value: number | null): string {
  return value === null ? DASH : value.toFixed(2);
}

function ratio(numerator: number | undefined, denominator: number | undefined): string {
  return numerator === undefined || denominator === undefined || denominator === 0 ? 'n/a' : `${(numerator / denominator).toFixed(2)}×`;
}

function row(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

const COLUMNS = ['target', 'req/s', 'rows/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx', 'errors', '/ping p99 ms', 'client CPU', 'server cores', 'other cores'];

function failedRow(label: string, failure: Failure): string {
  return row([label, `failed: ${failure.error.replaceAll('|', '/')}`, ...new Array<string>(COLUMNS.length - 2).fill(DASH)]);
}

/** A p99 of a handful of pings says little; the count says how little. */
function pingCell(ping: PingSummary): string {
  const remarks = [...(ping.count < 50 ? [`n=${ping.count}`] : []), ...(ping.failures > 0 ? [`${ping.failures} failed`] : [])];
  return remarks.length > 0 ? `${ms(ping.p99Ms)} (${remarks.join(', ')})` : ms(ping.p99Ms);
}

function targetRow(target: HttpTargetResult): string {
  if (!target.ok) return failedRow(target.label, target);
  const { load, ping } = target;
  return row([
    target.label,
    count(load.requestsPerS),
    count(load.rowsPerS),
    load.latencyMs.p50,
    load.latencyMs.p90,
    load.latencyMs.p99,
    load.non2xx,
    load.errors,
    pingCell(ping),
    `${Math.round(target.cpu.clientShare * 100)}%`,
    cores(target.cpu.serverCores),
    cores(target.cpu.otherCores),
  ]);
}

function ceilingRow(ceiling: CeilingTargetResult): string {
  if (!ceiling.ok) return failedRow(ceiling.label, ceiling);
  const { best, threads } = ceiling.result;
  const label = `${ceiling.label} (batch ${best?.batchSize ?? DASH}, ${threads} thread${threads === 1 ? '' : 's'})`;
  const rowsPerS = best?.rowsPerS ?? null;
  return row([label, DASH, rowsPerS === null ? DASH : count(rowsPerS), ...new Array<string>(COLUMNS.length - 3).fill(DASH)]);
}

function ceilingSweep(ceiling: CeilingTargetResult): string | null {
  if (!ceiling.ok) return null;
  const sweep = ceiling.result.sweep.map((s) => `${s.batchSize}: ${s.rowsPerS === null ? `failed (${s.error})` : count(s.rowsPerS)}`);
  return `In-process ceiling, rows/s by batch size: ${sweep.join(', ')}.`;
}

function ratios(scenario: ScenarioResult): string {
  const figure = (id: HttpTargetId, key: 'requestsPerS' | 'rowsPerS') => {
    const target = scenario.targets.find((t) => t.id === id);
    return target?.ok ? target.load[key] : undefined;
  };
  const batching = figure('inferd-batching', 'requestsPerS');
  const parts = [
    `inferd-batching / baseline: **${ratio(batching, figure('inline-baseline', 'requestsPerS'))}**`,
    `inferd-batching / HTTP ceiling: ${ratio(batching, figure('http-ceiling', 'requestsPerS'))}`,
  ];
  const ceiling = scenario.inProcessCeiling;
  if (ceiling) {
    const ceilingRows = ceiling.ok ? (ceiling.result.best?.rowsPerS ?? undefined) : undefined;
    parts.push(`inferd-batching / in-process ceiling (rows/s): ${ratio(figure('inferd-batching', 'rowsPerS'), ceilingRows)}`);
  }
  parts.push(`batching on / off: ${ratio(batching, figure('inferd-no-batching', 'requestsPerS'))}`);
  const capture = figure('inferd-capture', 'requestsPerS');
  if (capture !== undefined) parts.push(`capture at 100% / without: ${ratio(capture, batching)}`);
  return `Ratios (requests/s unless stated): ${parts.join(' · ')}`;
}

function scenarioSection(scenario: ScenarioResult): string[] {
  const lines = [
    `## ${scenario.id}: ${scenario.title}`,
    '',
    `\`${scenario.model}\`, \`${scenario.contentType}\`, ${scenario.connections} connections, ${scenario.rowsPerRequest === 1 ? '1 row' : `${scenario.rowsPerRequest} rows`} per request, ${scenario.distinctBodies} distinct bodies cycled.`,
    '',
  ];
  if (scenario.targets.length > 0) {
    lines.push(row(COLUMNS), row(['---', ...new Array<string>(COLUMNS.length - 1).fill('--:')]), ...scenario.targets.map(targetRow));
    if (scenario.inProcessCeiling) lines.push(ceilingRow(scenario.inProcessCeiling));
    lines.push('', ratios(scenario), '');
    const sweep = scenario.inProcessCeiling && ceilingSweep(scenario.inProcessCeiling);
    if (sweep) lines.push(sweep, '');
  }
  for (const note of scenario.notes) lines.push(`- ${note}`);
  if (scenario.notes.length > 0) lines.push('');
  return lines;
}

export function renderMarkdown(result: BenchResult): string {
  const { machine, settings } = result;
  const inferdEnv = Object.keys(settings.inferdEnv).length > 0 ? `; extra inferd env ${JSON.stringify(settings.inferdEnv)}` : '';
  return [
    `# inferd load benchmark, ${result.startedAt}`,
    '',
    `Command: \`${result.command}\` (${Math.round(result.elapsedS)} s)`,
    '',
    `Machine: ${machine.host}, ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
      `Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, autocannon ${machine.autocannon}; revision ${machine.revision ?? 'unknown'}.`,
    '',
    `Method: targets run one at a time, each a fresh child process on this machine, with the load generator on the same cores. ` +
      `Per target: ${settings.warmupS} s warm-up, then ${settings.durationS} s of closed-loop autocannon load while a separate thread GETs /ping every 20 ms. ` +
      `Provider: ${settings.provider}${inferdEnv}. Throughput and latency count 2xx responses only; autocannon latency has 1 ms resolution. ` +
      `Client CPU is the harness's share of all cores; server cores is the target process's CPU time per wall second; ` +
      `other cores is the rest of the machine's busy time (other processes, the kernel): noise when it is not near 0.`,
    '',
    ...result.scenarios.flatMap(scenarioSection),
  ].join('\n').trimEnd().concat('\n');
}

/** Writes `<date>-<host>.json` and `.md` under bench/results, and overwrites latest.md. */
export function writeResults(result: BenchResult): { json: string; markdown: string } {
  const directory = join(REPO_ROOT, 'bench/results');
  mkdirSync(directory, { recursive: true });
  const stamp = result.startedAt.slice(0, 16).replace(':', '');
  const base = join(directory, `${stamp}-${result.machine.host}`);
  const markdown = renderMarkdown(result);
  writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown);
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
