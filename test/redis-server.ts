/**
 * A real redis-server (from .tools/, see scripts/install-test-tools.sh) in a child process, with
 * the append-only file synced on every write, which tests can kill and restart on the same port
 * and data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from './child.js';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** SIGKILL: the server vanishes without a chance to flush anything. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory (after kill() or not). */
  restart(): Promise<void>;
  /** Stops it for good and removes its data directory. */
  close(): Promise<void>;
}

// This file runs from dist/test/, two levels below the repository root.
const PROGRAM = fileURLToPath(new URL('../../.tools/bin/redis-server', import.meta.url));
const START_TIMEOUT_MS = 15_000;
/** Another test process may take the free port before redis-server binds it. */
const PORT_ATTEMPTS = 5;

export async function startRedisServer(): Promise<RedisServer> {
  const directory = await mkdtemp(join(tmpdir(), 'inferd-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    child = await launch(port, directory).catch((error: Error) => {
      if (attempt === PORT_ATTEMPTS || !/address already in use/i.test(error.message)) throw error;
      return undefined;
    });
  }
  let running: ChildProcess = child;

  const kill = async (): Promise<void> => {
    if (running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill();
      running = await launch(port, directory);
    },
    async close() {
      await kill();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Spawns redis-server and waits until it has loaded its data and listens. */
async function launch(port: number, directory: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', directory];
  const durability = ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''];
  const child = spawn(PROGRAM, [...args, ...durability], { stdio: ['ignore', 'pipe', 'pipe'] });
  // No process outlives the tests: redis-server does not notice its parent going away.
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));

  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start in ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${PROGRAM} (bash scripts/install-test-tools.sh installs it): ${error.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code ?? signal}) before accepting connections:\n${output}`));
      });
      // Read the log to its end even once ready: a full pipe would stall the server.
      createInterface({ input: child.stdout! }).on('line', (line) => {
        output += `${line}\n`;
        if (!line.includes('Ready to accept connections')) return;
        clearTimeout(timer);
        resolve();
      });
    });
    return child;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}
