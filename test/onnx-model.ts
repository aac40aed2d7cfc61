/**
 * Writes a real ONNX model without any ONNX library: `y = x · W`, with `W` an n×n float32
 * initializer. Its size is chosen by the test (a 2048×2048 weight is 16 MiB), which makes it the
 * fixture for anything about memory: a leaked session of it is plain to see in resident memory.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytes, int, message } from '../bench/protobuf.js';

const FLOAT = 1;

/** A float tensor's type with a symbolic batch dimension, then `n`. */
function valueInfo(field: number, name: string, n: number): Buffer {
  const shape = message(2, message(1, bytes(2, 'batch')), message(1, int(1, n)));
  return message(field, bytes(1, name), message(2, message(1, int(1, FLOAT), shape)));
}

/** The model's bytes: input `x` [batch, n], output `y` [batch, n]. */
export function matmulModel(n: number, weight = 0.001): Buffer {
  const weights = Buffer.alloc(n * n * 4);
  for (let i = 0; i < n * n; i += 1) weights.writeFloatLE(weight, i * 4);
  const node = message(1, bytes(1, 'x'), bytes(1, 'w'), bytes(2, 'y'), bytes(4, 'MatMul'));
  const initializer = message(5, int(1, n), int(1, n), int(2, FLOAT), bytes(8, 'w'), bytes(9, weights));
  const graph = message(7, node, bytes(2, 'matmul'), initializer, valueInfo(11, 'x', n), valueInfo(12, 'y', n));
  return Buffer.concat([int(1, 8), graph, message(8, bytes(1, ''), int(2, 13))]);
}

/** A model directory holding `matmulModel(n)` (and `inferdJson` as its inferd.json, when given). */
export async function writeMatmulModel(dir: string, n: number, inferdJson?: Record<string, unknown>): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), matmulModel(n));
  if (inferdJson) await writeFile(join(dir, 'inferd.json'), JSON.stringify(inferdJson));
  return dir;
}
