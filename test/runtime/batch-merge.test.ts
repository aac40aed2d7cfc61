/**
 * Merge, split and pad, as properties: random requests (row counts, widths, lengths, dtypes)
 * survive a merge and a split unchanged, and on the real fixture models a batched run gives each
 * request exactly what running it alone gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import ort from 'onnxruntime-node';
import { allocate, type DType, type ModelSignature, type NamedTensors, type Tensor } from '../../src/codecs/tensor.js';
import { batchLayout, mergeInputs, splitOutputs, stackable, type BatchLayout } from '../../src/runtime/batch-merge.js';
import { MODELS } from '../helper.js';

const DTYPES: DType[] = ['float32', 'float64', 'int32', 'int64', 'uint8', 'bool'];

function tensorOf(dtype: DType, dims: number[], seed: number): Tensor {
  const data = allocate(dtype, dims.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i += 1) {
    const value = (seed * 31 + i * 7) % 100;
    if (data instanceof BigInt64Array) data[i] = BigInt(value);
    else (data as Float32Array)[i] = dtype === 'bool' ? value % 2 : value;
  }
  return { dtype, dims, data };
}

const toArray = (t: Tensor) => Array.from(t.data as ArrayLike<number | bigint>);

/** Requests in groups that stack, as the batcher forms them: each joins the first group whose first member it stacks with. */
function groupsOf(members: readonly NamedTensors[], layout: BatchLayout): NamedTensors[][] {
  const groups: NamedTensors[][] = [];
  for (const member of members) {
    const group = groups.find((g) => stackable(g[0]!, member, layout));
    if (group) group.push(member);
    else groups.push([member]);
  }
  return groups;
}

/** An identity "model": its outputs are its inputs, so merge ∘ split must be the identity. */
function echoSignature(dtype: DType, width: number | null, dimName: string | null): ModelSignature {
  const spec = { name: 'x', dtype, shape: [null, width], dimNames: ['batch', dimName] };
  return { inputs: [spec], outputs: [spec] };
}

describe('merge and split', () => {
  it('stack and unstack requests of random row counts along dimension 0', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...DTYPES),
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 8 }),
        (dtype, width, rowCounts) => {
          const layout = batchLayout(echoSignature(dtype, width, null), {});
          const members = rowCounts.map((rows, i) => ({ x: tensorOf(dtype, [rows, width], i) }));
          assert.equal(groupsOf(members, layout).length, 1, 'same shapes stack');
          const batch = mergeInputs(members, layout);
          assert.deepEqual(batch.inputs.x!.dims, [rowCounts.reduce((a, b) => a + b, 0), width]);
          const split = splitOutputs(batch.inputs, batch, layout);
          split.forEach((result, i) => {
            assert.deepEqual(result.x!.dims, members[i]!.x.dims);
            assert.deepEqual(toArray(result.x!), toArray(members[i]!.x));
          });
        },
      ),
    );
  });

  it('never stack different unpadded shapes, ranks or dtypes', () => {
    const layout = batchLayout(echoSignature('float32', null, 'seq'), {});
    const stacks = (a: number[], b: number[], dtype: DType = 'float32') =>
      stackable({ x: tensorOf('float32', a, 0) }, { x: tensorOf(dtype, b, 0) }, layout);
    assert.equal(stacks([1, 3], [1, 4]), false);
    assert.equal(stacks([1, 3], [1, 3], 'float64'), false);
    assert.equal(stacks([1, 3], [1, 3, 1]), false);
    assert.equal(stacks([1, 3], [5, 3]), true);
  });

  it('stack padded lengths within one bucket, and lengths beyond the last bucket only with their own', () => {
    const cases: Array<[RoundUp, number, number, boolean]> = [
      [{}, 3, 11, true],
      [{ buckets: [4, 8] }, 3, 4, true],
      [{ buckets: [4, 8] }, 4, 5, false],
      [{ buckets: [4, 8] }, 9, 9, true],
      [{ buckets: [4, 8] }, 9, 10, false],
      [{ buckets: [4, 8] }, 8, 9, false],
      [{ multipleOf: 4 }, 5, 8, true],
      [{ multipleOf: 4 }, 4, 5, false],
    ];
    for (const [roundUp, a, b, expected] of cases) {
      const layout = batchLayout(echoSignature('int64', null, 'seq'), { seq: { value: 0, ...roundUp } });
      const stacks = stackable({ x: tensorOf('int64', [1, a], 0) }, { x: tensorOf('int64', [2, b], 1) }, layout);
      assert.equal(stacks, expected, `${JSON.stringify(roundUp)}: ${a} and ${b}`);
    }
  });

  type RoundUp = { buckets?: number[]; multipleOf?: number };
  const longestOf = (members: readonly NamedTensors[]) => Math.max(...members.map((m) => m.x!.dims[1]!));

  it('pad a variable dimension to the batch length or bucket, and strip it from the outputs', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ rows: fc.integer({ min: 1, max: 3 }), length: fc.integer({ min: 1, max: 12 }) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.oneof(
          fc.constant<RoundUp>({}),
          fc.constant<RoundUp>({ buckets: [4, 8, 16] }),
          fc.integer({ min: 1, max: 5 }).map((multipleOf): RoundUp => ({ multipleOf })),
        ),
        (requests, { buckets, multipleOf }) => {
          const layout = batchLayout(echoSignature('int64', null, 'seq'), { seq: { value: 0, buckets, multipleOf } });
          const members = requests.map(({ rows, length }, i) => ({ x: tensorOf('int64', [rows, length], i + 1) }));
          const groups = groupsOf(members, layout);
          const roundUp = (length: number) =>
            buckets ? buckets.find((b) => b >= length)! : multipleOf ? Math.ceil(length / multipleOf) * multipleOf : longestOf(members);
          if (!buckets && !multipleOf) assert.equal(groups.length, 1, 'without buckets every length shares one batch');
          const bucketsUsed = groups.map((group) => roundUp(group[0]!.x!.dims[1]!));
          if (buckets || multipleOf) assert.equal(new Set(bucketsUsed).size, groups.length, 'one batch per padded length');
          for (const group of groups) {
            const batch = mergeInputs(group, layout);
            const longest = longestOf(group);
            assert.equal(new Set(group.map((m) => roundUp(m.x!.dims[1]!))).size, 1, 'a batch holds one padded length');
            const expected = buckets || multipleOf ? roundUp(longest) : longest;
            assert.equal(batch.inputs.x!.dims[1], expected);
            const split = splitOutputs(batch.inputs, batch, layout);
            split.forEach((result, i) => assert.deepEqual(toArray(result.x!), toArray(group[i]!.x!)));
          }
        },
      ),
    );
  });

  it('refuse to split outputs whose row count is not the batch row count', () => {
    const layout = batchLayout(echoSignature('float32', 2, null), {});
    const batch = mergeInputs([{ x: tensorOf('float32', [2, 2], 0) }, { x: tensorOf('float32', [1, 2], 1) }], layout);
    assert.throws(() => splitOutputs({ x: tensorOf('float32', [2, 2], 0) }, batch, layout), /2 rows for a batch of 3/);
  });
});

