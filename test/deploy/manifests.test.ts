/**
 * The autoscaling policies in deploy/: every YAML and JSON file parses; the manifests keep the
 * promises their comments make (probes on /ping, a drain that fits the grace period, hysteresis,
 * scale to zero over Redis); the targets are the ones deploy/README.md derives from the
 * benchmark; apply.sh makes the AWS CLI calls it should (against a stub `aws`); and every
 * `inferd_*` metric named anywhere in deploy/ is one a real server exposes on /metrics.
 * No network and no cluster.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load-config.js';
import { ENV_VARS, type Config } from '../../src/config/schema.js';
import { MODELS, REPO_ROOT, invoke, startServer, type TestServer } from '../helper.js';

const run = promisify(execFile);

const DEPLOY = `${REPO_ROOT}deploy/`;
const SAGEMAKER = `${DEPLOY}sagemaker/`;
const APPLY = `${SAGEMAKER}apply.sh`;
const PROMTOOL = `${REPO_ROOT}.tools/bin/promtool`;

/** The measurement the targets come from, and SageMaker's load-testing safety factor. */
const BENCH = { file: `${REPO_ROOT}bench/results/2026-11-23T0211-vm.json`, scenario: 'churn-csv', target: 'inferd-batching' };
const SAFETY_FACTOR = 0.5;

type Node = Record<string, unknown>;

/** `value` at `path` (keys and array indexes), asserting every step exists. */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const [i, key] of path.entries()) {
    const where = path.slice(0, i + 1).join('.');
    assert.ok(current !== null && typeof current === 'object', `${where}: parent is not a mapping or list`);
    current = (current as Record<string | number, unknown>)[key];
    assert.notEqual(current, undefined, `${where} is missing`);
  }
  return current;
}
const node = (value: unknown, ...path: (string | number)[]): Node => {
  const found = at(value, ...path);
  assert.ok(found !== null && typeof found === 'object' && !Array.isArray(found), `${path.join('.')} is a mapping`);
  return found as Node;
};
const list = (value: unknown, ...path: (string | number)[]): unknown[] => {
  const found = at(value, ...path);
  assert.ok(Array.isArray(found), `${path.join('.')} is a list`);
  return found;
};
const text = (value: unknown, ...path: (string | number)[]): string => {
  const found = at(value, ...path);
  assert.equal(typeof found, 'string', `${path.join('.')} is a string`);
  return found as string;
};
const num = (value: unknown, ...path: (string | number)[]): number => {
  const found = at(value, ...path);
  assert.equal(typeof found, 'number', `${path.join('.')} is a number`);
  return found as number;
};

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name)).sort();
}

interface Resource {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
  readonly doc: Node;
}

/** Every document of every YAML file under deploy/, asserting each parses without a warning. */
async function loadYaml(): Promise<Map<string, Node[]>> {
  const byFile = new Map<string, Node[]>();
  for (const file of (await filesUnder(DEPLOY)).filter((f) => /\.ya?ml$/.test(f))) {
    const docs = parseAllDocuments(await readFile(file, 'utf8'));
    const parsed: Node[] = [];
    for (const doc of docs) {
      assert.deepEqual(doc.errors.map(String), [], `${file} parses`);
      assert.deepEqual(doc.warnings.map(String), [], `${file} parses without warnings`);
      const value: unknown = doc.toJS();
      if (value === null) continue;
      assert.ok(typeof value === 'object' && !Array.isArray(value), `${file}: every document is a mapping`);
      parsed.push(value as Node);
    }
    assert.ok(parsed.length > 0, `${file} holds a document`);
    byFile.set(file, parsed);
  }
  return byFile;
}

function resources(byFile: Map<string, Node[]>): Resource[] {
  return [...byFile].flatMap(([file, docs]) =>
    docs.filter((doc) => 'kind' in doc).map((doc) => ({ file, kind: text(doc, 'kind'), name: text(doc, 'metadata', 'name'), doc })),
  );
}

function find(all: readonly Resource[], kind: string, name: string): Resource {
  const found = all.filter((r) => r.kind === kind && r.name === name);
  assert.equal(found.length, 1, `exactly one ${kind} ${name} under deploy/`);
  return found[0]!;
}

const readJson = async (file: string): Promise<Node> => JSON.parse(await readFile(`${SAGEMAKER}${file}`, 'utf8')) as Node;

