/**
 * Where the HTTP thread's time goes under a bench scenario's load, by V8's sampling profiler:
 * each build given (a checkout built with `npm run build`) serves the scenario's model under
 * `node --cpu-prof` while autocannon sends the scenario's bodies; the main thread's profile is
 * summarised as self time by category and by function. The profiler itself slows the server, so
 * read the shares, not the totals.
 * `npm run build && node dist/bench/profile.js LABEL=DIR [LABEL=DIR…]` (PROFILE_SCENARIO, default
 * churn-csv; PROFILE_DURATION_S, default 8; BENCH_MODELS_DIR); writes
 * bench/results/<time>-profile-<scenario>.{json,md}.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import autocannon from 'autocannon';
import { ChildServer, freePort } from './child-server.js';
import { InferdModelDir } from './model-dirs.js';
import { REPO_ROOT, type ScenarioId } from './options.js';
import { saveResults } from './report.js';
import { defineScenarios, type Scenario } from './scenarios.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Categories, first match wins; a frame's url (or, for natives, its name) decides. */
const CATEGORIES: ReadonlyArray<readonly [string, (frame: ProfileNode['callFrame']) => boolean]> = [
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['socket writes (writev, kernel send)', (f) => f.url === '' && /^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(f.functionName)],
  ['inferd: codecs', (f) => f.url.includes('/dist/src/codecs/')],
  ['inferd: runtime (batcher, pool)', (f) => f.url.includes('/dist/src/runtime/')],
  ['inferd: metrics', (f) => /\/dist\/src\/(metric|metrics)/.test(f.url)],
  ['inferd: server, modes, data plane', (f) => f.url.includes('/dist/src/')],
  ['Piscina and worker messaging', (f) => f.url.includes('/piscina/') || f.url.includes('internal/worker') || /postMessage|receiveMessage|MessagePort/.test(f.functionName)],
  ['Fastify', (f) => /\/node_modules\/(fastify|find-my-way|@fastify|avvio|light-my-request|fast-json-stringify|toad-cache|secure-json-parse)/.test(f.url)],
  ['pino (logging)', (f) => f.url.includes('/node_modules/pino')],
  ['prom-client', (f) => f.url.includes('/node_modules/prom-client')],
  ['Node: HTTP parser and responses', (f) => /_http_|internal\/http|HTTPParser|parserOnHeaders/.test(f.url + f.functionName)],
  ['Node: streams, events, net, timers', (f) => /internal\/streams|node:events|^events$|node:net|internal\/timers|node:stream|internal\/stream_base|node:internal\/process\/task_queues/.test(f.url)],
  ['idle (event loop waiting)', (f) => f.functionName === '(idle)'],
  ['(program): V8 and native outside JS', (f) => f.functionName === '(program)'],
];

const categoryOf = (frame: ProfileNode['callFrame']) => CATEGORIES.find(([, test]) => test(frame))?.[0] ?? 'other';

interface Summary {
  readonly label: string;
  readonly requestsPerS: number;
  readonly profiledMs: number;
  /** Busy main-thread time per request answered in the window, under the profiler. */
  readonly busyUsPerRequest: number;
  /** Category → share of the busy (non-idle) samples' time. */
  readonly categories: Record<string, number>;
  readonly topFunctions: ReadonlyArray<{ readonly name: string; readonly share: number }>;
  /** What "other" holds, so that no large cost hides in it. */
  readonly topOther: ReadonlyArray<{ readonly name: string; readonly share: number }>;
}

function summarise(label: string, profile: CpuProfile, requestsPerS: number): Summary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  // Only the window under load counts, not start-up (module compilation) or the drain: from the
  // first sample inside the invocation route to the last.
  const inRoute = profile.samples.map((id) => byId.get(id)!.callFrame.url.endsWith('/dist/src/server/routes/invocations.js'));
  const first = inRoute.indexOf(true);
  const last = inRoute.lastIndexOf(true);
  const selfUs = new Map<number, number>();
  for (let i = first + 1; i <= last; i += 1) selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const categories: Record<string, number> = {};
  const functions = new Map<string, number>();
  const others = new Map<string, number>();
  let busyUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') continue;
    busyUs += us;
    const category = categoryOf(frame);
    categories[category] = (categories[category] ?? 0) + us;
    const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    if (category === 'other') others.set(name, (others.get(name) ?? 0) + us);
  }
  for (const key of Object.keys(categories)) categories[key] = categories[key]! / busyUs;
  const top = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, share: us / busyUs }));
  const busyUsPerRequest = busyUs / ((requestsPerS * totalUs) / 1e6);
  return { label, requestsPerS, profiledMs: totalUs / 1000, busyUsPerRequest, categories, topFunctions: top(functions, 25), topOther: top(others, 10) };
}

