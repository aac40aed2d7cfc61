/**
 * Tensor storage for the hand-off to workers: small decoded tensors share slabs, and
 * ownedTensors copies only what must not be moved or cloned whole.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { allocateShared, DTYPES, ownedTensors, type Tensor } from '../../src/codecs/tensor.js';

describe('allocateShared', () => {
  it('cuts zeroed, aligned, disjoint views from slabs, and gives larger tensors buffers of their own', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ dtype: fc.constantFrom(...DTYPES), length: fc.integer({ min: 0, max: 300 }) }), { maxLength: 60 }), (requests) => {
        const taken = requests.map(({ dtype, length }) => allocateShared(dtype, length));
        taken.forEach((data, i) => {
          assert.equal(data.length, requests[i]!.length);
          assert.equal(data.byteOffset % 8, 0);
          if (data.byteLength > 1024) assert.equal(data.buffer.byteLength, data.byteLength, 'a large tensor owns its buffer');
          assert.ok(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).every((byte) => byte === 0), 'fresh memory is zeros');
        });
        // Writing each one whole leaves every other one as it was.
        taken.forEach((data, i) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength).fill(i + 1));
        taken.forEach((data, i) => assert.ok(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).every((byte) => byte === (i + 1) % 256)));
      }),
    );
  });
});

describe('ownedTensors', () => {
  const tensor = (data: Float32Array): Tensor => ({ dtype: 'float32', dims: [data.length], data });
  const body = new Uint8Array(new ArrayBuffer(64 * 1024));

  it('copies what fills the body, and small views of a large buffer; keeps the rest as they are', () => {
    const own = new Float32Array(4);
    const slabView = allocateShared('float32', 4) as Float32Array;
    const wholeBody = new Float32Array(body.buffer);
    const largeView = new Float32Array(body.buffer, 128, (body.byteLength - 128) / 4);
    const smallViewOfLarge = new Float32Array(new ArrayBuffer(64 * 1024), 64, 4);
    const owned = ownedTensors(
      { own: tensor(own), slabView: tensor(slabView), wholeBody: tensor(wholeBody), largeView: tensor(largeView), smallViewOfLarge: tensor(smallViewOfLarge) },
      body,
    );
    assert.equal(owned.own!.data, own);
    assert.equal(owned.slabView!.data, slabView);
    assert.equal(owned.largeView!.data, largeView);
    for (const copied of ['wholeBody', 'smallViewOfLarge'] as const) {
      const { data } = owned[copied]!;
      assert.notEqual(data.buffer, { wholeBody, smallViewOfLarge }[copied].buffer);
      assert.equal(data.buffer.byteLength, data.byteLength, `${copied}: an exact buffer of its own`);
    }
  });
});
