/**
 * SIGTERM under keep-alive load, as SageMaker or Kubernetes sends it: every request that
 * reaches the server gets an answer (its result, or 503 with `Retry-After`), no client sees a
 * socket closed under a request it sent, and the process exits 0.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MODELS } from '../helper.js';
import { freePort, spawnServer, waitUntilReady, type Child } from '../child.js';

const ROW = `${Array.from({ length: 20 }, (_, i) => i / 10).join(',')}\n`;
const CLIENTS = 32;
const ROUNDS = 5;

/** What one request came to: an HTTP status, `refused`, or the error a client saw. */
type Outcome = string;

/**
 * Why a fetch failed: undici puts the socket's error in `cause`. A connection refused, or reset
 * while connecting (it reached the listener's backlog as the listener closed), carried no request.
 */
function failureOf(error: unknown): Outcome {
  const cause = (error as { cause?: { code?: string; syscall?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED' || (cause?.syscall === 'connect' && cause.code === 'ECONNRESET')) return 'refused';
  return `${cause?.code ?? 'error'}: ${cause?.message ?? String(error)}`;
}

/** One keep-alive client: requests back to back until the server refuses connections. */
async function clientLoop(child: Child, outcomes: Map<Outcome, number>, problems: string[]): Promise<void> {
  const count = (outcome: Outcome) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  for (;;) {
    let response: Response;
    try {
      response = await fetch(`${child.url}/invocations`, { method: 'POST', body: ROW, headers: { 'content-type': 'text/csv' } });
      await response.arrayBuffer();
    } catch (error) {
      count(failureOf(error));
      return;
    }
    count(String(response.status));
    if (response.status === 503 && response.headers.get('retry-after') === null) problems.push('a 503 without Retry-After');
  }
}

async function drainRound(
  processes: number,
): Promise<{ outcomes: Map<Outcome, number>; problems: string[]; exit: Awaited<Child['exited']>; drained: number }> {
  const port = await freePort();
  const child = await spawnServer(
    ['dist/src/main.js', 'serve'],
    { SAGEMAKER_BIND_TO_PORT: String(port), INFERD_MODEL_DIR: MODELS.forest, INFERD_PROCESSES: String(processes) },
    port,
  );
  try {
    await waitUntilReady(child);
    const outcomes = new Map<Outcome, number>();
    const problems: string[] = [];
    const loops = Array.from({ length: CLIENTS }, () => clientLoop(child, outcomes, problems));
    // Signal once every client has had answers on its open connection.
    const deadline = Date.now() + 30_000;
    while ((outcomes.get('200') ?? 0) < CLIENTS * 4) {
      assert.ok(Date.now() < deadline, `load never got going: ${JSON.stringify([...outcomes])}\n${child.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    child.process.kill('SIGTERM');
    await Promise.all(loops);
    const exit = await child.exited;
    // Exit 0 after the drain's last line: not an event loop that ran empty with work left.
    const drained = child.output().match(/"msg":"drained; exiting"/g)?.length ?? 0;
    return { outcomes, problems, exit, drained };
  } finally {
    child.process.kill('SIGKILL');
  }
}

describe('SIGTERM under 32 keep-alive clients', () => {
  for (const processes of [1, 2]) {
    it(`--processes ${processes}: every request answered 200 or 503, or its connection refused; exit 0; ${ROUNDS} rounds`, async () => {
      for (let round = 1; round <= ROUNDS; round += 1) {
        const { outcomes, problems, exit, drained } = await drainRound(processes);
        const seen = JSON.stringify(Object.fromEntries(outcomes));
        for (const outcome of outcomes.keys()) {
          assert.ok(['200', '503', 'refused'].includes(outcome), `round ${round}: a client saw "${outcome}" (${seen})`);
        }
        assert.equal(outcomes.get('refused'), CLIENTS, `round ${round}: each client ends refused (${seen})`);
        assert.deepEqual(problems, [], `round ${round}`);
        assert.deepEqual(exit, { code: 0, signal: null }, `round ${round}`);
        assert.equal(drained, processes, `round ${round}: every server process logged the end of its drain`);
      }
    });
  }
});
