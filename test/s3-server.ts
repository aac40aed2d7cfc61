/**
 * A real S3-compatible server (s3rver, see s3rver-process.ts) in a child process, which tests
 * can stop, kill and restart on the same port and data directory to simulate S3 outages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The credentials s3rver accepts; the SDK's default chain picks them up from the environment. */
export const S3RVER_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

export interface S3ServerOptions {
  readonly buckets: readonly string[];
}

export interface S3Server {
  /** `http://127.0.0.1:PORT`: the `s3Endpoint` setting (or AWS_ENDPOINT_URL_S3) for clients. */
  readonly endpoint: string;
  /** Where s3rver keeps buckets and objects; kept across stop() and restart(). */
  readonly directory: string;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** SIGKILL: the server vanishes mid-request. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory, after stop() or kill(). */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

const PROGRAM = fileURLToPath(new URL('./s3rver-process.js', import.meta.url));
const STOP_GRACE_MS = 5_000;
const START_TIMEOUT_MS = 15_000;

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'inferd-s3rver-'));
  const bucketArgs = options.buckets.flatMap((bucket) => ['--bucket', bucket]);
  const first = await launch([...bucketArgs, '--directory', directory, '--port', '0']);
  const port = first.port;
  let child = first.child;

  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const escalate = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited.finally(() => clearTimeout(escalate));
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
    async restart() {
      await stopWith('SIGTERM');
      child = (await launch([...bucketArgs, '--directory', directory, '--port', String(port)])).child;
    },
    async close() {
      await stopWith('SIGTERM');
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Spawns the server and waits for its `{"port":N}` line; fails with its stderr if it exits first. */
async function launch(args: readonly string[]): Promise<{ child: ChildProcess; port: number }> {
  // stdin stays an open pipe: the server exits when it closes, that is, when this process dies.
  const child = spawn(process.execPath, [PROGRAM, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start in ${START_TIMEOUT_MS} ms:\n${stderr}`)), START_TIMEOUT_MS);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited (${code ?? signal}) before listening:\n${stderr}`));
      });
      createInterface({ input: child.stdout! }).once('line', (first) => {
        clearTimeout(timer);
        resolve(first);
      });
    });
    const { port } = JSON.parse(line) as { port: number };
    return { child, port };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}
