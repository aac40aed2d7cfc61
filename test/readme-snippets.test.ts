/**
 * Runs every code block of the README the way a newcomer pastes it (the conventions are in
 * docs/development.md, "Documentation"): shell against a real server, Python under Debian's
 * boto3, each checked against the output the README shows.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { freePort, spawnServer, waitUntilReady, type Child } from './child.js';
import { MODELS, REPO_ROOT } from './helper.js';
import { codeBlocks, type CodeBlock } from './markdown.js';
import { httpsRequest } from './tls-fixtures.js';

const BLOCKS = codeBlocks(await readFile(`${REPO_ROOT}README.md`, 'utf8'));
/** Debian's boto3 and nothing else (scripts/install-test-tools.sh). */
const PYTHON = `${REPO_ROOT}.tools/bin/python3-boto3`;
const SHELLS = new Set(['sh', 'bash', 'shell']);
/** The README is what a newcomer copies: what it cannot prove by running must stay rare. */
const MAX_NO_RUN = 2;
/** Printed after each step, to cut the output into the steps' parts. */
const MARKER = '<<inferd-readme-step>>';

interface Step {
  code: string;
  /** The comment lines right after the code: what it prints. */
  expected: string[];
}

/** Code lines, each run followed by the comments that show its output; comments before any code are prose. */
function stepsOf(body: string): Step[] {
  const steps: Step[] = [];
  let current: Step | undefined;
  for (const line of body.split('\n')) {
    const comment = /^\s*#\s?(.*)$/.exec(line);
    if (comment) {
      current?.expected.push(comment[1]!);
      continue;
    }
    if (!current || current.expected.length > 0) steps.push((current = { code: '', expected: [] }));
    current.code += `${line}\n`;
  }
  return steps;
}

/** The README's server is on 8080; the test's is on a free port, so a running inferd is never hit. */
function forPort(code: string, port: number): string {
  const rewritten = code.replaceAll('localhost:8080', `127.0.0.1:${port}`).replaceAll('--port 8080', `--port ${port}`);
  assert.doesNotMatch(rewritten, /\b8080\b/, 'name the port as localhost:8080 or --port 8080, which the test rewrites');
  return rewritten;
}

/** Numbers within a float32's printing noise of each other; everything else exactly. */
function close(actual: unknown, expected: unknown): boolean {
  if (typeof actual === 'number' && typeof expected === 'number') return Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected));
  if (Array.isArray(actual) && Array.isArray(expected)) return actual.length === expected.length && actual.every((value, i) => close(value, expected[i]));
  if (typeof actual === 'object' && typeof expected === 'object' && actual !== null && expected !== null) {
    const keys = Object.keys(expected);
    return Object.keys(actual).length === keys.length && keys.every((key) => close((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key]));
  }
  return actual === expected;
}