/** The targets, recomputed from the benchmark exactly as deploy/README.md derives them. */
async function derivedTargets(): Promise<{ invocationsPerMinute: number; concurrency: number }> {
  const bench = JSON.parse(await readFile(BENCH.file, 'utf8')) as unknown;
  const scenario = list(bench, 'scenarios').find((s) => text(s, 'id') === BENCH.scenario);
  assert.ok(scenario, `${BENCH.scenario} is in the benchmark`);
  const target = list(scenario, 'targets').find((t) => text(t, 'id') === BENCH.target);
  assert.ok(target, `${BENCH.target} ran in ${BENCH.scenario}`);
  // A peak only counts when nothing failed at it.
  assert.equal(at(target, 'ok'), true);
  assert.equal(num(target, 'load', 'errors') + num(target, 'load', 'non2xx') + num(target, 'load', 'timeouts'), 0);
  const peakPerS = num(target, 'load', 'requestsPerS');
  return {
    // Requests a minute per instance, rounded down to a whole thousand: a ceiling is never rounded up.
    invocationsPerMinute: Math.floor((peakPerS * SAFETY_FACTOR * 60) / 1000) * 1000,
    // Each autocannon connection holds one request (no pipelining): the connections were in flight at the peak.
    concurrency: num(scenario, 'connections') * SAFETY_FACTOR,
  };
}

/** A container's environment as Kubernetes resolves it (`$(VAR)` from variables defined before). */
function containerEnv(container: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of list(container, 'env')) {
    const name = text(entry, 'name');
    const value = at(entry, 'value');
    // Kubernetes takes only strings here; an unquoted 25 is rejected at apply time.
    assert.equal(typeof value, 'string', `env ${name} is a string`);
    env[name] = (value as string).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, ref: string) => env[ref] ?? whole);
  }
  return env;
}

/** The configuration inferd would run with in that container (and a proof that it loads). */
const configOf = (env: Record<string, string>): Config => loadConfig({ env: { ...env, INFERD_MODEL_DIR: MODELS.forest } });

function preStopSleepS(container: unknown): number {
  const preStop = node(container, 'lifecycle', 'preStop');
  if ('sleep' in preStop) return num(preStop, 'sleep', 'seconds');
  const command = list(preStop, 'exec', 'command');
  assert.equal(command[0], 'sleep', 'preStop sleeps');
  const seconds = Number(command[1]);
  assert.ok(Number.isFinite(seconds) && seconds > 0, `preStop sleeps a positive number of seconds, got ${String(command[1])}`);
  return seconds;
}

/** A probe's port as a number, resolving a named container port. */
function probePort(container: unknown, probe: string): number {
  const port = at(container, probe, 'httpGet', 'port');
  if (typeof port === 'number') return port;
  const named = list(container, 'ports').find((p) => at(p, 'name') === port);
  assert.ok(named, `${probe} port ${String(port)} names a container port`);
  return num(named, 'containerPort');
}

const labelsMatch = (selector: Node, labels: Node) => Object.entries(selector).every(([key, value]) => labels[key] === value);

let byFile: Map<string, Node[]>;
let all: Resource[];
let targets: Awaited<ReturnType<typeof derivedTargets>>;

before(async () => {
  byFile = await loadYaml();
  all = resources(byFile);
  targets = await derivedTargets();
});

describe('deploy/: files', () => {
  it('parses every YAML and JSON file', async () => {
    const files = await filesUnder(DEPLOY);
    const json = files.filter((f) => f.endsWith('.json'));
    const jsonTexts = new Map(await Promise.all(json.map(async (f) => [f, await readFile(f, 'utf8')] as const)));
    for (const file of json) assert.doesNotThrow(() => JSON.parse(jsonTexts.get(file)!), file);
    assert.ok(json.length >= 5, 'the SageMaker policies are there');
    assert.ok(byFile.size >= 6, 'the Kubernetes manifests are there');
  });

  it('gives every Kubernetes resource an apiVersion, a kind, a name and the inferd namespace', () => {
    for (const [file, docs] of byFile) {
      if (file.endsWith('prometheus-adapter-rules.yaml')) continue; // Helm values, not a resource
      for (const doc of docs) {
        assert.match(text(doc, 'apiVersion'), /^[a-z0-9.]+(\/v[0-9a-z]+)?$/, file);
        text(doc, 'kind');
        text(doc, 'metadata', 'name');
        // The PromQL queries filter on this namespace.
        assert.equal(text(doc, 'metadata', 'namespace'), 'inferd', `${file}: ${text(doc, 'metadata', 'name')}`);
      }
    }
  });

  it('apply.sh is valid bash', async () => {
    await run('bash', ['-n', APPLY]);
  });

  it('documents the derivation in deploy/README.md with the numbers the policies use', async () => {
    const readme = await readFile(`${DEPLOY}README.md`, 'utf8');
    assert.ok(readme.includes('bench/results/2026-11-23T0211-vm.json'));
    assert.ok(readme.includes(targets.invocationsPerMinute.toLocaleString('en-US')), `README gives ${targets.invocationsPerMinute}`);
    assert.ok(readme.includes(`64 in flight at that peak × ${SAFETY_FACTOR}`));
  });
});

