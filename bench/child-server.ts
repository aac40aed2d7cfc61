/** A server under test as a child process: started, awaited on /ping, measured, stopped. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from './options.js';

const OUTPUT_TAIL_CHARS = 4_000;

export class StartFailure extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ChildServerOptions {
  /** Every chunk of the child's stdout, from its first byte (the tail kept for errors is not enough). */
  readonly onStdout?: (chunk: Buffer) => void;
  /** Runs once the child has exited, from `stop`: removes what was made for it (a capture destination). */
  readonly afterExit?: () => Promise<void>;
}

export class ChildServer {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #output = '';
  #hasExited = false;
  #afterExit: (() => Promise<void>) | undefined;

  private constructor(
    args: readonly string[],
    env: Readonly<Record<string, string>>,
    readonly url: string,
    options: ChildServerOptions,
  ) {
    this.#child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keepTail = (chunk: Buffer) => (this.#output = (this.#output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS));
    this.#child.stdout!.on('data', keepTail);
    this.#child.stderr!.on('data', keepTail);
    if (options.onStdout) this.#child.stdout!.on('data', options.onStdout);
    this.#afterExit = options.afterExit;
    this.#exited = new Promise((resolve) =>
      this.#child.once('exit', () => {
        this.#hasExited = true;
        resolve();
      }),
    );
  }

  /** Spawns `node ARGS` and resolves once GET /ping answers 200; a StartFailure otherwise. */
  static async start(
    args: readonly string[],
    env: Readonly<Record<string, string>>,
    port: number,
    readyTimeoutMs = 120_000,
    options: ChildServerOptions = {},
  ): Promise<ChildServer> {
    const server = new ChildServer(args, env, `http://127.0.0.1:${port}`, options);
    const deadline = Date.now() + readyTimeoutMs;
    while (!server.#hasExited && Date.now() < deadline) {
      const status = await fetch(`${server.url}/ping`).then((response) => response.status, () => 0);
      if (status === 200) return server;
      await sleep(100);
    }
    const why = server.#hasExited ? `exited with code ${server.#child.exitCode}` : `not ready after ${readyTimeoutMs / 1000} s`;
    await server.stop();
    throw new StartFailure(`server ${why}`, server.output());
  }

  output(): string {
    return this.#output;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; then `afterExit`, once. */
  async stop(graceMs = 30_000): Promise<void> {
    if (!this.#hasExited) {
      this.#child.kill('SIGTERM');
      const killed = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(killed);
    }
    const afterExit = this.#afterExit;
    this.#afterExit = undefined;
    await afterExit?.();
  }
}