async function runAlone(session: ort.InferenceSession, inputs: NamedTensors): Promise<NamedTensors> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort.Tensor(t.dtype, t.data as Float32Array, [...t.dims]);
  const results = await session.run(feeds);
  const outputs: NamedTensors = {};
  for (const [name, t] of Object.entries(results)) outputs[name] = { dtype: t.type as DType, dims: [...t.dims], data: t.data as Float32Array };
  return outputs;
}

function signatureOf(session: ort.InferenceSession): ModelSignature {
  const spec = (m: ort.InferenceSession.ValueMetadata) => {
    const shape = (m as unknown as { shape: Array<number | string> }).shape;
    return {
      name: m.name,
      dtype: (m as unknown as { type: DType }).type,
      shape: shape.map((d) => (typeof d === 'number' ? d : null)),
      dimNames: shape.map((d) => (typeof d === 'string' ? d : null)),
    };
  };
  return { inputs: session.inputMetadata.map(spec), outputs: session.outputMetadata.map(spec) };
}

describe('batched runs of the real fixture models', () => {
  for (const [name, dir] of [
    ['churn-forest', MODELS.forest],
    ['churn-mlp', MODELS.mlp],
  ] as const) {
    it(`${name}: each request's outputs are what it gets alone`, async () => {
      const session = await ort.InferenceSession.create(`${dir}/model.onnx`);
      const layout = batchLayout(signatureOf(session), {});
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 6 }), async (rowCounts) => {
          const members = rowCounts.map((rows, i) => ({
            features: { dtype: 'float32' as const, dims: [rows, 20], data: Float32Array.from({ length: rows * 20 }, (_, j) => ((i * 13 + j) % 17) - 8) },
          }));
          const batch = mergeInputs(members, layout);
          const split = splitOutputs(await runAlone(session, batch.inputs), batch, layout);
          for (const [i, member] of members.entries()) {
            const alone = await runAlone(session, member);
            for (const output of Object.keys(alone)) assert.deepEqual(toArray(split[i]![output]!), toArray(alone[output]!));
          }
        }),
        { numRuns: 20 },
      );
    });
  }

  for (const rule of [
    { value: 0, buckets: [4, 8, 16] },
    { value: 0, multipleOf: 4 },
  ]) it(`token-scores: padded sequences give each request its own unpadded scores (${JSON.stringify(rule)})`, async () => {
    const session = await ort.InferenceSession.create(`${MODELS.tokens}/model.onnx`);
    const layout = batchLayout(signatureOf(session), { seq: rule });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 2, maxLength: 6 }), async (lengths) => {
        const members = lengths.map((length, i) => ({
          input_ids: { dtype: 'int64' as const, dims: [1, length], data: BigInt64Array.from({ length }, (_, j) => BigInt(1 + ((i + j) % 15))) },
          attention_mask: { dtype: 'int64' as const, dims: [1, length], data: new BigInt64Array(length).fill(1n) },
        }));
        for (const group of groupsOf(members, layout)) {
          const batch = mergeInputs(group, layout);
          const split = splitOutputs(await runAlone(session, batch.inputs), batch, layout);
          for (const [i, member] of group.entries()) {
            const alone = await runAlone(session, member);
            assert.deepEqual(split[i]!.scores!.dims, alone.scores!.dims);
            assert.deepEqual(toArray(split[i]!.scores!), toArray(alone.scores!));
          }
        }
      }),
      { numRuns: 20 },
    );
  });
});
