/**
 * `inferd monitor baseline` and `inferd monitor check`: Model Monitor's data-quality job, offline.
 * The baseline suggests statistics and constraints from a training CSV; the check compares the
 * requests captured in a time window with them and writes the violations.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StorageSettings } from '../storage/object-store.js';
import { openObjectStore } from '../storage/open-store.js';
import { parseArgs } from 'node:util';
import { readCapture, type CaptureFiles, type CapturedRows } from './capture-reader.js';
import { checkCapture, type Baseline, type CheckResult } from './check.js';
import { constraintsFrom, type Constraints } from './constraints.js';
import { parseCsv } from './csv-text.js';
import { localFiles } from './local-files.js';
import { comparisonSvg } from './plot.js';
import { statisticsOf, type Statistics } from './statistics.js';

export interface MonitorIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export const MONITOR_USAGE = `Usage:
  inferd monitor baseline --data FILE.csv --out DIR [--label-column NAME]
  inferd monitor check --capture DIR_OR_URI --baseline DIR --from ISO --to ISO --out DIR [--endpoint NAME] [--variant NAME]

baseline  writes statistics.json and constraints.json for the CSV's columns (header required),
          leaving out the label column.
check     reads the requests captured in [--from, --to) under --capture (SageMaker's layout,
          <endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl) and writes constraint_violations.json,
          their statistics.json, and <feature>.svg for every drifting feature. It exits 0 whether
          or not there are violations.`;

class UsageError extends Error {}

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** `argv` is what follows `inferd monitor`. Returns the exit code. */
export async function runMonitorCommand(argv: readonly string[], io: MonitorIo, storage: StorageSettings = {}): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === 'baseline') await baseline(rest, io);
    else if (command === 'check') await check(rest, io, storage);
    else if (command === undefined || command === '--help' || command === '-h') io.stdout(`${MONITOR_USAGE}\n`);
    else throw new UsageError(`unknown monitor command '${command}'`);
    return 0;
  } catch (error) {
    const usage = error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    io.stderr(`inferd monitor: ${(error as Error).message}\n${usage ? `\n${MONITOR_USAGE}\n` : ''}`);
    return usage ? EXIT_USAGE : EXIT_FAILED;
  }
}

function options<const Names extends string>(argv: readonly string[], names: readonly Names[], required: readonly Names[]) {
  const { values } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(names.map((name) => [name, { type: 'string' as const }])),
  });
  for (const name of required) if (values[name] === undefined) throw new UsageError(`--${name} is required`);
  return values as Record<Names, string | undefined>;
}

async function baseline(argv: readonly string[], io: MonitorIo): Promise<void> {
  const flags = options(argv, ['data', 'out', 'label-column'], ['data', 'out']);
  const [header, ...rows] = parseCsv(await readText(flags.data as string, '--data'));
  if (!header || rows.length === 0) throw new Error(`${flags.data} needs a header line and at least one row`);

  const label = flags['label-column'];
  const labelIndex = label === undefined ? -1 : header.indexOf(label);
  if (label !== undefined && labelIndex === -1) throw new UsageError(`--label-column ${label} is not a column of ${flags.data} (${header.join(', ')})`);
  const withoutLabel = (row: readonly string[]) => row.filter((_, i) => i !== labelIndex);
  const statistics = statisticsOf({ header: withoutLabel(header), rows: rows.map(withoutLabel) });
  const constraints = constraintsFrom(statistics);

  const out = flags.out as string;
  await mkdir(out, { recursive: true });
  await writeJson(join(out, 'statistics.json'), statistics);
  await writeJson(join(out, 'constraints.json'), constraints);

  const types = new Map<string, number>();
  for (const feature of statistics.features) types.set(feature.inferred_type, (types.get(feature.inferred_type) ?? 0) + 1);
  const typeSummary = [...types].map(([type, count]) => `${count} ${type}`).join(', ');
  io.stdout(
    `${rows.length} rows, ${statistics.features.length} features (${typeSummary})${label ? `; label column '${label}' left out` : ''}\n` +
      `wrote statistics.json and constraints.json to ${out}\n`,
  );
}