function sameLine(actual: string, expected: string): boolean {
  if (actual === expected) return true;
  try {
    return close(JSON.parse(actual), JSON.parse(expected));
  } catch {
    return false;
  }
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the block's steps in one process, with a marker after each, and checks each step's output. */
async function runSteps(block: CodeBlock, port: number, interpreter: (script: string) => Promise<Awaited<ReturnType<typeof run>>>, marker: string) {
  const steps = stepsOf(forPort(block.body, port));
  const result = await interpreter(steps.map((step) => `${step.code}${marker}\n`).join(''));
  assert.equal(result.code, 0, `README.md:${block.line} failed:\n${result.stderr}${result.stdout}`);
  const parts = result.stdout.split(MARKER);
  for (const [i, step] of steps.entries()) {
    if (step.expected.length === 0) continue;
    const printed = parts[i]!.trim().split('\n');
    const same = printed.length === step.expected.length && printed.every((line, j) => sameLine(line, step.expected[j]!));
    if (!same) assert.deepEqual(printed, step.expected, `README.md:${block.line}: ${step.code.trim()}\nprints what the comment after it does not show`);
  }
}

/**
 * A `server` block serves until stopped: it must answer /ping 200, then exit on Ctrl-C. One that
 * sets `INFERD_TLS_CERT_FILE=<path>` serves HTTPS: /ping is asked over HTTPS trusting only that
 * certificate, as `curl --cacert <path>` does.
 */
async function runServer(block: CodeBlock, port: number) {
  const certFile = /\bINFERD_TLS_CERT_FILE=(\S+)/.exec(block.body)?.[1];
  // Read at every attempt: the block writes it, and a file left by an earlier run is stale.
  const ping = certFile === undefined ? undefined : async () => (await httpsRequest(port, { ca: await readFile(certFile) })).status;
  // Its own process group, so that SIGINT reaches every process in it, as Ctrl-C in a terminal does.
  const child = spawn('bash', ['-e', '-c', forPort(block.body, port)], {
    cwd: REPO_ROOT,
    // .tools/bin first: the openssl of scripts/install-test-tools.sh where the machine has none.
    env: { ...process.env, PATH: `${REPO_ROOT}.tools/bin:${process.env.PATH ?? ''}`, SAGEMAKER_BIND_TO_PORT: String(port) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // 'close' waits for every process holding the output pipes: the server too, not only bash.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // the group is gone already
    }
  };
  const server: Child = { process: child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
  let killed = false;
  const guard = setTimeout(() => ((killed = true), signalGroup('SIGKILL')), 60_000);
  try {
    await waitUntilReady(server, 60_000, ping);
  } finally {
    signalGroup('SIGINT');
    await closed;
    clearTimeout(guard);
  }
  assert.equal(killed, false, `README.md:${block.line} did not stop on SIGINT:\n${output}`);
}

describe('README snippets', () => {
  let port = 0;
  let server: Child;
  let home = '';

  before(async () => {
    // What `npm start` serves: the bundled example model on 8080 (here: a free port).
    port = await freePort();
    server = await spawnServer(['dist/src/main.js', 'serve'], { SAGEMAKER_BIND_TO_PORT: String(port), INFERD_MODEL_DIR: MODELS.forest, SAGEMAKER_MODEL_SERVER_WORKERS: '1' }, port);
    await waitUntilReady(server);
    home = await mkdtemp(`${tmpdir()}/inferd-readme-home-`);
  });
  after(async () => {
    server.process.kill('SIGTERM');
    await server.exited;
    await rm(home, { recursive: true, force: true });
  });

  const bash = (script: string) => run('bash', ['-e', '-o', 'pipefail', '-c', script], process.env);
  // An empty HOME: no ~/.aws to lean on, so the snippet itself must name region and keys.
  const python = (script: string) => run(PYTHON, ['-c', script], { PATH: process.env.PATH, HOME: home });

  it(`marks at most ${MAX_NO_RUN} snippets no-run, each with a reason`, () => {
    const noRun = BLOCKS.filter((block) => block.flags.startsWith('no-run'));
    assert.ok(noRun.length <= MAX_NO_RUN, `no-run snippets at lines ${noRun.map((block) => block.line).join(', ')}`);
    for (const block of noRun) assert.match(block.flags, /^no-run:\s*\S/, `README.md:${block.line}: say why after "no-run:"`);
  });

  it("runs the Python snippets with Debian's boto3, not one installed by pip", async () => {
    const result = await python('import boto3, botocore\nprint(boto3.__file__)\nprint(botocore.__file__)');
    assert.equal(result.code, 0, `${result.stderr} (run scripts/install-test-tools.sh)`);
    for (const path of result.stdout.trim().split('\n')) assert.ok(path.startsWith(`${REPO_ROOT}.tools/pkg/python3-`), path);
  });

  for (const block of BLOCKS) {
    const name = `README.md:${block.line} ${block.lang} ${block.flags}`.trim();
    const reason = /^no-run:\s*(\S.*)$/.exec(block.flags)?.[1];
    if (reason !== undefined) {
      it(name, { skip: reason }, () => {});
      continue;
    }
    it(name, { timeout: 120_000 }, async () => {
      if (SHELLS.has(block.lang) && block.flags === 'server') return runServer(block, await freePort());
      assert.equal(block.flags, '', `unknown fence flags: use "no-run: <why>", or "server" for a sh block that serves`);
      if (SHELLS.has(block.lang)) return runSteps(block, port, bash, `printf '%s' '${MARKER}'`);
      if (block.lang === 'python') return runSteps(block, port, python, `print(${JSON.stringify(MARKER)}, flush=True)`);
      assert.fail(`a ${block.lang || 'bare'} block cannot run: make it sh or python, or fence it "no-run: <why>"`);
    });
  }
});