describe('deploy/sagemaker: Application Auto Scaling', () => {
  const TARGET_TRACKING_KEYS = ['TargetValue', 'PredefinedMetricSpecification', 'CustomizedMetricSpecification', 'ScaleOutCooldown', 'ScaleInCooldown', 'DisableScaleIn'];
  const STEP_KEYS = ['AdjustmentType', 'StepAdjustments', 'MinAdjustmentMagnitude', 'Cooldown', 'MetricAggregationType'];
  const ALARM_KEYS = [
    'AlarmName', 'AlarmDescription', 'ActionsEnabled', 'OKActions', 'AlarmActions', 'InsufficientDataActions', 'MetricName', 'Namespace', 'Statistic',
    'ExtendedStatistic', 'Dimensions', 'Period', 'Unit', 'EvaluationPeriods', 'DatapointsToAlarm', 'Threshold', 'ComparisonOperator', 'TreatMissingData',
    'EvaluateLowSampleCountPercentile', 'Metrics', 'Tags', 'ThresholdMetricId',
  ];
  const onlyKeys = (value: Node, allowed: readonly string[], what: string) =>
    assert.deepEqual(Object.keys(value).filter((k) => !allowed.includes(k)), [], `${what} has only fields the API knows`);

  it('tracks SageMakerVariantInvocationsPerInstance at peak requests/s x 0.5 x 60, rounded down to a thousand', async () => {
    const policy = await readJson('realtime-invocations-per-instance.json');
    onlyKeys(policy, TARGET_TRACKING_KEYS, 'the policy');
    assert.equal(text(policy, 'PredefinedMetricSpecification', 'PredefinedMetricType'), 'SageMakerVariantInvocationsPerInstance');
    assert.equal(targets.invocationsPerMinute, 153_000);
    assert.equal(num(policy, 'TargetValue'), targets.invocationsPerMinute);
  });

  it('tracks the high-resolution ConcurrentRequestsPerModel at the connections of the peak x 0.5', async () => {
    const policy = await readJson('realtime-concurrent-requests.json');
    onlyKeys(policy, TARGET_TRACKING_KEYS, 'the policy');
    assert.equal(text(policy, 'PredefinedMetricSpecification', 'PredefinedMetricType'), 'SageMakerVariantConcurrentRequestsPerModelHighResolution');
    assert.equal(targets.concurrency, 32);
    assert.equal(num(policy, 'TargetValue'), targets.concurrency);
  });

  it('scales in more slowly than out', async () => {
    for (const file of ['realtime-invocations-per-instance.json', 'realtime-concurrent-requests.json', 'async-backlog-per-instance.json']) {
      const policy = await readJson(file);
      assert.ok(num(policy, 'ScaleInCooldown') > num(policy, 'ScaleOutCooldown'), file);
    }
  });

  it('tracks ApproximateBacklogSizePerInstance for async endpoints, target 5', async () => {
    const policy = await readJson('async-backlog-per-instance.json');
    onlyKeys(policy, TARGET_TRACKING_KEYS, 'the policy');
    const metric = node(policy, 'CustomizedMetricSpecification');
    assert.deepEqual(
      { MetricName: metric.MetricName, Namespace: metric.Namespace, Statistic: metric.Statistic, Dimensions: metric.Dimensions },
      { MetricName: 'ApproximateBacklogSizePerInstance', Namespace: 'AWS/SageMaker', Statistic: 'Average', Dimensions: [{ Name: 'EndpointName', Value: '${ENDPOINT_NAME}' }] },
    );
    assert.equal(num(policy, 'TargetValue'), 5);
  });

  it('leaves zero instances through a step policy that an alarm on HasBacklogWithoutCapacity fires', async () => {
    const step = await readJson('async-scale-from-zero.json');
    onlyKeys(step, STEP_KEYS, 'the step policy');
    assert.equal(text(step, 'AdjustmentType'), 'ChangeInCapacity');
    assert.deepEqual(list(step, 'StepAdjustments'), [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }]);
    assert.equal(num(step, 'Cooldown'), 300);

    const alarm = await readJson('async-backlog-without-capacity-alarm.json');
    onlyKeys(alarm, ALARM_KEYS, 'the alarm');
    assert.equal(text(alarm, 'MetricName'), 'HasBacklogWithoutCapacity');
    assert.equal(text(alarm, 'Namespace'), 'AWS/SageMaker');
    assert.deepEqual(list(alarm, 'Dimensions'), [{ Name: 'EndpointName', Value: '${ENDPOINT_NAME}' }]);
    assert.deepEqual(list(alarm, 'AlarmActions'), ['${STEP_POLICY_ARN}']);
    // The metric is 0 or 1: the alarm must fire at 1 and not at 0, and the step (lower bound 0
    // above the threshold) must then apply.
    const fires = (value: number) => {
      const threshold = num(alarm, 'Threshold');
      switch (text(alarm, 'ComparisonOperator')) {
        case 'GreaterThanOrEqualToThreshold':
          return value >= threshold;
        case 'GreaterThanThreshold':
          return value > threshold;
        default:
          return assert.fail('the alarm compares upwards');
      }
    };
    assert.equal(fires(1), true);
    assert.equal(fires(0), false);
    assert.ok(1 - num(alarm, 'Threshold') >= 0, 'the step applies at 1');
  });
});

