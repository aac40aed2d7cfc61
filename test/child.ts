/** Runs the real CLI as a child process, as SageMaker runs the container. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { REPO_ROOT } from './helper.js';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Child {
  readonly process: ChildProcess;
  readonly url: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnServer(argv: readonly string[], env: Record<string, string>, port?: number): Promise<Child> {
  const child = spawn(process.execPath, argv, {
    cwd: REPO_ROOT,
    // One instance, as startServer: the default of one per core would vary with the machine.
    env: { PATH: process.env.PATH ?? '', SAGEMAKER_CONTAINER_LOG_LEVEL: 'info', SAGEMAKER_MODEL_SERVER_WORKERS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { process: child, url: `http://127.0.0.1:${port ?? 0}`, output: () => output, exited };
}

/**
 * Polls /ping until it answers 200; fails with the child's output if it exits first. `ping`
 * answers the status, or rejects while nothing answers (an HTTPS server probes its own way).
 */
export async function waitUntilReady(
  child: Child,
  timeoutMs = 30_000,
  ping: () => Promise<number> = () => fetch(`${child.url}/ping`).then((r) => r.status),
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    const status = await ping().catch(() => 0);
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`server not ready:\n${child.output()}`);
}
