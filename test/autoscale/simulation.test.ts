/**
 * The autoscaling simulator: the engine on small traces whose outcome can be worked out by hand,
 * the two input files' validation, the chart's XML, and the real CLI on a shipped trace.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { timelineSvg } from '../../src/autoscale/chart.js';
import { DEFAULT_TARGET_TRACKING } from '../../src/autoscale/policy.js';
import { runSimulateCommand } from '../../src/autoscale/simulate-cli.js';
import { parsePolicyFile, parseTrace } from '../../src/autoscale/simulation-files.js';
import { latencyProxyMs, simulate, type SimulatedPolicy, type SimulationSettings, type TracePoint } from '../../src/autoscale/simulation.js';
import { spawnServer } from '../child.js';
import { REPO_ROOT } from '../helper.js';

/** 100 requests/s per instance; the target, 3,000 a minute, is half of that. */
function policy(overrides: Partial<SimulatedPolicy> = {}): SimulatedPolicy {
  return {
    type: 'target-tracking',
    metric: 'invocations_per_instance_per_minute',
    targetValue: 3000,
    minCapacity: 1,
    maxCapacity: 10,
    ...DEFAULT_TARGET_TRACKING,
    metricPeriodS: 60,
    ...overrides,
  };
}

function settings(overrides: Partial<SimulationSettings> = {}): SimulationSettings {
  return { capacityRps: 100, serviceTimeMs: 10, sloMs: 100, instanceStartupS: 120, stepS: 10, initialCapacity: 1, policies: [policy()], ...overrides };
}

/** Rates held between the given times, with a step (two points at one time) at each change. */
function steps(...segments: [untilS: number, requestsPerS: number][]): TracePoint[] {
  const points: TracePoint[] = [];
  let fromS = 0;
  for (const [untilS, requestsPerS] of segments) {
    points.push({ atS: fromS, requestsPerS }, { atS: untilS, requestsPerS });
    fromS = untilS;
  }
  return points;
}

const servingAt = (timeline: ReturnType<typeof simulate>['timeline'], atS: number) => timeline.find((row) => row.atS === atS)!;

