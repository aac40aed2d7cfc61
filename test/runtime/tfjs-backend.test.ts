/**
 * The TF.js backend through the real worker pool: each fixture (two layers models built by
 * scripts/make-tfjs-fixtures.ts, one converted graph model from npm) loads in a worker thread on
 * the wasm engine, reports its signature, answers the reference outputs TF.js computed in-process,
 * and answers a batch of N rows as N single rows. Broken model directories fail the load with a
 * message that says what is wrong.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ModelSignature, NamedTensors } from '../../src/codecs/tensor.js';
import { BACKENDS } from '../../src/runtime/backends.js';
import { WorkerPool, type StartedPool } from '../../src/runtime/worker-pool.js';
import type { WorkerOptions } from '../../src/runtime/worker-protocol.js';
import { loadTfjsReference, referenceTensors, sliceRows, TFJS_MODELS, type TfjsFixture, type TfjsReference } from '../tfjs-fixtures.js';

const options = (modelDir: string, overrides: Partial<WorkerOptions> = {}): WorkerOptions => ({
  modelPath: join(modelDir, 'model.json'),
  executionProvider: 'cpu',
  deviceId: 0,
  requireGpu: false,
  intraOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  outputs: undefined,
  ...overrides,
});

const workerErrors: Error[] = [];
const pools: WorkerPool[] = [];
async function start(worker: WorkerOptions): Promise<StartedPool> {
  const started = await WorkerPool.start(1, worker, (error) => workerErrors.push(error), BACKENDS.tfjs.workerFile);
  pools.push(started.pool);
  return started;
}

after(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
  assert.deepEqual(workerErrors, []);
});

async function infer(pool: WorkerPool, inputs: NamedTensors): Promise<NamedTensors> {
  const outcome = await pool.run({ inputs });
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
  return outcome.outputs;
}

function assertClose(actual: NamedTensors, expected: NamedTensors, tolerance = 1e-5): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected));
  for (const [name, tensor] of Object.entries(expected)) {
    const got = actual[name]!;
    assert.equal(got.dtype, 'float32', name);
    assert.deepEqual(got.dims, tensor.dims, name);
    assert.ok(got.data instanceof Float32Array, `${name} is a Float32Array`);
    got.data.forEach((value, i) => {
      const want = tensor.data[i] as number;
      assert.ok(Math.abs((value as number) - want) <= tolerance, `${name}[${i}]: ${value} differs from ${want}`);
    });
  }
}

const f32 = (name: string, shape: (number | null)[]) => ({ name, dtype: 'float32' as const, shape, dimNames: shape.map(() => null) });

const SIGNATURES: Record<TfjsFixture, ModelSignature> = {
  'tfjs-layers-mlp': { inputs: [f32('features', [null, 20])], outputs: [f32('probabilities', [null, 3])] },
  'tfjs-layers-multi': { inputs: [f32('numbers', [null, 4]), f32('flags', [null, 2])], outputs: [f32('score', [null, 1]), f32('classes', [null, 3])] },
  'tfjs-graph-gender': { inputs: [f32('input_1:0', [null, 64, 64, 1])], outputs: [f32('Identity:0', [null, 2])] },
};

let reference: TfjsReference;
before(async () => {
  reference = await loadTfjsReference();
});

for (const fixture of Object.keys(TFJS_MODELS) as TfjsFixture[]) {
  describe(`the ${fixture} fixture in a worker`, () => {
    let started: StartedPool;
    before(async () => {
      started = await start(options(TFJS_MODELS[fixture]));
    });

    it('reports its signature, on the wasm engine, without warnings', () => {
      assert.deepEqual(started.signature, SIGNATURES[fixture]);
      assert.equal(started.engine, 'wasm');
      assert.equal(started.provider, 'cpu');
      assert.deepEqual(started.warnings, []);
    });

    it('answers the outputs TF.js computed in-process', async () => {
      const { inputs, outputs } = reference.models[fixture];
      assertClose(await infer(started.pool, referenceTensors(inputs)), referenceTensors(outputs));
    });

    it('answers a batch of N rows as N single rows', async () => {
      // The pool moves input buffers to the worker: each run gets its own.
      const inputs = () => referenceTensors(reference.models[fixture].inputs);
      const rows = Object.values(inputs())[0]!.dims[0]!;
      assert.ok(rows > 1);
      const batch = await infer(started.pool, inputs());
      for (let row = 0; row < rows; row += 1) {
        assertClose(await infer(started.pool, sliceRows(inputs(), row, row + 1)), sliceRows(batch, row, row + 1));
      }
    });
  });
}

/** A copy of a fixture directory, its model.json changed by `edit`. */
async function editedCopy(fixture: TfjsFixture, edit: (json: Record<string, unknown>) => void, shards: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-tfjs-'));
  const json = JSON.parse(await readFile(join(TFJS_MODELS[fixture], 'model.json'), 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
  for (const shard of shards) await copyFile(join(TFJS_MODELS[fixture], shard), join(dir, shard));
  return dir;
}

type GraphJson = { userDefinedMetadata: { signature?: { inputs: Record<string, { dtype: string }> } } };

describe('the TF.js backend', () => {
  it('returns only the outputs inferd.json names, in its order', async () => {
    const { pool, signature } = await start(options(TFJS_MODELS['tfjs-layers-multi'], { outputs: ['classes'] }));
    assert.deepEqual(signature.outputs, [f32('classes', [null, 3])]);
    const { inputs, outputs } = reference.models['tfjs-layers-multi'];
    const expected = referenceTensors(outputs);
    assertClose(await infer(pool, referenceTensors(inputs)), { classes: expected.classes! });
  });

  it('serves a graph model without a signature: inputs from its placeholders, outputs from a probe run', async () => {
    const dir = await editedCopy('tfjs-graph-gender', (json) => delete (json as GraphJson).userDefinedMetadata.signature, ['gender.bin']);
    const { pool, signature } = await start(options(dir));
    // Named by their graph nodes now.
    assert.deepEqual(signature, { inputs: [f32('input_1', [null, 64, 64, 1])], outputs: [f32('Identity', [null, 2])] });
    const { inputs, outputs } = reference.models['tfjs-graph-gender'];
    const got = await infer(pool, { input_1: referenceTensors(inputs)['input_1:0']! });
    assertClose(got, { Identity: referenceTensors(outputs)['Identity:0']! });
  });

  it('answers a failure inside TF.js as an inference failure, and goes on serving', async () => {
    const { pool } = await start(options(TFJS_MODELS['tfjs-layers-mlp']));
    // The HTTP thread would refuse these dims (422); handed to the worker directly, TF.js fails.
    const outcome = await pool.run({ inputs: { features: { dtype: 'float32', dims: [2, 7], data: new Float32Array(14) } } });
    assert.equal(outcome.ok, false);
    assert.equal(!outcome.ok && outcome.code, 'INFERD_ERR_INFERENCE_FAILED');
    assert.ok(!outcome.ok && outcome.message.length > 0);
    const { inputs, outputs } = reference.models['tfjs-layers-mlp'];
    assertClose(await infer(pool, referenceTensors(inputs)), referenceTensors(outputs));
  });

  it('warns that the wasm engine has no threads in Node when intraOpNumThreads asks for more', async () => {
    const { warnings, engine } = await start(options(TFJS_MODELS['tfjs-layers-mlp'], { intraOpNumThreads: 2 }));
    assert.equal(engine, 'wasm');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /wasm backend runs 1 thread\(s\) here, not intraOpNumThreads 2/);
  });

  it('runs on the CPU, with a warning, when CUDA is asked for and tfjs-node-gpu is not installed', async () => {
    const { provider, engine, warnings } = await start(options(TFJS_MODELS['tfjs-layers-mlp'], { executionProvider: 'cuda' }));
    assert.deepEqual([provider, engine], ['cpu', 'wasm']);
    assert.match(warnings.join('\n'), /needs @tensorflow\/tfjs-node-gpu, which is not installed or does not load; running on the CPU/);
  });

  const failures: Array<[string, () => Promise<WorkerOptions>, RegExp]> = [
    [
      'a model.json whose weight shard is missing',
      async () => options(await editedCopy('tfjs-graph-gender', () => {}, [])),
      /weight shard "gender\.bin" listed in .*model\.json cannot be read: ENOENT/,
    ],
    [
      'a graph model with a string input',
      async () => options(await editedCopy('tfjs-graph-gender', (json) => ((json as GraphJson).userDefinedMetadata.signature!.inputs['input_1:0']!.dtype = 'DT_STRING'), ['gender.bin'])),
      /input 'input_1:0': dtype string is not supported/,
    ],
    [
      'a weight shard outside the model directory',
      async () =>
        options(await editedCopy('tfjs-layers-mlp', (json) => ((json as { weightsManifest: { paths: string[] }[] }).weightsManifest[0]!.paths = ['../tfjs-layers-mlp/weights.bin']), [])),
      /weight shard path "\.\.\/tfjs-layers-mlp\/weights\.bin" must be relative to the model directory/,
    ],
    ['a file that is not a model.json', async () => ({ ...options(TFJS_MODELS['tfjs-graph-gender']), modelPath: join(TFJS_MODELS['tfjs-graph-gender'], 'README.md') }), /not a readable TF\.js model\.json/],
    ['CUDA required without tfjs-node-gpu', async () => options(TFJS_MODELS['tfjs-layers-mlp'], { executionProvider: 'cuda', requireGpu: true }), /needs @tensorflow\/tfjs-node-gpu/],
  ];
  for (const [name, worker, message] of failures) {
    it(`fails the load of ${name}, saying why`, async () => {
      await assert.rejects(WorkerPool.start(1, await worker(), (error) => workerErrors.push(error), BACKENDS.tfjs.workerFile), (error: { code?: string; message: string }) => {
        assert.equal(error.code, 'INFERD_ERR_MODEL_LOAD_FAILED');
        assert.match(error.message, message);
        return true;
      });
    });
  }
});
