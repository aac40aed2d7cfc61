/**
 * The acceptance test: a baseline from churn-train.csv, then the 200 rows of churn-requests.csv
 * captured as SageMaker would write them, checked with and without a shifted feature.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Violation } from '../../src/monitor/check.js';
import { runMonitorCommand } from '../../src/monitor/cli.js';
import type { Statistics } from '../../src/monitor/statistics.js';

const SHARED_MODELS = new URL('../../../test/fixtures/', import.meta.url);
const TRAIN_CSV = fileURLToPath(new URL('churn-train.csv', SHARED_MODELS));
const REQUESTS_CSV = fileURLToPath(new URL('churn-requests.csv', SHARED_MODELS));

const ENDPOINT = 'churn';
const VARIANT = 'AllTraffic';
const FROM = '2024-05-01T10:00:00Z';
const TO = '2024-05-01T12:00:00Z';

async function monitor(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runMonitorCommand(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

interface CapturedRequest {
  readonly time: Date;
  readonly rows: readonly (readonly number[])[];
  readonly json: boolean;
}

/** Requests of 1, 4, 1, 7 and 3 rows in turn, every third as JSON, spread over 10:00-12:00 UTC. */
function requestsOf(rows: readonly (readonly number[])[]): CapturedRequest[] {
  const sizes = [1, 4, 1, 7, 3];
  const requests: CapturedRequest[] = [];
  for (let start = 0, i = 0; start < rows.length; start += sizes[i % sizes.length] as number, i++) {
    const time = new Date(Date.parse(FROM) + i * 97_000);
    requests.push({ time, rows: rows.slice(start, start + (sizes[i % sizes.length] as number)), json: i % 3 === 2 });
  }
  return requests;
}

/** One record exactly as SageMaker's data capture writes it. */
function captureRecord({ time, rows, json }: CapturedRequest): string {
  const endpointInput = json
    ? { observedContentType: 'application/json', mode: 'INPUT', data: JSON.stringify({ instances: rows }), encoding: 'JSON' }
    : { observedContentType: 'text/csv', mode: 'INPUT', data: `${rows.map((row) => row.join(',')).join('\n')}\n`, encoding: 'CSV' };
  return JSON.stringify({
    captureData: {
      endpointInput,
      endpointOutput: { observedContentType: 'text/csv; charset=utf-8', mode: 'OUTPUT', data: rows.map(() => '0').join('\n'), encoding: 'CSV' },
    },
    eventMetadata: { eventId: randomUUID(), inferenceTime: time.toISOString().replace('.000Z', 'Z') },
    eventVersion: '0',
  });
}

/** `<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/MM-SS-mmm-uuid.jsonl`, a file per hour folder and (hour, minute / 20). */
async function writeCapture(root: string, requests: readonly CapturedRequest[], folderHour = (r: CapturedRequest) => r.time): Promise<void> {
  const files = new Map<string, string[]>();
  for (const request of requests) {
    const iso = folderHour(request).toISOString();
    const folder = join(root, ENDPOINT, VARIANT, iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10), iso.slice(11, 13));
    const minute = String(Math.floor(request.time.getUTCMinutes() / 20) * 20).padStart(2, '0');
    const file = join(folder, `${minute}-00-000-${folder.length % 7}c0ffee-0000-4000-8000-000000000000.jsonl`);
    files.set(file, [...(files.get(file) ?? []), captureRecord(request)]);
  }
  for (const [file, lines] of files) {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, `${lines.join('\n')}\n`, { flag: 'a' });
  }
}