describe('deploy/sagemaker/apply.sh, against a stub aws', () => {
  const ARN = 'arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0f0f:resource/sagemaker/endpoint/churn-async/variant/AllTraffic:policyName/inferd-scale-from-zero';
  let stubDir: string;

  interface Call {
    readonly args: string[];
    readonly files: Record<string, string>;
  }

  before(async () => {
    stubDir = await mkdtemp(join(tmpdir(), 'inferd-aws-stub-'));
    // Records each call with the contents of its file:// arguments (apply.sh deletes them on exit).
    await writeFile(
      join(stubDir, 'aws'),
      `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
const files = {};
for (const arg of args) if (arg.startsWith('file://')) files[arg] = fs.readFileSync(arg.slice('file://'.length), 'utf8');
fs.appendFileSync(process.env.AWS_STUB_LOG, JSON.stringify({ args, files }) + '\\n');
if (args.includes('PolicyARN')) process.stdout.write(${JSON.stringify(ARN)} + '\\n');
`,
    );
    await chmod(join(stubDir, 'aws'), 0o755);
  });
  after(() => rm(stubDir, { recursive: true, force: true }));

  async function apply(mode: string, env: Record<string, string>): Promise<{ code: number; stderr: string; calls: Call[] }> {
    const log = join(stubDir, `calls-${Math.random().toString(36).slice(2)}.jsonl`);
    await writeFile(log, '');
    const options = { env: { PATH: `${stubDir}:${process.env.PATH ?? ''}`, AWS_STUB_LOG: log, ...env } };
    const { code, stderr } = await run('bash', [APPLY, mode], options).then(
      ({ stderr }) => ({ code: 0, stderr }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    return { code, stderr, calls: lines.map((line) => JSON.parse(line) as Call) };
  }

  const option = (call: Call, name: string) => {
    const i = call.args.indexOf(name);
    assert.ok(i >= 0, `${call.args.slice(0, 2).join(' ')} has ${name}`);
    return call.args[i + 1]!;
  };
  const fileOption = (call: Call, name: string): Node => {
    const url = option(call, name);
    const content = call.files[url];
    assert.ok(content !== undefined, `${name} is a file:// argument`);
    assert.doesNotMatch(content, /\$\{/, `${name}: every placeholder is filled in`);
    return JSON.parse(content) as Node;
  };

  it('realtime: registers the variant and applies both target-tracking policies', async () => {
    const { code, stderr, calls } = await apply('realtime', { ENDPOINT_NAME: 'churn', MIN: '2', MAX: '8' });
    assert.equal(code, 0, stderr);
    assert.deepEqual(calls.map((c) => c.args.slice(0, 2).join(' ')), [
      'application-autoscaling register-scalable-target',
      'application-autoscaling put-scaling-policy',
      'application-autoscaling put-scaling-policy',
    ]);
    for (const call of calls) {
      assert.equal(option(call, '--service-namespace'), 'sagemaker');
      assert.equal(option(call, '--resource-id'), 'endpoint/churn/variant/AllTraffic');
      assert.equal(option(call, '--scalable-dimension'), 'sagemaker:variant:DesiredInstanceCount');
    }
    assert.equal(option(calls[0]!, '--min-capacity'), '2');
    assert.equal(option(calls[0]!, '--max-capacity'), '8');
    const policies = calls.slice(1).map((call) => {
      assert.equal(option(call, '--policy-type'), 'TargetTrackingScaling');
      return fileOption(call, '--target-tracking-scaling-policy-configuration');
    });
    assert.deepEqual(policies, [await readJson('realtime-invocations-per-instance.json'), await readJson('realtime-concurrent-requests.json')]);
  });

  it('async: MinCapacity 0, the backlog policy, and the alarm wired to the step policy it created', async () => {
    const { code, stderr, calls } = await apply('async', { ENDPOINT_NAME: 'churn-async' });
    assert.equal(code, 0, stderr);
    assert.deepEqual(calls.map((c) => c.args.slice(0, 2).join(' ')), [
      'application-autoscaling register-scalable-target',
      'application-autoscaling put-scaling-policy',
      'application-autoscaling put-scaling-policy',
      'cloudwatch put-metric-alarm',
    ]);
    const [register, backlog, step, alarm] = calls as [Call, Call, Call, Call];
    assert.equal(option(register, '--min-capacity'), '0');
    assert.equal(option(backlog, '--policy-type'), 'TargetTrackingScaling');
    assert.deepEqual(list(fileOption(backlog, '--target-tracking-scaling-policy-configuration'), 'CustomizedMetricSpecification', 'Dimensions'), [
      { Name: 'EndpointName', Value: 'churn-async' },
    ]);
    assert.equal(option(step, '--policy-type'), 'StepScaling');
    assert.deepEqual(fileOption(step, '--step-scaling-policy-configuration'), await readJson('async-scale-from-zero.json'));
    assert.equal(option(step, '--query'), 'PolicyARN');
    const alarmInput = fileOption(alarm, '--cli-input-json');
    assert.deepEqual(list(alarmInput, 'AlarmActions'), [ARN]);
    assert.deepEqual(list(alarmInput, 'Dimensions'), [{ Name: 'EndpointName', Value: 'churn-async' }]);
    assert.equal(text(alarmInput, 'AlarmName'), 'churn-async-has-backlog-without-capacity');
  });

  it('refuses a missing endpoint, an unknown mode and a real-time minimum of 0 before calling AWS', async () => {
    for (const [mode, env] of [
      ['realtime', {}],
      ['both', { ENDPOINT_NAME: 'churn' }],
      ['realtime', { ENDPOINT_NAME: 'churn', MIN: '0' }],
      ['async', { ENDPOINT_NAME: 'churn', MIN: '5', MAX: '2' }],
      ['async', { ENDPOINT_NAME: 'churn/../x' }],
    ] as const) {
      const { code, calls } = await apply(mode, env);
      assert.equal(code, 2, `${mode} ${JSON.stringify(env)}`);
      assert.deepEqual(calls, []);
    }
  });
});

describe('deploy/k8s', () => {
  const deployments = () => all.filter((r) => r.kind === 'Deployment');
  const containerOf = (r: Resource) => {
    const containers = list(r.doc, 'spec', 'template', 'spec', 'containers');
    assert.equal(containers.length, 1, `${r.name} runs one container`);
    return containers[0];
  };

  it('probes /ping on port 8080 in every Deployment', () => {
    assert.ok(deployments().length >= 2);
    for (const d of deployments()) {
      const container = containerOf(d);
      assert.ok(list(container, 'ports').some((p) => at(p, 'containerPort') === 8080), `${d.name} listens on 8080`);
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        assert.equal(text(container, probe, 'httpGet', 'path'), '/ping', `${d.name} ${probe}`);
        assert.equal(probePort(container, probe), 8080, `${d.name} ${probe}`);
      }
      assert.ok(labelsMatch(node(d.doc, 'spec', 'selector', 'matchLabels'), node(d.doc, 'spec', 'template', 'metadata', 'labels')), `${d.name}: the selector matches its pods`);
      text(container, 'resources', 'requests', 'cpu');
      text(container, 'resources', 'requests', 'memory');
      const annotations = node(d.doc, 'spec', 'template', 'metadata', 'annotations');
      assert.deepEqual(
        [annotations['prometheus.io/scrape'], annotations['prometheus.io/port'], annotations['prometheus.io/path']],
        ['true', '8080', '/metrics'],
        `${d.name}: scrape annotations, as strings`,
      );
    }
  });

  it("gives every pod a grace period longer than preStop plus inferd's own drain", () => {
    for (const d of deployments()) {
      const container = containerOf(d);
      const config = configOf(containerEnv(container));
      const grace = num(d.doc, 'spec', 'template', 'spec', 'terminationGracePeriodSeconds');
      const preStop = preStopSleepS(container);
      assert.ok(
        grace > preStop + config.server.shutdownTimeoutS,
        `${d.name}: terminationGracePeriodSeconds ${grace} > preStop ${preStop} s + shutdownTimeoutS ${config.server.shutdownTimeoutS} s`,
      );
    }
  });

  it('sets only environment variables inferd knows, and the autoscaling target the policies use', () => {
    for (const d of deployments()) {
      const env = containerEnv(containerOf(d));
      for (const name of Object.keys(env).filter((n) => /^(INFERD|SAGEMAKER|AWS)_/.test(n))) {
        assert.ok(name in ENV_VARS, `${d.name}: ${name} is a variable inferd reads`);
      }
    }
    const realtime = find(all, 'Deployment', 'inferd-realtime');
    assert.equal(containerEnv(containerOf(realtime)).INFERD_AUTOSCALE_TARGET_CONCURRENCY, String(targets.concurrency));
    // The autoscaler owns the count: a `replicas` here would reset it on every apply.
    assert.equal(node(realtime.doc, 'spec').replicas, undefined);
    assert.equal(node(find(all, 'Deployment', 'inferd-async').doc, 'spec').replicas, undefined);
  });

  it('routes each Service to pods that serve it on 8080', () => {
    const services = all.filter((r) => r.kind === 'Service');
    assert.ok(services.length >= 2);
    for (const service of services) {
      const selector = node(service.doc, 'spec', 'selector');
      const backing = deployments().filter((d) => labelsMatch(selector, node(d.doc, 'spec', 'template', 'metadata', 'labels')));
      assert.ok(backing.length > 0, `${service.name} selects a Deployment's pods`);
      for (const port of list(service.doc, 'spec', 'ports')) {
        const targetPort = at(port, 'targetPort');
        for (const d of backing) {
          const resolved = typeof targetPort === 'number' ? targetPort : num(list(containerOf(d), 'ports').find((p) => at(p, 'name') === targetPort), 'containerPort');
          assert.equal(resolved, 8080, `${service.name} -> ${d.name}`);
        }
      }
    }
  });

  it('scales inferd-realtime on inferd_concurrent_requests with hysteresis (HPA)', () => {
    const hpa = find(all, 'HorizontalPodAutoscaler', 'inferd-realtime');
    assert.equal(text(hpa.doc, 'apiVersion'), 'autoscaling/v2');
    assert.deepEqual(node(hpa.doc, 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: 'inferd-realtime' });
    find(all, 'Deployment', 'inferd-realtime');
    assert.ok(num(hpa.doc, 'spec', 'minReplicas') >= 1 && num(hpa.doc, 'spec', 'minReplicas') <= num(hpa.doc, 'spec', 'maxReplicas'));
    const metrics = list(hpa.doc, 'spec', 'metrics');
    assert.equal(metrics.length, 1);
    assert.equal(text(metrics[0], 'type'), 'Pods');
    assert.equal(text(metrics[0], 'pods', 'metric', 'name'), 'inferd_concurrent_requests');
    assert.deepEqual(node(metrics[0], 'pods', 'target'), { type: 'AverageValue', averageValue: String(targets.concurrency) });
    const behavior = node(hpa.doc, 'spec', 'behavior');
    assert.ok(num(behavior, 'scaleDown', 'stabilizationWindowSeconds') > num(behavior, 'scaleUp', 'stabilizationWindowSeconds'), 'scale-in waits longer than scale-out');
    assert.ok(list(behavior, 'scaleUp', 'policies').length > 0);
    assert.ok(list(behavior, 'scaleDown', 'policies').length > 0);
  });

  it("serves the HPA's metric from a prometheus-adapter rule on a series inferd exports", () => {
    const [values] = [...byFile].find(([file]) => file.endsWith('prometheus-adapter-rules.yaml'))![1];
    assert.equal(at(values, 'rules', 'default'), false);
    const rules = list(values, 'rules', 'custom');
    const hpaMetric = text(find(all, 'HorizontalPodAutoscaler', 'inferd-realtime').doc, 'spec', 'metrics', 0, 'pods', 'metric', 'name');
    const rule = rules.find((r) => text(r, 'name', 'as') === hpaMetric);
    assert.ok(rule, `a rule exposes ${hpaMetric}`);
    assert.match(text(rule, 'seriesQuery'), /^inferd_concurrent_requests\{/);
    assert.deepEqual(node(rule, 'resources', 'overrides'), { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } });
    assert.ok(new RegExp(text(rule, 'name', 'matches')).test('inferd_concurrent_requests'));
    for (const template of ['<<.Series>>', '<<.LabelMatchers>>', '<<.GroupBy>>']) assert.ok(text(rule, 'metricsQuery').includes(template), template);
  });

  it('offers KEDA for the same signal, target and hysteresis (keda-scaledobject.yaml)', () => {
    const scaled = find(all, 'ScaledObject', 'inferd-realtime');
    assert.equal(text(scaled.doc, 'apiVersion'), 'keda.sh/v1alpha1');
    assert.equal(text(scaled.doc, 'spec', 'scaleTargetRef', 'name'), 'inferd-realtime');
    assert.ok(num(scaled.doc, 'spec', 'minReplicaCount') >= 1, 'real time keeps a pod');
    const triggers = list(scaled.doc, 'spec', 'triggers');
    assert.equal(triggers.length, 1);
    assert.equal(text(triggers[0], 'type'), 'prometheus');
    const metadata = node(triggers[0], 'metadata');
    for (const [key, value] of Object.entries(metadata)) assert.equal(typeof value, 'string', `trigger metadata ${key} is a string`);
    assert.equal(metadata.threshold, String(targets.concurrency));
    assert.match(text(metadata, 'query'), /\binferd_concurrent_requests\{[^}]*pod=~"inferd-realtime-\.\+"/);
    const hpa = find(all, 'HorizontalPodAutoscaler', 'inferd-realtime');
    assert.deepEqual(node(scaled.doc, 'spec', 'advanced', 'horizontalPodAutoscalerConfig', 'behavior'), node(hpa.doc, 'spec', 'behavior'));
  });

  it('scales the async workers from zero on the Redis stream and the backlog (keda-async-scaledobject.yaml)', () => {
    const scaled = find(all, 'ScaledObject', 'inferd-async');
    assert.equal(num(scaled.doc, 'spec', 'minReplicaCount'), 0);
    const workers = find(all, 'Deployment', 'inferd-async');
    assert.equal(text(scaled.doc, 'spec', 'scaleTargetRef', 'name'), workers.name);
    const env = containerEnv(containerOf(workers));
    const config = configOf(env);
    // Scaling to zero needs a queue that outlives the pods: Redis, with inline bodies staged in S3.
    assert.match(config.async.redisUrl ?? '', /^rediss?:\/\//, 'the workers use the Redis queue');
    assert.match(config.async.inputPath ?? '', /^s3:\/\//);
    assert.match(config.async.outputPath ?? '', /^s3:\/\//);

    const triggers = list(scaled.doc, 'spec', 'triggers');
    for (const trigger of triggers) {
      for (const [key, value] of Object.entries(node(trigger, 'metadata'))) assert.equal(typeof value, 'string', `trigger metadata ${key} is a string`);
    }
    const redis = triggers.find((t) => at(t, 'type') === 'redis-streams');
    assert.ok(redis, 'a redis-streams trigger: it needs no pod to wake the first one');
    const metadata = node(redis, 'metadata');
    assert.equal(metadata.stream, `${config.async.redisKeyPrefix}:queue`, 'the stream inferd enqueues to');
    // XLEN mode: entries are deleted when their request finishes, so XLEN is queued + running.
    assert.equal(metadata.consumerGroup, undefined, 'no consumerGroup: XLEN, not the pending list');
    assert.equal(metadata.lagCount, undefined);
    assert.equal(metadata.streamLength, '5');
    assert.equal(metadata.activationLagCount, '0');
    const address = env[text(metadata, 'addressFromEnv')];
    assert.ok(address, `${String(metadata.addressFromEnv)} is set on the workers`);
    assert.equal(config.async.redisUrl, `redis://${address}`, 'KEDA reads the Redis inferd uses');

    const prometheus = triggers.find((t) => at(t, 'type') === 'prometheus');
    assert.ok(prometheus);
    assert.match(text(prometheus, 'metadata', 'query'), /\binferd_async_backlog_size\{/);
    assert.equal(text(prometheus, 'metadata', 'threshold'), '5');
  });

  it('keeps an accept-only pod up to take submissions while the workers are at zero', () => {
    const service = find(all, 'Service', 'inferd-async');
    const selector = node(service.doc, 'spec', 'selector');
    const scaledToZero = new Set(
      all.filter((r) => r.kind === 'ScaledObject' && at(r.doc, 'spec', 'minReplicaCount') === 0).map((r) => text(r.doc, 'spec', 'scaleTargetRef', 'name')),
    );
    const alwaysUp = deployments().filter(
      (d) => !scaledToZero.has(d.name) && labelsMatch(selector, node(d.doc, 'spec', 'template', 'metadata', 'labels')) && num(d.doc, 'spec', 'replicas') >= 1,
    );
    assert.ok(alwaysUp.length > 0, 'a Deployment behind inferd-async that never scales to zero');
    for (const d of alwaysUp) {
      const config = configOf(containerEnv(containerOf(d)));
      const workers = configOf(containerEnv(containerOf(find(all, 'Deployment', 'inferd-async'))));
      assert.equal(config.async.redisUrl, workers.async.redisUrl, `${d.name} shares the workers' queue`);
      assert.equal(config.async.redisKeyPrefix, workers.async.redisKeyPrefix);
      // Running nothing itself, it never holds work the scaled workers should have.
      assert.equal(config.async.maxConcurrentInvocations, 0, `${d.name} is accept-only`);
    }
  });
});

describe('deploy/: metric names against a real server', () => {
  let server: TestServer;
  let stateDir: string;
  let exposed: Set<string>;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'inferd-deploy-'));
    // Async on (a local output directory, the embedded queue) so that the async gauges exist too.
    server = await startServer(MODELS.forest, {
      env: { INFERD_ASYNC_OUTPUT_PATH: join(stateDir, 'out'), INFERD_ASYNC_STATE_DIR: join(stateDir, 'state') },
    });
    // One invocation, so that the labelled series (model, status_class) appear.
    const row = (await readFile(`${REPO_ROOT}test/fixtures/churn-requests.csv`, 'utf8')).split('\n')[0]!;
    assert.equal((await invoke(server.url, row, { 'content-type': 'text/csv' })).status, 200);
    const exposition = await (await fetch(`${server.url}/metrics`)).text();
    exposed = new Set();
    for (const line of exposition.split('\n')) {
      const type = /^# TYPE (\S+) /.exec(line);
      if (type) exposed.add(type[1]!); // a histogram's own name, besides its _bucket, _sum, _count samples
      else if (line !== '' && !line.startsWith('#')) exposed.add(line.split(/[{ ]/, 1)[0]!);
    }
  });
  after(async () => {
    await server?.http.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('exposes every inferd_* metric that deploy/ names (queries, adapter rules, HPA, README)', async () => {
    const named = new Map<string, string[]>();
    for (const file of await filesUnder(DEPLOY)) {
      for (const [name] of (await readFile(file, 'utf8')).matchAll(/\binferd_[a-z0-9_]*[a-z0-9]\b/g)) {
        named.set(name, [...new Set([...(named.get(name) ?? []), file.slice(DEPLOY.length)])]);
      }
    }
    for (const name of ['inferd_concurrent_requests', 'inferd_async_backlog_size']) assert.ok(named.has(name), `deploy/ uses ${name}`);
    const missing = [...named].filter(([name]) => !exposed.has(name)).map(([name, files]) => `${name} (${files.join(', ')})`);
    assert.deepEqual(missing, [], `not on /metrics: ${missing.join('; ')}`);
  });

  it('has PromQL that promtool accepts', { skip: existsSync(PROMTOOL) ? false : 'promtool not installed (scripts/install-test-tools.sh)' }, async () => {
    const queries: string[] = [];
    for (const r of all.filter((x) => x.kind === 'ScaledObject')) {
      for (const trigger of list(r.doc, 'spec', 'triggers')) if (at(trigger, 'type') === 'prometheus') queries.push(text(trigger, 'metadata', 'query'));
    }
    const [values] = [...byFile].find(([file]) => file.endsWith('prometheus-adapter-rules.yaml'))![1];
    for (const rule of list(values, 'rules', 'custom')) {
      queries.push(text(rule, 'seriesQuery'));
      // The adapter fills these in per request; stand-ins of the same shape.
      queries.push(
        text(rule, 'metricsQuery')
          .replaceAll('<<.Series>>', 'inferd_concurrent_requests')
          .replaceAll('<<.LabelMatchers>>', 'namespace="inferd",pod=~"inferd-realtime-.+"')
          .replaceAll('<<.GroupBy>>', 'pod'),
      );
    }
    const rules = join(stateDir, 'rules.yaml');
    await writeFile(rules, JSON.stringify({ groups: [{ name: 'deploy', rules: queries.map((expr, i) => ({ record: `deploy:query_${i}`, expr })) }] }));
    const { stdout } = await run(PROMTOOL, ['check', 'rules', rules]);
    assert.match(stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });
});
