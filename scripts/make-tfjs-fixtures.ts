/**
 * Writes the TF.js test fixtures with TF.js itself, on the wasm backend the server falls back to:
 *
 * - test/fixtures/models/tfjs-layers-mlp and tfjs-layers-multi: layers models built here, their
 *   weights drawn from seeded normals, so every run writes the same bytes;
 * - test/fixtures/tfjs-reference.json: inputs for every fixture (values, or the seed of values)
 *   and the outputs TF.js computes for them in this process, from the models built here and from
 *   the graph model in tfjs-graph-gender (copied from an npm package, not built: see its README).
 *
 * Run: `npx tsc -p . && node dist/scripts/make-tfjs-fixtures.js`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { seededRandom } from '../bench/payloads.js';
import {
  referenceTensor,
  seededNormal,
  TFJS_MODELS,
  TFJS_REFERENCE_FILE,
  type ReferenceTensor,
  type TfjsFixture,
  type TfjsReference,
} from '../test/tfjs-fixtures.js';

type LayersModel = ReturnType<typeof tf.model>;
type TfTensor = ReturnType<typeof tf.tensor>;

/** Gives every weight seeded normal values: kernels of std 0.25, biases of std 0.1. */
function setSeededWeights(model: LayersModel, seed: number): void {
  model.setWeights(
    model.weights.map((weight, i) => {
      const shape = weight.shape as number[];
      const std = weight.name.endsWith('bias') ? 0.1 : 0.25;
      return tf.tensor(seededNormal(seed + i, shape.reduce((a, b) => a * b, 1), std), shape, 'float32');
    }),
  );
}

/** Like the churn models: 20 features in, three class probabilities out. */
function buildMlp(): LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.inputLayer({ inputShape: [20], name: 'features' }),
      tf.layers.dense({ units: 16, activation: 'relu', name: 'hidden' }),
      tf.layers.dense({ units: 3, activation: 'softmax', name: 'probabilities' }),
    ],
  });
  setSeededWeights(model, 1);
  return model;
}

/** Two named inputs, two named outputs. */
function buildMulti(): LayersModel {
  const numbers = tf.input({ shape: [4], name: 'numbers' });
  const flags = tf.input({ shape: [2], name: 'flags' });
  const joined = tf.layers.concatenate({ name: 'joined' }).apply([numbers, flags]);
  const shared = tf.layers.dense({ units: 8, activation: 'tanh', name: 'shared' }).apply(joined);
  const score = tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'score' }).apply(shared) as ReturnType<typeof tf.input>;
  const classes = tf.layers.dense({ units: 3, activation: 'softmax', name: 'classes' }).apply(shared) as ReturnType<typeof tf.input>;
  const model = tf.model({ inputs: [numbers, flags], outputs: [score, classes], name: 'multi' });
  setSeededWeights(model, 100);
  return model;
}

/** Saves as `model.json` and one shard, `weights.bin`, the layout TF.js's converters write. */
async function save(model: LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save({
    save: async (artifacts) => {
      const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
      const json = {
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), `${JSON.stringify(json, null, 2)}\n`);
      await writeFile(join(dir, 'weights.bin'), new Uint8Array(weights));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  });
}

/** Values rounded to 4 decimals, so the file shows them as they are fed. */
function seededRows(seed: number, dims: number[], draw: (next: () => number) => number): ReferenceTensor {
  const next = seededRandom(seed);
  const count = dims.reduce((a, b) => a * b, 1);
  return { dims, data: Array.from({ length: count }, () => Math.round(draw(next) * 1e4) / 1e4) };
}

function asReference(tensor: TfTensor): ReferenceTensor {
  return { dims: tensor.shape, data: Array.from(tensor.dataSync()) };
}

function toTf(reference: ReferenceTensor): TfTensor {
  const { dims, data } = referenceTensor(reference);
  return tf.tensor(data as Float32Array, [...dims], 'float32');
}

async function layersReference(model: LayersModel, inputs: Record<string, ReferenceTensor>): Promise<TfjsReference['models'][TfjsFixture]> {
  const results = model.predict(model.inputs.map((input) => toTf(inputs[input.sourceLayer.name]!)));
  const list = Array.isArray(results) ? results : [results];
  return { inputs, outputs: Object.fromEntries(model.outputs.map((output, i) => [output.sourceLayer.name, asReference(list[i]!)])) };
}

/** The graph model read as its files are, and run by TF.js's own loader. */
async function graphReference(dir: string, inputs: Record<string, ReferenceTensor>): Promise<TfjsReference['models'][TfjsFixture]> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as Parameters<typeof tf.io.getModelArtifactsForJSON>[0];
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const shards = await Promise.all(manifest.flatMap((group) => group.paths).map((path) => readFile(join(dir, path))));
    const bytes = Buffer.concat(shards);
    return [manifest.flatMap((group) => group.weights), bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer];
  });
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  const feeds = Object.fromEntries(Object.entries(inputs).map(([name, reference]) => [name, toTf(reference)]));
  const outputNames = model.outputNodes;
  const results = model.execute(feeds, outputNames);
  const list = Array.isArray(results) ? results : [results];
  return { inputs, outputs: Object.fromEntries(outputNames.map((name, i) => [name, asReference(list[i]!)])) };
}

/** Two-space JSON with number arrays on one line. */
function stringify(value: unknown): string {
  return `${JSON.stringify(value, null, 2).replace(/\[\s+([-\d.e+,\s]+?)\s+\]/g, (_, inner: string) => `[${inner.split(/,\s+/).join(', ')}]`)}\n`;
}

async function main(): Promise<void> {
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  const mlp = buildMlp();
  const multi = buildMulti();
  await save(mlp, TFJS_MODELS['tfjs-layers-mlp']);
  await save(multi, TFJS_MODELS['tfjs-layers-multi']);

  const gaussian = (next: () => number) => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const reference: TfjsReference = {
    generatedBy: `scripts/make-tfjs-fixtures.ts, @tensorflow/tfjs ${tf.version.tfjs} on the ${tf.getBackend()} backend`,
    models: {
      'tfjs-layers-mlp': await layersReference(mlp, { features: seededRows(11, [5, 20], gaussian) }),
      'tfjs-layers-multi': await layersReference(multi, {
        numbers: seededRows(12, [4, 4], gaussian),
        flags: seededRows(13, [4, 2], (next) => (next() < 0.5 ? 0 : 1)),
      }),
      // 4,096 values a row: given by seed (seededUniform), not spelled out.
      'tfjs-graph-gender': await graphReference(TFJS_MODELS['tfjs-graph-gender'], { 'input_1:0': { dims: [3, 64, 64, 1], seed: 14 } }),
    },
  };
  await writeFile(TFJS_REFERENCE_FILE, stringify(reference));
  console.log(`wrote ${Object.values(TFJS_MODELS).join(', ')} (layers) and ${TFJS_REFERENCE_FILE}`);
}

await main();
