/**
 * The pure parts of the TF.js backend, as tables: which model.json is a graph model and which
 * graph needs executeAsync(), dtype mapping, signatures from model.json, the batch-first rule,
 * output selection, and weight shard paths. Then, in this thread, one real model: every tensor a
 * run makes is disposed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ModelSignature, TensorSpec } from '../../src/codecs/tensor.js';
import {
  checkBatchFirst,
  graphSignatureOf,
  graphSignatureSpecs,
  inferdDType,
  isGraphModel,
  loadTfjsModel,
  needsAsyncExecution,
  selectOutputs,
  shardPath,
  specOf,
  tfjsDTypeOfProto,
  type ModelJson,
  type TensorInfoJson,
} from '../../src/runtime/tfjs-model.js';
import type { WorkerOptions } from '../../src/runtime/worker-protocol.js';
import { TFJS_MODELS } from '../tfjs-fixtures.js';

const spec = (name: string, shape: (number | null)[], dtype: TensorSpec['dtype'] = 'float32'): TensorSpec => ({ name, dtype, shape, dimNames: shape.map(() => null) });
const info = (dtype: string | undefined, dims: (string | number)[] | undefined): TensorInfoJson => ({
  name: 'x:0',
  ...(dtype === undefined ? {} : { dtype }),
  ...(dims === undefined ? {} : { tensorShape: { dim: dims.map((size) => ({ size })) } }),
});

describe('isGraphModel', () => {
  const cases: Array<[string, ModelJson, boolean]> = [
    ['format graph-model', { format: 'graph-model', modelTopology: {} }, true],
    ['format layers-model', { format: 'layers-model', modelTopology: { node: [] } }, false],
    ['no format, a topology with nodes', { modelTopology: { node: [{ op: 'Placeholder' }] } }, true],
    ['no format, a Keras topology', { modelTopology: { class_name: 'Sequential', config: {} } }, false],
  ];
  for (const [name, json, expected] of cases) it(`${name}: ${expected}`, () => assert.equal(isGraphModel(json), expected));
});

describe('needsAsyncExecution', () => {
  const cases: Array<[string, ModelJson, boolean]> = [
    ['plain convolutions', { modelTopology: { node: [{ op: 'Placeholder' }, { op: '_FusedConv2D' }, { op: 'Softmax' }] } }, false],
    ['a while loop', { modelTopology: { node: [{ op: 'Placeholder' }, { op: 'StatelessWhile' }] } }, true],
    ['non-max suppression', { modelTopology: { node: [{ op: 'NonMaxSuppressionV5' }] } }, true],
    ['a Where in a function of the library', { modelTopology: { node: [{ op: 'PartitionedCall' }], library: { function: [{ nodeDef: [{ op: 'Where' }] }] } } }, true],
    ['no topology', {}, false],
  ];
  for (const [name, json, expected] of cases) it(`${name}: ${expected}`, () => assert.equal(needsAsyncExecution(json), expected));
});

describe('dtypes', () => {
  const protos: Array<[string | undefined, string | undefined]> = [
    ['DT_FLOAT', 'float32'],
    ['DT_HALF', 'float32'],
    ['DT_DOUBLE', 'float32'],
    ['DT_INT32', 'int32'],
    ['DT_INT64', 'int32'],
    ['DT_UINT8', 'int32'],
    ['DT_BOOL', 'bool'],
    ['DT_STRING', 'string'],
    ['DT_COMPLEX64', 'complex64'],
    ['DT_RESOURCE', undefined],
    [undefined, undefined],
  ];
  for (const [proto, tfjs] of protos) it(`TF.js runs ${proto} as ${tfjs}`, () => assert.equal(tfjsDTypeOfProto(proto), tfjs));

  const mapped: Array<[string, string]> = [
    ['float32', 'float32'],
    ['int32', 'int32'],
    ['bool', 'bool'],
  ];
  for (const [tfjs, inferd] of mapped) it(`TF.js ${tfjs} is inferd's ${inferd}`, () => assert.equal(inferdDType(tfjs, 'input x'), inferd));

  for (const tfjs of ['string', 'complex64', undefined]) {
    it(`refuses TF.js ${tfjs}, naming the tensor`, () => {
      assert.throws(() => inferdDType(tfjs, "input 'text'"), /input 'text': dtype .* is not supported/);
    });
  }
});

describe('specOf', () => {
  it('marks -1, null and undefined dimensions dynamic, with no dimension names', () => {
    assert.deepEqual(specOf('x', 'float32', [-1, null, undefined, 3], 'input'), spec('x', [null, null, null, 3]));
  });
  it('refuses an unknown rank', () => {
    assert.throws(() => specOf('x', 'float32', undefined, 'input'), /input 'x' has no known rank/);
  });
});

describe('graph signatures from model.json', () => {
  it('takes userDefinedMetadata.signature over signature, as TF.js does', () => {
    const own = { inputs: { a: info('DT_FLOAT', [1]) } };
    const meta = { inputs: { b: info('DT_FLOAT', [1]) } };
    assert.equal(graphSignatureOf({ signature: own, userDefinedMetadata: { signature: meta } }), meta);
    assert.equal(graphSignatureOf({ signature: own }), own);
    assert.equal(graphSignatureOf({}), undefined);
  });

  const cases: Array<[string, Record<string, TensorInfoJson> | undefined, TensorSpec[] | undefined]> = [
    ['keyed by signature key, in order, sizes as strings', { images: info('DT_FLOAT', ['-1', '64', '64', '1']), mask: info('DT_BOOL', ['-1', 4]) }, [spec('images', [null, 64, 64, 1]), spec('mask', [null, 4], 'bool')]],
    ['int64 runs as int32', { ids: info('DT_INT64', ['-1', '-1']) }, [spec('ids', [null, null], 'int32')]],
    ['a scalar', { rate: info('DT_FLOAT', []) }, [spec('rate', [])]],
    ['none declared', undefined, undefined],
    ['an empty map', {}, undefined],
    ['a missing dtype: the model tells', { x: info(undefined, ['-1']) }, undefined],
    ['a missing shape: the model tells', { x: info('DT_FLOAT', undefined) }, undefined],
    ['an unknown rank: the model tells', { x: { dtype: 'DT_FLOAT', tensorShape: { unknownRank: true } } }, undefined],
  ];
  for (const [name, entries, expected] of cases) it(name, () => assert.deepEqual(graphSignatureSpecs(entries, 'input'), expected));

  it('refuses a declared string or complex tensor, naming it', () => {
    assert.throws(() => graphSignatureSpecs({ text: info('DT_STRING', ['-1']) }, 'input'), /input 'text': dtype string is not supported/);
    assert.throws(() => graphSignatureSpecs({ z: info('DT_COMPLEX64', ['-1']) }, 'output'), /output 'z': dtype complex64 is not supported/);
    assert.throws(() => graphSignatureSpecs({ r: info('DT_RESOURCE', ['-1']) }, 'input'), /input 'r': dtype DT_RESOURCE is not supported/);
  });
});

describe('checkBatchFirst', () => {
  const ok: Array<[string, ModelSignature]> = [
    ['dynamic batch in and out', { inputs: [spec('x', [null, 20])], outputs: [spec('y', [null, 3]), spec('z', [null, null, 2])] }],
    ['a fixed input batch: never merged, any first dimension', { inputs: [spec('x', [1, 20])], outputs: [spec('y', [1, 3])] }],
    ['one of two inputs fixed', { inputs: [spec('x', [null, 2]), spec('h', [1, 8])], outputs: [spec('y', [4])] }],
  ];
  for (const [name, signature] of ok) it(`accepts ${name}`, () => assert.doesNotThrow(() => checkBatchFirst(signature)));

  const refused: Array<[string, ModelSignature, RegExp]> = [
    ['a scalar output', { inputs: [spec('x', [null, 2])], outputs: [spec('loss', [])] }, /output 'loss' is a scalar/],
    ['a scalar output of a fixed-batch model', { inputs: [spec('x', [1, 2])], outputs: [spec('loss', [])] }, /output 'loss' is a scalar/],
    ['a fixed first output dimension under a dynamic batch', { inputs: [spec('x', [null, 2])], outputs: [spec('table', [10, 2])] }, /output 'table' has a fixed first dimension \(10\)/],
  ];
  for (const [name, signature, message] of refused) it(`refuses ${name}`, () => assert.throws(() => checkBatchFirst(signature), message));
});

describe('selectOutputs', () => {
  const declared = [spec('score', [null, 1]), spec('classes', [null, 3])];
  it('keeps all outputs in the model order when none are named', () => assert.deepEqual(selectOutputs(declared, undefined), declared));
  it('keeps the named ones in the order named', () => assert.deepEqual(selectOutputs(declared, ['classes', 'score']), [declared[1], declared[0]]));
  it('refuses a name the model does not have, listing those it has', () => {
    assert.throws(() => selectOutputs(declared, ['probabilities']), /output "probabilities" named in inferd.json is not in the model \(score, classes\)/);
  });
});

describe('shardPath', () => {
  const dir = '/models/m';
  const inside: Array<[string, string]> = [
    ['weights.bin', '/models/m/weights.bin'],
    ['group1-shard1of2.bin', '/models/m/group1-shard1of2.bin'],
    ['shards/part 1.bin', '/models/m/shards/part 1.bin'],
    ['./weights.bin', '/models/m/weights.bin'],
  ];
  for (const [path, expected] of inside) it(`reads "${path}" at ${expected}`, () => assert.equal(shardPath(dir, path), expected));

  const outside = ['../other/weights.bin', 'shards/../../x.bin', '..\\x.bin', '/etc/passwd', 'file:///etc/passwd', 'https://example.com/w.bin', '', '.'];
  for (const path of outside) it(`refuses "${path}"`, () => assert.throws(() => shardPath(dir, path), /weight shard path/));
});

describe('a TF.js model in this thread', () => {
  it('disposes every tensor a run makes', async () => {
    const options: WorkerOptions = {
      modelPath: join(TFJS_MODELS['tfjs-layers-multi'], 'model.json'),
      executionProvider: 'cpu',
      deviceId: 0,
      requireGpu: false,
      intraOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      outputs: ['classes'],
    };
    const model = await loadTfjsModel(options);
    const tf = ((await import('@tensorflow/tfjs')) as unknown as { default: typeof import('@tensorflow/tfjs') }).default;
    const inputs = {
      numbers: { dtype: 'float32' as const, dims: [2, 4], data: new Float32Array(8).fill(0.5) },
      flags: { dtype: 'float32' as const, dims: [2, 2], data: Float32Array.of(0, 1, 1, 0) },
    };
    await model.run(inputs);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i += 1) {
      const outputs = await model.run(inputs);
      assert.deepEqual(Object.keys(outputs), ['classes']);
      assert.deepEqual(outputs.classes!.dims, [2, 3]);
    }
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });
});