describe('simulate', () => {
  describe('a step in load: one scale-out, serving instanceStartupS after the decision', () => {
    // 40 → 200 requests/s at 600 s: the minute 600-660 averages 12,000 a minute, which needs 4 instances.
    const trace = steps([600, 40], [1800, 200]);
    const cases: { startupS: number; scaleOutAfterS: number; decidedAtS: number }[] = [
      { startupS: 0, scaleOutAfterS: 0, decidedAtS: 660 },
      { startupS: 120, scaleOutAfterS: 0, decidedAtS: 660 },
      { startupS: 300, scaleOutAfterS: 0, decidedAtS: 660 },
      { startupS: 300, scaleOutAfterS: 120, decidedAtS: 780 }, // AAS's alarm: three datapoints above
    ];
    for (const { startupS, scaleOutAfterS, decidedAtS } of cases) {
      it(`startup ${startupS} s, scale out after ${scaleOutAfterS} s → decided at ${decidedAtS} s, serving at ${decidedAtS + startupS} s`, () => {
        const { timeline, summary } = simulate(trace, settings({ instanceStartupS: startupS, policies: [policy({ scaleOutAfterS })] }));
        assert.deepEqual(
          summary.scaleEvents.map(({ atS, from, to, action, rule }) => ({ atS, from, to, action, rule })),
          [{ atS: decidedAtS, from: 1, to: 4, action: 'scale_out', rule: 'above_target' }],
        );
        const servingAtS = decidedAtS + startupS;
        if (startupS > 0) assert.deepEqual(pick(servingAt(timeline, servingAtS - 10)), { inService: 1, starting: 3 });
        assert.deepEqual(pick(servingAt(timeline, servingAtS)), { inService: 4, starting: 0 });
        assert.equal(servingAt(timeline, servingAtS).capacityRps, 400);
      });
    }
    const pick = ({ inService, starting }: { inService: number; starting: number }) => ({ inService, starting });
  });

  it('works out a small run by hand: instance-hours, backlog, waits, time over the SLO', () => {
    // 120 requests/s for an hour against 1 instance of 100/s; at 60 s the policy asks for 3
    // (7,200 a minute ÷ 3,000), which serve from 660 s. Until then the backlog grows 200 a step
    // (13,200); 3 instances drain it at 1,800 a step, oldest first.
    const { summary } = simulate(steps([3600, 120]), settings({ instanceStartupS: 600 }));
    assert.deepEqual(
      { ...summary, scaleEvents: summary.scaleEvents.length },
      {
        durationS: 3600,
        requests: 432_000,
        instanceHours: 2.97, // (60 s × 1 + 3,540 s × 3) ÷ 3,600
        peakInstances: 3,
        sloMs: 100,
        // Steps 0-72 end with a backlog; step 73 completes requests that waited 10 s.
        timeOverSloS: 740,
        // Of each step's 1,200: 200 in step 0; in steps 1-4 what the 1,000 a step leave after the
        // backlog (400 … 1,000); all of steps 5-71; 600 in step 72.
        requestsThatWaited: 200 + 400 + 600 + 800 + 1000 + 67 * 1200 + 600,
        peakBacklog: 13_200,
        // A wait grows 0.2 steps a step with the backlog, until 3 instances serve from step 66: 11 steps.
        longestWaitS: 110,
        scaleOuts: 1,
        scaleIns: 0,
        scaleEvents: 1,
      },
    );
  });

  it('loses no request: everything offered is served or still waiting at the end', () => {
    const trace = steps([600, 50], [900, 700], [2400, 20]);
    const { timeline, summary } = simulate(trace, settings());
    const served = timeline.reduce((sum, row) => sum + row.servedRps * 10, 0);
    assert.ok(Math.abs(served + timeline[timeline.length - 1]!.backlog - summary.requests) < 1e-3);
  });

  describe('cooldowns', () => {
    for (const scaleInCooldownS of [60, 300, 600]) {
      it(`scale-ins ${scaleInCooldownS} s apart, one instance at a time`, () => {
        const { summary } = simulate(steps([7200, 0]), settings({ initialCapacity: 5, policies: [policy({ scaleInCooldownS })] }));
        assert.deepEqual(
          summary.scaleEvents.map(({ atS, to }) => ({ atS, to })),
          [4, 3, 2, 1].map((to, i) => ({ atS: 60 + i * scaleInCooldownS, to })),
        );
      });
    }

    for (const scaleOutCooldownS of [0, 300, 900]) {
      it(`no scale-in within the ${scaleOutCooldownS} s scale-out cooldown`, () => {
        // A minute of 200/s (scale out to 4 at 60 s), then nothing.
        const { summary } = simulate(steps([60, 200], [3600, 0]), settings({ policies: [policy({ scaleOutCooldownS, scaleInCooldownS: 0 })] }));
        const [out, firstIn] = summary.scaleEvents;
        assert.deepEqual({ atS: out?.atS, to: out?.to }, { atS: 60, to: 4 });
        assert.equal(firstIn?.action, 'scale_in');
        assert.equal(firstIn.atS, 60 + Math.max(60, scaleOutCooldownS));
      });
    }
  });

  it('scales an async backlog to zero, and a request at zero brings one instance back', () => {
    // At most one instance, so the only scale-out is the one from zero.
    const backlogPolicy = policy({ type: 'backlog', metric: 'async_backlog_per_instance', targetValue: 5, minCapacity: 0, maxCapacity: 1 });
    // 5/s, nothing for 40 minutes, then 5/s again.
    const { timeline, summary } = simulate(steps([600, 5], [3000, 0], [3600, 5]), settings({ policies: [backlogPolicy] }));
    assert.deepEqual(
      summary.scaleEvents.map(({ atS, from, to, rule }) => ({ atS, from, to, rule })),
      [
        { atS: 660, from: 1, to: 0, rule: 'below_target' },
        { atS: 3060, from: 0, to: 1, rule: 'backlog_without_capacity' },
      ],
    );
    assert.equal(servingAt(timeline, 2000).inService, 0);
    assert.equal(servingAt(timeline, 3170).inService, 0);
    assert.equal(servingAt(timeline, 3180).inService, 1);
    // The 18 steps × 50 requests that came at zero waited 180 s down to 10 s for the instance; it
    // serves them and 50 new ones at once: a mean wait of 90 s, at ρ 0.95 (200 ms).
    assert.equal(servingAt(timeline, 3170).latencyProxyMs, null);
    assert.ok(Math.abs(servingAt(timeline, 3180).latencyProxyMs! - 90_200) < 1e-6);
    assert.equal(timeline[timeline.length - 1]!.backlog, 0);
  });

  describe('several policies on one variant', () => {
    it('applies the largest decision', () => {
      const { summary } = simulate(steps([600, 200]), settings({ policies: [policy(), policy({ targetValue: 1500 })] }));
      assert.deepEqual(
        summary.scaleEvents.map(({ to, policy }) => ({ to, policy })),
        [{ to: 8, policy: 1 }],
      );
    });

    it('scales in only when every policy would', () => {
      const policies = [policy(), policy({ disableScaleIn: true })];
      const { summary } = simulate(steps([60, 200], [3600, 0]), settings({ policies }));
      assert.deepEqual(
        summary.scaleEvents.map(({ action }) => action),
        ['scale_out'],
      );
    });

    it('lets a high-resolution policy scale out between the other policy\'s datapoints', () => {
      const concurrency = policy({ metric: 'concurrent_requests_per_instance', targetValue: 1, metricPeriodS: 10 });
      const { summary } = simulate(steps([600, 20], [1200, 300]), settings({ policies: [policy(), concurrency] }));
      const first = summary.scaleEvents[0];
      assert.equal(first?.policy, 1);
      assert.equal(first.atS, 610);
    });
  });

  describe('latencyProxyMs: M/M/1 response time, capped, plus the backlog wait', () => {
    const cases: [utilization: number, waitMs: number, expected: number][] = [
      [0, 0, 10],
      [0.5, 0, 20],
      [0.9, 0, 100],
      [1, 0, 200], // capped at ρ = 0.95
      [0.5, 1000, 1020],
    ];
    for (const [utilization, waitMs, expected] of cases) {
      it(`ρ ${utilization}, ${waitMs} ms in the backlog → ${expected} ms`, () => {
        assert.ok(Math.abs(latencyProxyMs(10, utilization, waitMs) - expected) < 1e-9);
      });
    }
  });
});

