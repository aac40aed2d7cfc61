/** `promtool check metrics` (installed into .tools/ by scripts/install-test-tools.sh) on an exposition. */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from './helper.js';

const PROMTOOL = `${REPO_ROOT}.tools/bin/promtool`;

export async function promtoolCheck(exposition: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin.end(exposition);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  return { code, output };
}
