/**
 * The streamed answer's ordering, shown on a runtime whose inferences end when the test says so:
 * the first part is yielded while later parts have not run, no more than `partsInFlight` run at
 * once, and only the first part's admission is the queue's to refuse.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { decoderFor, encoderFor } from '../../src/codecs/registry.js';
import type { NamedTensors } from '../../src/codecs/tensor.js';
import type { InferenceResult, SubmitOptions } from '../../src/runtime/batcher.js';
import type { ModelInfo, Runtime } from '../../src/runtime/runtime.js';
import { invokeStreamed } from '../../src/modes/streamed-invocation.js';

interface Call {
  readonly rows: number;
  readonly admitted: boolean;
  finish(): void;
}

/** A runtime whose every inference waits for `finish()`; answers each row with its first value. */
function heldRuntime(): { runtime: Runtime; calls: Call[] } {
  const calls: Call[] = [];
  const runtime = {
    infer(_model: string, inputs: NamedTensors, options?: SubmitOptions): Promise<InferenceResult> {
      const x = inputs.x!;
      const rows = x.dims[0]!;
      return new Promise((resolve) => {
        const y = Float32Array.from({ length: rows }, (_, i) => Number(x.data[i * 2]));
        calls.push({ rows, admitted: options?.admitted ?? false, finish: () => resolve({ outputs: { y: { dtype: 'float32', dims: [rows, 1], data: y } }, computeMs: 0, queueMs: 0, batchRows: rows }) });
      });
    },
  } as unknown as Runtime;
  return { runtime, calls };
}

const MODEL = {
  name: 'held',
  maxInstances: 1,
  signature: { inputs: [{ name: 'x', dtype: 'float32', shape: [null, 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: [null, 1] }] },
} as unknown as ModelInfo;

const settle = () => new Promise((resolve) => setImmediate(resolve));

it('yields the first part while later parts have not run, never more than partsInFlight at once, later parts admitted', async () => {
  const { runtime, calls } = heldRuntime();
  const body = Buffer.from(Array.from({ length: 10 }, (_, i) => `${i},0`).join('\n') + '\n');
  const answer = invokeStreamed(runtime, MODEL, {
    body,
    decoder: decoderFor('text/csv')!,
    encoder: encoderFor('text/csv')!,
    recordsPerPart: 3,
    partsInFlight: 2,
  });
  assert.equal(answer.partCount, 4);
  assert.equal(answer.mediaType, 'text/csv');

  const first = answer.parts.next();
  await settle();
  assert.equal(calls.length, 2, 'two parts run ahead, no more');
  calls[0]!.finish();
  assert.equal((await first).value!.toString(), '0\n1\n2\n');
  assert.equal(calls.length, 3, 'the first part is out while the last has not even started');
  assert.deepEqual(calls.map((call) => call.rows), [3, 3, 3]);

  const rest: string[] = [];
  const reading = (async () => {
    for await (const part of answer.parts) rest.push(part.toString());
  })();
  for (let i = 1; i < 4; i += 1) {
    await settle();
    calls[i]!.finish();
  }
  await reading;
  assert.deepEqual(rest, ['3\n4\n5\n', '6\n7\n8\n', '9\n']);
  assert.deepEqual(calls.map((call) => call.admitted), [false, true, true, true], 'only the first part may be refused for a full queue');
});

it('stopping early runs no part that had not started', async () => {
  const { runtime, calls } = heldRuntime();
  const body = Buffer.from(Array.from({ length: 30 }, (_, i) => `${i},0`).join('\n') + '\n');
  const answer = invokeStreamed(runtime, MODEL, { body, decoder: decoderFor('text/csv')!, encoder: encoderFor('text/csv')!, recordsPerPart: 3, partsInFlight: 2 });
  const first = answer.parts.next();
  await settle();
  calls[0]!.finish();
  await first;
  await answer.parts.return(undefined);
  calls[1]!.finish();
  calls[2]!.finish();
  await settle();
  assert.equal(calls.length, 3, 'nothing new started after the consumer stopped');
});

it('answers a non-line Accept, or a model with a fixed batch dimension, in one part', async () => {
  const { runtime, calls } = heldRuntime();
  const body = Buffer.from('1,0\n2,0\n3,0\n');
  const npy = invokeStreamed(runtime, MODEL, { body, decoder: decoderFor('text/csv')!, encoder: encoderFor('application/x-npy')!, recordsPerPart: 1, partsInFlight: 2 });
  assert.equal(npy.partCount, 1);
  const fixed = { ...MODEL, signature: { ...MODEL.signature, inputs: [{ name: 'x', dtype: 'float32', shape: [3, 2] }] } } as unknown as ModelInfo;
  const whole = invokeStreamed(runtime, fixed, { body, decoder: decoderFor('text/csv')!, encoder: encoderFor('text/csv')!, recordsPerPart: 1, partsInFlight: 2 });
  assert.equal(whole.partCount, 1);
  const answer = whole.parts.next();
  await settle();
  calls.at(-1)!.finish();
  assert.equal((await answer).value!.toString(), '1\n2\n3\n');
});