const invalid = (message: RegExp) => ({ name: 'InferdError', code: 'INFERD_ERR_CONFIG_INVALID', message });

describe('parseTrace', () => {
  it('reads steps, ramps, CRLF, a BOM and blank lines', () => {
    const text = '\uFEFFat_s,requests_per_s\r\n0,10\r\n\r\n60,10\r\n60,40\r\n120,0.5\r\n';
    assert.deepEqual(parseTrace(text, 't.csv'), [
      { atS: 0, requestsPerS: 10 },
      { atS: 60, requestsPerS: 10 },
      { atS: 60, requestsPerS: 40 },
      { atS: 120, requestsPerS: 0.5 },
    ]);
  });

  const header = 'at_s,requests_per_s\n';
  const cases: [name: string, text: string, message: RegExp][] = [
    ['an empty file', '', /t\.csv is empty/],
    ['another header', 'time,rate\n0,1\n60,1\n', /t\.csv line 1: the header must be "at_s,requests_per_s", not "time,rate"/],
    ['a time that is not a number', `${header}0,1\nsoon,2\n`, /line 3: at_s "soon" is not a number/],
    ['a negative rate', `${header}0,1\n60,-5\n`, /line 3: requests_per_s "-5" is not a number ≥ 0/],
    ['an empty rate', `${header}0,\n60,1\n`, /line 2: requests_per_s "" is not a number/],
    ['a missing field', `${header}0,1\n60\n`, /line 3: expected 2 fields/],
    ['time going back', `${header}0,1\n60,1\n30,1\n`, /line 4: at_s 30 is before 60 on line 3/],
    ['three rows at one time', `${header}0,1\n60,1\n60,2\n60,3\n`, /line 5: a third row at 60 s/],
    ['one row', `${header}0,1\n`, /needs at least two rows/],
    ['no time spanned', `${header}0,1\n0,2\n`, /needs at least two rows spanning some time/],
  ];
  for (const [name, text, message] of cases) {
    it(`refuses ${name}`, () => assert.throws(() => parseTrace(text, 't.csv'), invalid(message)));
  }

  it('lists every bad row, not only the first', () => {
    assert.throws(() => parseTrace(`${header}0,1\nx,1\n60,y\n`, 't.csv'), invalid(/line 3:[^\n]*\n\s+line 4:/));
  });
});