async function profileBuild(label: string, dir: string, durationS: number, scenario: Scenario, modelDir: string): Promise<Summary> {
  const profileDir = mkdtempSync(join(tmpdir(), 'inferd-profile-'));
  const port = await freePort();
  const server = await ChildServer.start(
    ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, resolve(dir, 'dist/src/main.js'), 'serve', '--model-dir', modelDir, '--port', String(port)],
    { SAGEMAKER_CONTAINER_LOG_LEVEL: 'warn', INFERD_HOST: '127.0.0.1' },
    port,
  );
  const headers = { 'content-type': scenario.contentType, accept: scenario.accept };
  const requests = scenario.buildBodies().map((body) => ({ method: 'POST' as const, headers, body }));
  const result = await new Promise<autocannon.Result>((resolve, reject) =>
    autocannon({ url: `${server.url}/invocations`, connections: scenario.connections, duration: durationS, requests }, (error, r) =>
      error ? reject(error) : resolve(r),
    ),
  );
  // The profile is written as the process exits.
  await server.stop();
  // Node names each thread's profile CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0.
  const main = readdirSync(profileDir).find((name) => name.split('.')[4] === '0');
  if (!main) throw new Error(`${label}: no main-thread profile in ${profileDir}`);
  const profile = JSON.parse(readFileSync(join(profileDir, main), 'utf8')) as CpuProfile;
  rmSync(profileDir, { recursive: true, force: true });
  return summarise(label, profile, result.requests.average);
}

function render(summaries: readonly Summary[], durationS: number, scenario: Scenario): string {
  const pct = (share: number | undefined) => (share === undefined ? '–' : `${(share * 100).toFixed(1)}%`);
  const cell = (summary: Summary, share: number | undefined) => (share === undefined ? '–' : `${pct(share)} (${(share * summary.busyUsPerRequest).toFixed(1)} µs)`);
  const categories = [...new Set(summaries.flatMap((s) => Object.keys(s.categories)))].sort(
    (a, b) => (summaries[0]!.categories[b] ?? 0) - (summaries[0]!.categories[a] ?? 0),
  );
  const lines = [
    `# The HTTP thread's profile: ${scenario.title}`,
    '',
    `Command: \`PROFILE_SCENARIO=${scenario.id} npm run build && node dist/bench/profile.js ${summaries.map((s) => `${s.label}=DIR`).join(' ')}\`; ${durationS} s of the scenario's bodies on ${scenario.connections} connections per build, the server under \`node --cpu-prof\` (which slows it: read the shares, not the totals). Self time of the main thread's busy samples (idle excluded), as a share and as µs per request answered in the profiled window.`,
    '',
    `| category | ${summaries.map((s) => s.label).join(' | ')} |`,
    `| --- | ${summaries.map(() => '--:').join(' | ')} |`,
    ...categories.map((category) => `| ${category} | ${summaries.map((s) => cell(s, s.categories[category])).join(' | ')} |`),
    `| **busy µs per request** | ${summaries.map((s) => `**${s.busyUsPerRequest.toFixed(1)}**`).join(' | ')} |`,
    `| requests/s while profiled | ${summaries.map((s) => Math.round(s.requestsPerS).toLocaleString('en-US')).join(' | ')} |`,
  ];
  for (const summary of summaries) {
    lines.push('', `## ${summary.label}: the 25 functions with the most self time`, '', '| function | share |', '| --- | --: |');
    for (const { name, share } of summary.topFunctions) lines.push(`| \`${name.replaceAll('|', '\\|')}\` | ${pct(share)} |`);
    lines.push('', `Of "other", the most:`, '', '| function | share |', '| --- | --: |');
    for (const { name, share } of summary.topOther) lines.push(`| \`${name.replaceAll('|', '\\|')}\` | ${pct(share)} |`);
  }
  return `${lines.join('\n')}\n`;
}

const builds = process.argv.slice(2).map((arg) => {
  const [label, dir] = arg.split('=');
  if (!label || !dir) throw new Error('usage: node dist/bench/profile.js LABEL=DIR [LABEL=DIR…]');
  return { label, dir };
});
if (builds.length === 0) throw new Error('usage: node dist/bench/profile.js LABEL=DIR [LABEL=DIR…]');
const durationS = Number(process.env.PROFILE_DURATION_S ?? 8);
const modelsDir = process.env.BENCH_MODELS_DIR ?? join(REPO_ROOT, '..', 'shared', 'models');
const scenarios = defineScenarios(modelsDir);
const scenarioId = (process.env.PROFILE_SCENARIO ?? 'churn-csv') as ScenarioId;
const scenario = scenarios[scenarioId];
if (!scenario) throw new Error(`PROFILE_SCENARIO: unknown scenario "${scenarioId}" (known: ${Object.keys(scenarios).join(', ')})`);
const modelDir = await InferdModelDir.create(scenario.modelPath, scenario.batchingConfig ?? {});
const summaries: Summary[] = [];
try {
  for (const { label, dir } of builds) {
    summaries.push(await profileBuild(label, dir, durationS, scenario, modelDir.path));
    process.stdout.write(`${label} (${relative(process.cwd(), dir) || '.'}): profiled\n`);
  }
} finally {
  await modelDir.remove();
}
const markdown = render(summaries, durationS, scenario);
await saveResults(`profile-${scenario.id}`, new Date().toISOString(), { scenario: scenario.id, durationS, summaries }, markdown);
