/** The four load scenarios: model, payloads, concurrency, and what the in-process ceiling feeds. */
import { join } from 'node:path';
import type { ScenarioId } from './options.js';
import { npyFloat32, randomInt, readCsvRows, seededRandom } from './payloads.js';

/** One input of an in-process ceiling run: random values in [min, max] (integers for int64). */
export interface FeedSpec {
  readonly name: string;
  readonly dtype: 'float32' | 'int64';
  /** The shape of one row, without the batch dimension. */
  readonly rowShape: readonly number[];
  readonly min: number;
  readonly max: number;
}

export interface CeilingSpec {
  readonly batchSizes: readonly number[];
  /** Runs cycle through these feeds, e.g. one per sequence length the requests carry. */
  readonly feedVariants: readonly (readonly FeedSpec[])[];
}

/** What one request feeds the model, for the runs without HTTP: the ceiling, and the baselines' thread count. */
export interface ScenarioInputs {
  readonly feedVariants: readonly (readonly FeedSpec[])[];
  /** Real rows for the first input instead of random values (see CeilingRequest.rowsCsvPath). */
  readonly rowsCsvPath?: string;
}

export interface Scenario {
  readonly id: ScenarioId;
  readonly title: string;
  readonly modelPath: string;
  readonly contentType: string;
  /** The Accept header of every request: the answer's format, the same for inferd and the baselines. */
  readonly accept: string;
  readonly connections: number;
  readonly rowsPerRequest: number;
  /** inferd.json keys that inferd needs to batch this model's requests together. */
  readonly batchingConfig?: Record<string, unknown>;
  readonly inputs: ScenarioInputs;
  /** Batch sizes of the in-process ceiling, only for compute-bound models, where the model rather than HTTP should be the limit. */
  readonly ceilingBatchSizes?: readonly number[];
  /** Also run inferd with data capture at 100%, to price it. */
  readonly measuresCapture?: boolean;
  buildBodies(): Buffer[];
}

const CEILING_BATCH_SIZES = [1, 8, 32, 64];
const TEXT_VOCABULARY_MAX_ID = 7999;
const TEXT_BODY_COUNT = 32;
const IMAGE_SHAPE = [3, 224, 224];
const IMAGE_BODY_COUNT = 4;
const MLP_ROWS_PER_REQUEST = 64;
const CHURN_FEATURES = 20;

function textSequenceLengths(): number[] {
  const random = seededRandom(7);
  return Array.from({ length: TEXT_BODY_COUNT }, () => randomInt(random, 16, 128));
}

function textBodies(): Buffer[] {
  const random = seededRandom(11);
  return textSequenceLengths().map((length) => {
    const ids = Array.from({ length }, () => randomInt(random, 1, TEXT_VOCABULARY_MAX_ID));
    const mask = new Array<number>(length).fill(1);
    return Buffer.from(JSON.stringify({ inputs: { input_ids: [ids], attention_mask: [mask] } }));
  });
}

function imageBodies(): Buffer[] {
  const random = seededRandom(13);
  const elements = IMAGE_SHAPE.reduce((a, b) => a * b, 1);
  return Array.from({ length: IMAGE_BODY_COUNT }, () => {
    const pixels = Float32Array.from({ length: elements }, () => random() * 4 - 2);
    return npyFloat32([1, ...IMAGE_SHAPE], pixels);
  });
}

export function defineScenarios(modelsDir: string): Record<ScenarioId, Scenario> {
  const churnRequests = join(modelsDir, 'churn-requests.csv');
  const churnInputs: ScenarioInputs = {
    feedVariants: [[{ name: 'features', dtype: 'float32', rowShape: [CHURN_FEATURES], min: -2, max: 2 }]],
    rowsCsvPath: churnRequests,
  };
  return {
    'churn-csv': {
      id: 'churn-csv',
      title: 'churn-forest, single-row CSV',
      modelPath: join(modelsDir, 'churn-forest.onnx'),
      contentType: 'text/csv',
      // CSV in, CSV out, as a SageMaker client of a tabular model asks for it.
      accept: 'text/csv',
      connections: 64,
      rowsPerRequest: 1,
      inputs: churnInputs,
      measuresCapture: true,
      buildBodies: () => readCsvRows(churnRequests).lines.map((line) => Buffer.from(line)),
    },
    'mlp-json': {
      id: 'mlp-json',
      title: `churn-mlp, JSON instances, ${MLP_ROWS_PER_REQUEST} rows per request`,
      modelPath: join(modelsDir, 'churn-mlp.onnx'),
      contentType: 'application/json',
      accept: 'application/json',
      // Each request is already a full batch, so a few in flight keep the workers busy; 64
      // connections would only add queueing delay to every figure.
      connections: 16,
      rowsPerRequest: MLP_ROWS_PER_REQUEST,
      inputs: churnInputs,
      buildBodies: () => {
        const { rows } = readCsvRows(churnRequests);
        const offsets = Array.from({ length: Math.ceil(rows.length / 8) }, (_, i) => i * 8);
        return offsets.map((offset) => {
          const instances = Array.from({ length: MLP_ROWS_PER_REQUEST }, (_, k) => rows[(offset + k) % rows.length]);
          return Buffer.from(JSON.stringify({ instances }));
        });
      },
    },
    'text-json': {
      id: 'text-json',
      title: 'text-classifier, JSON tensors, one sequence of 16..128 tokens per request',
      modelPath: join(modelsDir, 'text-classifier.onnx'),
      contentType: 'application/json',
      accept: 'application/json',
      connections: 64,
      rowsPerRequest: 1,
      // Buckets every 8 tokens: on a CPU, padding to powers of two cost more than batching gains
      // (docs/runtime.md, Shapes).
      batchingConfig: { batching: { pad: { seq: { value: 0, multipleOf: 8 } } } },
      // The ceiling runs every batch at one of the requests' lengths: perfect bucketing, no padding.
      inputs: {
        feedVariants: textSequenceLengths().map((length) => [
          { name: 'input_ids', dtype: 'int64', rowShape: [length], min: 1, max: TEXT_VOCABULARY_MAX_ID },
          { name: 'attention_mask', dtype: 'int64', rowShape: [length], min: 1, max: 1 },
        ]),
      },
      ceilingBatchSizes: CEILING_BATCH_SIZES,
      buildBodies: textBodies,
    },
    'mobilenet-npy': {
      id: 'mobilenet-npy',
      title: 'mobilenetv2, one float32 image per request as .npy',
      modelPath: join(modelsDir, 'mobilenetv2.onnx'),
      contentType: 'application/x-npy',
      accept: 'application/json',
      connections: 32,
      rowsPerRequest: 1,
      inputs: { feedVariants: [[{ name: 'image', dtype: 'float32', rowShape: IMAGE_SHAPE, min: -2, max: 2 }]] },
      ceilingBatchSizes: CEILING_BATCH_SIZES,
      buildBodies: imageBodies,
    },
  };
}