describe('parsePolicyFile', () => {
  const valid = {
    capacityRps: 100,
    capacitySource: 'bench/results/x.json',
    serviceTimeMs: 10,
    sloMs: 100,
    instanceStartupS: 300,
    initialCapacity: 1,
    policies: [{ type: 'target-tracking', metric: 'concurrent_requests_per_instance', targetValue: 5, minCapacity: 1, maxCapacity: 4 }],
  };
  const withPolicy = (changes: Record<string, unknown>) => JSON.stringify({ ...valid, policies: [{ ...valid.policies[0], ...changes }] });

  it('fills the defaults: AAS cooldowns, the metric\'s period, 10 s steps', () => {
    const file = parsePolicyFile(JSON.stringify(valid), 'p.json');
    assert.equal(file.stepS, 10);
    assert.deepEqual(file.policies[0], { ...valid.policies[0], ...DEFAULT_TARGET_TRACKING, metricPeriodS: 10 });
    assert.equal(parsePolicyFile(withPolicy({ metric: 'invocations_per_instance_per_minute' }), 'p.json').policies[0]!.metricPeriodS, 60);
  });

  const cases: [name: string, text: string, message: RegExp][] = [
    ['what is not JSON', '{"capacityRps": ', /p\.json is not valid JSON/],
    ['a missing capacity', JSON.stringify({ ...valid, capacityRps: undefined }), /p\.json is invalid:\n\s+capacityRps:/],
    ['a misspelt key', withPolicy({ targetValu: 5 }), /policies\.0: .*targetValu/],
    ['no policy', JSON.stringify({ ...valid, policies: [] }), /policies:/],
    ['min above max', withPolicy({ minCapacity: 5 }), /policies\.0\.minCapacity: must be at most maxCapacity \(4\)/],
    ['a backlog policy on invocations', withPolicy({ type: 'backlog', metric: 'invocations_per_instance_per_minute' }), /policies\.0\.metric: async_backlog_per_instance goes with type "backlog"/],
    ['real-time scaled to zero', withPolicy({ minCapacity: 0 }), /policies\.0\.minCapacity: must be at least 1: only a backlog policy scales to zero/],
    ['a period that is no multiple of the step', withPolicy({ metricPeriodS: 15 }), /policies\.0\.metricPeriodS: must be a multiple of stepS \(10\)/],
    ['an initial capacity out of bounds', JSON.stringify({ ...valid, initialCapacity: 6 }), /initialCapacity: must be within policy 0's \[1, 4\]/],
  ];
  for (const [name, text, message] of cases) {
    it(`refuses ${name}`, () => assert.throws(() => parsePolicyFile(text, 'p.json'), invalid(message)));
  }

  for (const name of ['sagemaker-invocations', 'sagemaker-concurrency', 'async-backlog']) {
    it(`accepts bench/policies/${name}.json`, async () => {
      const path = join(REPO_ROOT, 'bench/policies', `${name}.json`);
      assert.ok(parsePolicyFile(await readFile(path, 'utf8'), path).policies.length > 0);
    });
  }
});

/** Well-formed enough for an SVG viewer: balanced tags, one root, no stray `<` or `&`. */
function assertWellFormedXml(xml: string): void {
  const token = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos);)/gi;
  const open: string[] = [];
  let roots = 0;
  for (const match of xml.matchAll(token)) {
    const [text, closing, name, , selfClosing] = match;
    if (text.startsWith('<!--') || text.startsWith('<?')) continue;
    assert.ok(name !== undefined, `stray ${JSON.stringify(text)} at ${match.index}: ${xml.slice(match.index, match.index + 60)}`);
    if (open.length === 0) roots++;
    if (closing) assert.equal(open.pop(), name, `</${name}> closes the wrong element at ${match.index}`);
    else if (!selfClosing) open.push(name);
  }
  assert.deepEqual(open, [], 'unclosed elements');
  assert.equal(roots, 1, 'one root element');
}

