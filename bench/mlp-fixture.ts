/**
 * The small MLP of the TF.js-versus-ONNX benchmark, written both ways from the same seeded
 * weights: a TF.js layers model built and saved with @tensorflow/tfjs itself (model.json +
 * weights.bin, through an IOHandler that writes files), and an ONNX model of the same arithmetic
 * (onnx-mlp.ts). Dense(20→64, relu) → Dense(64→64, relu) → Dense(64→3, softmax).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SymbolicTensor, Tensor2D } from '@tensorflow/tfjs';
import { onnxMlp, type DenseLayer } from './onnx-mlp.js';
import { seededRandom } from './payloads.js';

export const MLP_INPUTS = 20;
export const MLP_CLASSES = 3;
const HIDDEN = [64, 64];
export const INPUT_NAME = 'features';
export const OUTPUT_NAME = 'probabilities';

/** Glorot-uniform kernels (what Keras would draw) and small nonzero biases, so that biases count in the check. */
export function seededLayers(seed: number): DenseLayer[] {
  const random = seededRandom(seed);
  const sizes = [MLP_INPUTS, ...HIDDEN, MLP_CLASSES];
  return sizes.slice(1).map((units, i) => {
    const inputs = sizes[i]!;
    const limit = Math.sqrt(6 / (inputs + units));
    return {
      inputs,
      units,
      kernel: Float32Array.from({ length: inputs * units }, () => (random() * 2 - 1) * limit),
      bias: Float32Array.from({ length: units }, () => (random() * 2 - 1) * 0.1),
      activation: i === sizes.length - 2 ? 'softmax' : 'relu',
    };
  });
}

export async function writeOnnxModel(dir: string, layers: readonly DenseLayer[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), onnxMlp(layers, { input: INPUT_NAME, output: OUTPUT_NAME }));
}

/**
 * Builds the layers model with TF.js (its CPU backend, in this process), sets the weights, and
 * saves it as model.json + weights.bin. Returns TF.js's own prediction for `rows`, a third opinion
 * when the servers disagree with the reference.
 */
export async function writeTfjsModel(dir: string, layers: readonly DenseLayer[], rows: readonly (readonly number[])[]): Promise<number[][]> {
  const tf = await import('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  await mkdir(dir, { recursive: true });
  const input = tf.input({ shape: [MLP_INPUTS], name: INPUT_NAME, dtype: 'float32' });
  let x: SymbolicTensor = input;
  const dense = layers.map((layer, i) =>
    tf.layers.dense({ units: layer.units, activation: layer.activation, name: i === layers.length - 1 ? OUTPUT_NAME : `dense_${i + 1}` }),
  );
  for (const layer of dense) x = layer.apply(x) as SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: x, name: 'mlp' });
  dense.forEach((layer, i) => {
    const { inputs, units, kernel, bias } = layers[i]!;
    layer.setWeights([tf.tensor2d(kernel, [inputs, units]), tf.tensor1d(bias)]);
  });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(join(dir, 'model.json'), `${JSON.stringify(modelJson)}\n`);
      await writeFile(join(dir, 'weights.bin'), Buffer.from(weightData));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weightData.byteLength } };
    }),
  );
  const output = model.predict(tf.tensor2d(rows.map((r) => [...r]), [rows.length, MLP_INPUTS])) as Tensor2D;
  const predicted = (await output.array()) as number[][];
  tf.disposeVariables();
  return predicted;
}