describe('inferd monitor on the churn data', () => {
  let work: string;
  let baselineDir: string;
  let statistics: Statistics;
  let requestRows: number[][];

  const featureIndex = (name: string) => statistics.features.findIndex((feature) => feature.name === name);
  const shifted = (name: string) => {
    const column = featureIndex(name);
    const shift = 3 * (statistics.features[column]?.numerical_statistics?.std_dev as number);
    return requestRows.map((row) => row.map((value, i) => (i === column ? value + shift : value)));
  };
  async function check(rows: readonly (readonly number[])[], name: string) {
    const capture = join(work, name, 'capture');
    const out = join(work, name, 'report');
    await writeCapture(capture, requestsOf(rows));
    const run = await monitor('check', '--capture', capture, '--baseline', baselineDir, '--from', FROM, '--to', TO, '--out', out, '--endpoint', ENDPOINT, '--variant', VARIANT);
    assert.equal(run.code, 0, run.stderr);
    const { violations } = JSON.parse(await readFile(join(out, 'constraint_violations.json'), 'utf8')) as { violations: Violation[] };
    return { ...run, capture, out, violations };
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'inferd-monitor-'));
    baselineDir = join(work, 'baseline');
    const run = await monitor('baseline', '--data', TRAIN_CSV, '--out', baselineDir, '--label-column', 'churn');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /5000 rows, 20 features .*label column 'churn' left out/);
    statistics = JSON.parse(await readFile(join(baselineDir, 'statistics.json'), 'utf8')) as Statistics;
    requestRows = (await readFile(REQUESTS_CSV, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => line.split(',').map(Number));
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('baselines the 20 features without the label', async () => {
    assert.equal(statistics.dataset.item_count, 5000);
    assert.deepEqual(statistics.features.slice(0, 4).map((f) => [f.name, f.inferred_type]), [
      ['tenure', 'Integral'],
      ['monthly_charges', 'Fractional'],
      ['support_calls', 'Integral'],
      ['f3', 'Fractional'],
    ]);
    assert.equal(statistics.features.length, 20);
    const constraints = JSON.parse(await readFile(join(baselineDir, 'constraints.json'), 'utf8')) as { features: unknown[] };
    assert.equal(constraints.features.length, 20);
  });

  it('finds no violation in requests from the training distribution, sent as CSV and JSON', async () => {
    const { violations, stdout, out } = await check(requestRows, 'unchanged');
    assert.deepEqual(violations, []);
    assert.ok(stdout.startsWith(`200 rows from ${requestsOf(requestRows).length} records in `), stdout);
    assert.match(stdout, /no violations; largest drift distance 0\.1\d+ \(f19\), limit 0\.14\d+/);
    const captured = JSON.parse(await readFile(join(out, 'statistics.json'), 'utf8')) as Statistics;
    assert.equal(captured.dataset.item_count, 200);
  });

  it('reports drift in exactly the feature shifted by 3 standard deviations, with a plot', async () => {
    const { violations, stdout, out } = await check(shifted('monthly_charges'), 'shifted');
    assert.deepEqual(
      violations.map((v) => [v.feature_name, v.constraint_check_type]),
      [['monthly_charges', 'baseline_drift_check']],
    );
    assert.match(stdout, /monthly_charges\s+baseline_drift_check\s+0\.8\d+\s+0\.14\d+/);
    const svg = await readFile(join(out, 'monthly_charges.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    for (const text of ['monthly_charges: distance 0.8', '&#62; 120', 'baseline', 'captured', 'fraction of values']) assert.ok(svg.includes(text), text);
  });

  it('also flags an integer feature shifted to fractional values as mistyped', async () => {
    const { violations, out } = await check(shifted('support_calls'), 'mistyped');
    assert.deepEqual(
      violations.map((v) => [v.feature_name, v.constraint_check_type]),
      [
        ['support_calls', 'data_type_check'],
        ['support_calls', 'baseline_drift_check'],
      ],
    );
    assert.ok(existsSync(join(out, 'support_calls.svg')));
  });

  it('ignores records outside [--from, --to), wherever they are filed', async () => {
    const capture = join(work, 'window', 'capture');
    const out = join(work, 'window', 'report');
    await writeCapture(capture, requestsOf(requestRows));
    // Drifted traffic just before, just at the end of, and after the window, some in its hour folders.
    const drifted = requestsOf(shifted('tenure'));
    const at = (iso: string) => drifted.map((request) => ({ ...request, time: new Date(iso) }));
    await writeCapture(capture, at('2024-05-01T09:59:59Z'));
    await writeCapture(capture, at('2024-05-01T09:59:59Z'), () => new Date(FROM));
    await writeCapture(capture, at(TO), () => new Date('2024-05-01T11:00:00Z'));
    await writeCapture(capture, at('2024-05-01T12:30:00Z'));

    const fromWithoutZone = FROM.replace('Z', '');
    const window = await monitor('check', '--capture', pathToFileURL(capture).href, '--baseline', baselineDir, '--from', fromWithoutZone, '--to', TO, '--out', out);
    assert.equal(window.code, 0, window.stderr);
    // Only the records filed in the window's hour folders are read, and then dropped by time.
    const records = requestsOf(requestRows).length;
    assert.match(window.stdout, new RegExp(`^200 rows from ${records} records in \\d+ files \\(${2 * records} records outside the window\\)`));
    assert.match(window.stdout, /no violations/);

    const wider = await monitor('check', '--capture', capture, '--baseline', baselineDir, '--from', '2024-05-01T09:00:00Z', '--to', '2024-05-01T13:00:00Z', '--out', out);
    assert.match(wider.stdout, /tenure\s+baseline_drift_check/);
  });
});

describe('inferd monitor usage', () => {
  const checkArgs = (capture: string) => ['check', '--capture', capture, '--baseline', 'b', '--from', FROM, '--to', TO, '--out', 'o'];

  it('rejects missing and unknown options, bad times and unknown commands with the usage', async () => {
    for (const argv of [
      ['check', '--capture', 'c'],
      ['baseline', '--data', 'x.csv', '--out', 'o', '--bogus', '1'],
      ['check', '--capture', 'c', '--baseline', 'b', '--from', 'noon', '--to', TO, '--out', 'o'],
      ['check', '--capture', 'c', '--baseline', 'b', '--from', 'May 1, 2024', '--to', TO, '--out', 'o'],
      ['check', '--capture', 'c', '--baseline', 'b', '--from', TO, '--to', FROM, '--out', 'o'],
      ['drift'],
    ]) {
      const run = await monitor(...argv);
      assert.equal(run.code, 2, argv.join(' '));
      assert.match(run.stderr, /^inferd monitor: .*\n\nUsage:/, argv.join(' '));
    }
  });

  it('fails with a clear message on an unreadable input, and on a missing label column', async () => {
    const missing = await monitor('baseline', '--data', join(tmpdir(), 'no-such-file.csv'), '--out', tmpdir());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--data: cannot read .*no-such-file\.csv/);
    const label = await monitor('baseline', '--data', TRAIN_CSV, '--out', tmpdir(), '--label-column', 'target');
    assert.equal(label.code, 2);
    assert.match(label.stderr, /--label-column target is not a column/);
    const capture = await monitor(...checkArgs(join(tmpdir(), 'no-such-capture')));
    assert.equal(capture.code, 1);
  });
});