describe('timelineSvg', () => {
  it('escapes text and marks every scale event', () => {
    const { timeline, summary } = simulate(steps([600, 40], [1800, 200], [3600, 10]), settings());
    const svg = timelineSvg({ title: 'a < b & "c"', subtitle: "it's", stepS: 10, sloMs: 100, timeline, scaleEvents: summary.scaleEvents });
    assertWellFormedXml(svg);
    assert.match(svg, /a &#60; b &#38; &#34;c&#34;/);
    assert.equal(svg.match(/<title>/g)?.length, summary.scaleEvents.length);
    assert.ok(summary.scaleEvents.length >= 2);
  });
});

describe('inferd autoscale simulate', () => {
  let out: string;
  before(async () => {
    out = await mkdtemp(join(tmpdir(), 'inferd-autoscale-'));
    // A step so small that a day of trace would be 691,200 steps (gigabytes of timeline).
    const policy = JSON.parse(await readFile(join(REPO_ROOT, 'bench/policies/sagemaker-invocations.json'), 'utf8'));
    await writeFile(join(out, 'tiny-step.json'), JSON.stringify({ ...policy, stepS: 0.125 }));
  });
  after(() => rm(out, { recursive: true, force: true }));

  it('writes the chart, the summary and its JSON for a shipped trace', async () => {
    const args = ['--trace', 'bench/traces/spike.csv', '--policy', 'bench/policies/sagemaker-invocations.json', '--out', out];
    const child = await spawnServer(['dist/src/main.js', 'autoscale', 'simulate', ...args], {});
    const { code } = await child.exited;
    assert.equal(code, 0, child.output());
    assert.match(child.output(), /wrote spike\.svg, spike\.md and spike\.json/);

    assertWellFormedXml(await readFile(join(out, 'spike.svg'), 'utf8'));
    const report = JSON.parse(await readFile(join(out, 'spike.json'), 'utf8'));
    assert.equal(report.capacityRps, 5128.7);
    assert.match(report.capacitySource, /2026-11-23T0211-vm\.json/);
    for (const field of ['instanceHours', 'timeOverSloS', 'scaleOuts', 'scaleIns', 'peakInstances', 'requestsThatWaited', 'scaleEvents']) {
      assert.ok(field in report.summary, `summary.${field}`);
    }
    assert.ok(report.summary.scaleOuts >= 1);
    assert.match(await readFile(join(out, 'spike.md'), 'utf8'), /\| instance-hours \| [\d.]+ \|/);
  });

  const file = (path: string) => join(REPO_ROOT, path);
  const cases: [name: string, argv: string[], code: number, message: RegExp][] = [
    ['a missing --policy', ['simulate', '--trace', file('bench/traces/spike.csv')], 2, /--policy is required\n\nUsage:/],
    ['an unknown subcommand', ['replay'], 2, /unknown autoscale command 'replay'/],
    ['a trace that does not exist', ['simulate', '--trace', file('no/such.csv'), '--policy', file('bench/policies/async-backlog.json')], 1, /\[INFERD_ERR_CONFIG_INVALID\] cannot read the trace file \S+no\/such\.csv/],
    ['a step too small for the trace', ['simulate', '--trace', file('bench/traces/daily.csv'), '--policy', 'TINY_STEP'], 1, /stepS 0\.125 makes 691200 steps of the trace, more than 604800/],
    ['a policy file that is not one', ['simulate', '--trace', file('bench/traces/spike.csv'), '--policy', file('bench/traces/daily.csv')], 1, /bench\/traces\/daily\.csv is not valid JSON/],
  ];
  for (const [name, argv, expectedCode, message] of cases) {
    it(`exits ${expectedCode} on ${name}`, async () => {
      let stderr = '';
      const args = argv.map((arg) => (arg === 'TINY_STEP' ? join(out, 'tiny-step.json') : arg));
      const code = await runSimulateCommand([...args, '--out', out], { stdout: () => {}, stderr: (text) => (stderr += text) });
      assert.equal(code, expectedCode);
      assert.match(stderr, message);
    });
  }
});