async function check(argv: readonly string[], io: MonitorIo, storage: StorageSettings): Promise<void> {
  const flags = options(argv, ['capture', 'baseline', 'from', 'to', 'out', 'endpoint', 'variant'], ['capture', 'baseline', 'from', 'to', 'out']);
  const from = parseTime(flags.from as string, '--from');
  const to = parseTime(flags.to as string, '--to');
  if (from >= to) throw new UsageError(`--from ${flags.from} must be before --to ${flags.to}`);

  const { files, root } = await openCaptureLocation(flags.capture as string, storage);
  const baselineDir = flags.baseline as string;
  const baseline: Baseline = {
    statistics: await readBaselineFile<Statistics>(join(baselineDir, 'statistics.json')),
    constraints: await readBaselineFile<Constraints>(join(baselineDir, 'constraints.json')),
  };
  const captured = await readCapture(files, root, { from, to, endpoint: flags.endpoint, variant: flags.variant });
  const result = checkCapture(baseline, captured.rows);

  const out = flags.out as string;
  await mkdir(out, { recursive: true });
  await writeJson(join(out, 'constraint_violations.json'), { violations: result.violations });
  await writeJson(join(out, 'statistics.json'), result.statistics);
  const plotted: string[] = [];
  for (const violation of result.violations) {
    const drift = result.drift.get(violation.feature_name);
    if (violation.constraint_check_type !== 'baseline_drift_check' || !drift) continue;
    const file = `${violation.feature_name.replace(/[^\w.-]/g, '_')}.svg`;
    const title = `${violation.feature_name}: distance ${drift.distance.toFixed(3)} > limit ${drift.limit.toFixed(3)}`;
    await writeFile(join(out, file), comparisonSvg({ title, xLabel: `${violation.feature_name} (baseline buckets)`, bins: drift.bins }));
    plotted.push(file);
  }
  io.stdout(checkSummary(captured, result, plotted, out));
  if (captured.rows.length === 0) io.stderr(`inferd monitor: no captured rows in [${from.toISOString()}, ${to.toISOString()}); nothing was checked\n`);
}

/** The one place that turns --capture into files to read: a local directory or an object store. */
async function openCaptureLocation(location: string, storage: StorageSettings): Promise<{ files: CaptureFiles; root: string }> {
  if (location.startsWith('s3://')) {
    const store = openObjectStore(location, storage);
    const files: CaptureFiles = {
      async *list(prefix) {
        for await (const object of store.list(prefix)) yield object.uri;
      },
      readText: async (uri) => (await store.getBuffer(uri)).toString('utf8'),
    };
    return { files, root: location.replace(/\/+$/, '') };
  }
  const root = location.startsWith('file://') ? fileURLToPath(location) : location;
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw new Error(`--capture ${location} is not a directory`);
  return { files: localFiles, root };
}

function checkSummary(captured: CapturedRows, result: CheckResult, plotted: readonly string[], out: string): string {
  const skipped = [...captured.skipped].map(([reason, count]) => `${count} ${reason}`).join('; ');
  const lines = [
    `${captured.rows.length} rows from ${captured.records} records in ${captured.files} file${captured.files === 1 ? '' : 's'}` +
      ` (${captured.outsideWindow} records outside the window${skipped ? `; skipped: ${skipped}` : ''})`,
  ];
  if (result.violations.length === 0) {
    const [feature, drift] = [...result.drift].reduce<[string, { distance: number; limit: number }]>(
      (largest, entry) => (entry[1].distance > largest[1].distance ? entry : largest),
      ['-', { distance: 0, limit: 0 }],
    );
    lines.push(`no violations; largest drift distance ${drift.distance.toFixed(4)} (${feature}), limit ${drift.limit.toFixed(4)}`);
  } else {
    const table = [['feature', 'check', 'distance', 'limit']];
    for (const { feature_name, constraint_check_type } of result.violations) {
      const drift = constraint_check_type === 'baseline_drift_check' ? result.drift.get(feature_name) : undefined;
      table.push([feature_name, constraint_check_type, drift ? drift.distance.toFixed(4) : '-', drift ? drift.limit.toFixed(4) : '-']);
    }
    const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
    lines.push(...table.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()));
  }
  lines.push(`wrote constraint_violations.json, statistics.json${plotted.length ? ` and ${plotted.join(', ')}` : ''} to ${out}`);
  return `${lines.join('\n')}\n`;
}

const ISO_TIME = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d+)?)?(?<zone>Z|[+-]\d\d:?\d\d)?)?$/i;

/** A time without a zone is UTC, as capture hours and inference times are, not the host's local time. */
function parseTime(text: string, flag: string): Date {
  const match = ISO_TIME.exec(text);
  const time = new Date(match && match[1] && !match.groups?.zone ? `${text}Z` : text);
  if (!match || Number.isNaN(time.getTime())) throw new UsageError(`${flag} ${text} is not an ISO-8601 time (2024-05-01T10:00:00Z)`);
  return time;
}

async function readText(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`${flag}: cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function readBaselineFile<T extends { features: unknown }>(path: string): Promise<T> {
  const text = await readText(path, '--baseline');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as T).features)) {
    throw new Error(`${path} is not a Model Monitor baseline file (no "features" array); write one with 'inferd monitor baseline'`);
  }
  return parsed as T;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}
