/**
 * Loading and running a TensorFlow.js model (graph or layers format) in a worker thread: the
 * engine (tfjs-node-gpu, tfjs-node, or the wasm backend of plain @tensorflow/tfjs), the model
 * directory read with `fs` through an IOHandler (plain TF.js has no `file://` loader; only
 * tfjs-node registers one), and the signature in inferd's terms. Imported only by the worker:
 * TF.js must never load on the HTTP thread.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { toOwnedTensor, type DType, type ModelSignature, type NamedTensors, type Tensor, type TensorSpec } from '../codecs/tensor.js';
import { warmUpInputs } from './worker-entry.js';
import type { ExecutionProviderName, WorkerOptions } from './worker-protocol.js';

type Tf = typeof import('@tensorflow/tfjs');
type TfTensor = ReturnType<Tf['tensor']>;
type GraphModel = Awaited<ReturnType<Tf['loadGraphModel']>>;
type LayersModel = Awaited<ReturnType<Tf['loadLayersModel']>>;
type ModelArtifacts = Awaited<ReturnType<Tf['io']['getModelArtifactsForJSON']>>;
type WeightsManifestEntry = NonNullable<ModelArtifacts['weightSpecs']>[number];

/** A tensor of a graph model's `signature` (TensorFlow's TensorInfo proto, as JSON). */
export interface TensorInfoJson {
  readonly name?: string;
  /** A TensorFlow DataType: `DT_FLOAT`, `DT_INT32`... */
  readonly dtype?: string;
  readonly tensorShape?: { readonly dim?: readonly { readonly size?: string | number }[]; readonly unknownRank?: boolean };
}

export interface WeightsGroupJson {
  readonly paths: readonly string[];
  readonly weights: readonly WeightsManifestEntry[];
}

export interface ModelJson {
  readonly format?: string;
  readonly modelTopology?: unknown;
  readonly weightsManifest?: readonly WeightsGroupJson[];
  readonly signature?: GraphSignatureJson;
  readonly userDefinedMetadata?: { readonly signature?: GraphSignatureJson };
}

export interface GraphSignatureJson {
  readonly inputs?: Readonly<Record<string, TensorInfoJson>>;
  readonly outputs?: Readonly<Record<string, TensorInfoJson>>;
}

/** A graph model's signature as TF.js uses it: `userDefinedMetadata.signature` wins (tfjs-converter GraphModel.loadWithWeightMap). */
export function graphSignatureOf(json: ModelJson): GraphSignatureJson | undefined {
  return json.userDefinedMetadata?.signature ?? json.signature;
}

/** A graph model (converted from a SavedModel or frozen graph) or a layers model (Keras). */
export function isGraphModel(json: ModelJson): boolean {
  if (json.format !== undefined) return json.format === 'graph-model';
  const topology = json.modelTopology as { node?: unknown } | undefined;
  return Array.isArray(topology?.node);
}

// Ops that make GraphModel.execute() throw (tfjs-converter executor/model_analysis.ts): control
// flow, outputs of data-dependent shape, hash tables. Such graphs run with executeAsync(); the
// others with execute(), since executeAsync() on them logs a warning on every call.
const ASYNC_OPS = new Set([
  'Switch', 'Merge', 'Enter', 'Exit', 'NextIteration', 'StatelessIf', 'StatelessWhile', 'if', 'While',
  'NonMaxSuppressionV2', 'NonMaxSuppressionV3', 'NonMaxSuppressionV5', 'Where',
  'HashTable', 'HashTableV2', 'LookupTableImport', 'LookupTableImportV2', 'LookupTableFind', 'LookupTableFindV2', 'LookupTableSize', 'LookupTableSizeV2',
]);

/** Whether a graph model needs `executeAsync()`: an op of ASYNC_OPS in its graph or in one of its functions. */
export function needsAsyncExecution(json: ModelJson): boolean {
  const topology = json.modelTopology as { node?: { op?: string }[]; library?: { function?: { nodeDef?: { op?: string }[] }[] } } | undefined;
  const nodes = [...(topology?.node ?? []), ...(topology?.library?.function ?? []).flatMap((f) => f.nodeDef ?? [])];
  return nodes.some((node) => node.op !== undefined && ASYNC_OPS.has(node.op));
}

/**
 * The TF.js dtype TensorFlow.js gives a TensorFlow DataType, as tfjs-converter does
 * (`parseDtypeParam`): 64-bit and 8-bit integers run as int32, halves and doubles as float32.
 * Undefined for a DataType TF.js does not know.
 */
export function tfjsDTypeOfProto(proto: string | undefined): string | undefined {
  switch (proto) {
    case 'DT_FLOAT':
    case 'DT_HALF':
    case 'DT_DOUBLE':
      return 'float32';
    case 'DT_INT32':
    case 'DT_INT64':
    case 'DT_INT8':
    case 'DT_UINT8':
      return 'int32';
    case 'DT_BOOL':
      return 'bool';
    case 'DT_STRING':
      return 'string';
    case 'DT_COMPLEX64':
    case 'DT_COMPLEX128':
      return 'complex64';
    default:
      return undefined;
  }
}

const DTYPES_OF_TFJS: Readonly<Record<string, DType>> = { float32: 'float32', int32: 'int32', bool: 'bool' };

/** inferd's dtype of a TF.js dtype; throws for those inferd cannot carry (string, complex64). */
export function inferdDType(tfjsDType: string | undefined, what: string): DType {
  const dtype = tfjsDType === undefined ? undefined : DTYPES_OF_TFJS[tfjsDType];
  if (dtype === undefined) {
    throw new Error(`${what}: dtype ${tfjsDType ?? '(none)'} is not supported (TF.js tensors inferd serves are float32, int32 and bool)`);
  }
  return dtype;
}

/** A tensor spec from a TF.js shape, where -1, null and undefined mark a dynamic dimension. */
export function specOf(name: string, tfjsDType: string | undefined, shape: readonly (number | null | undefined)[] | undefined, what: string): TensorSpec {
  if (shape === undefined) throw new Error(`${what} '${name}' has no known rank; inferd needs each tensor's rank`);
  const dims = shape.map((d) => (typeof d === 'number' && d >= 0 ? d : null));
  return { name, dtype: inferdDType(tfjsDType, `${what} '${name}'`), shape: dims, dimNames: dims.map(() => null) };
}

/**
 * The specs a graph model's `signature` declares for its inputs or outputs, keyed and ordered by
 * signature key; undefined when it declares none, or leaves a dtype or a rank unknown (the model
 * itself then tells). Dtypes it declares but inferd cannot carry throw.
 */
export function graphSignatureSpecs(entries: Readonly<Record<string, TensorInfoJson>> | undefined, what: 'input' | 'output'): TensorSpec[] | undefined {
  const list = Object.entries(entries ?? {});
  if (list.length === 0) return undefined;
  if (list.some(([, info]) => info.dtype === undefined || info.tensorShape === undefined || info.tensorShape.unknownRank === true)) return undefined;
  return list.map(([key, info]) => {
    const shape = (info.tensorShape?.dim ?? []).map((d) => Number(d.size ?? -1));
    const dtype = tfjsDTypeOfProto(info.dtype);
    return specOf(key, dtype ?? info.dtype, shape, what);
  });
}

/**
 * inferd merges requests along dimension 0 and splits every output by rows: each output needs a
 * first dimension, dynamic whenever all inputs' first dimension is (else rows would go to the
 * wrong requests). With a fixed first input dimension the batcher never merges.
 */
export function checkBatchFirst(signature: ModelSignature): void {
  const batchable = signature.inputs.length > 0 && signature.inputs.every((input) => input.shape[0] === null);
  for (const output of signature.outputs) {
    if (output.shape.length === 0) throw new Error(`output '${output.name}' is a scalar; inferd needs the batch dimension first in every output`);
    if (batchable && output.shape[0] !== null) {
      throw new Error(
        `output '${output.name}' has a fixed first dimension (${output.shape[0]}) while the inputs' first dimension is dynamic; inferd needs the batch dimension first in every output`,
      );
    }
  }
}

/** The outputs inferd.json asks for, in its order; all when it names none. */
export function selectOutputs(declared: readonly TensorSpec[], wanted: readonly string[] | undefined): TensorSpec[] {
  if (wanted === undefined) return [...declared];
  return wanted.map((name) => {
    const spec = declared.find((o) => o.name === name);
    if (!spec) throw new Error(`output "${name}" named in inferd.json is not in the model (${declared.map((o) => o.name).join(', ')})`);
    return spec;
  });
}

/**
 * Where a weight shard listed in `weightsManifest` lies: relative to the model directory and
 * inside it. Absolute paths, `..` segments and URLs are refused: model.json comes with the model,
 * and must not make the server read other files.
 */
export function shardPath(modelDir: string, path: string): string {
  const segments = path.split(/[\\/]/);
  if (path === '' || isAbsolute(path) || /^[a-z][a-z0-9+.-]*:/i.test(path) || segments.includes('..')) {
    throw new Error(`weight shard path "${path}" must be relative to the model directory, without ".."`);
  }
  const dir = resolve(modelDir);
  const full = resolve(dir, path);
  const inside = relative(dir, full);
  if (inside === '' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw new Error(`weight shard path "${path}" leaves the model directory`);
  }
  return full;
}

export interface Engine {
  readonly tf: Tf;
  /** `tfjs-node-gpu`, `tfjs-node` or `wasm`. */
  readonly name: string;
  readonly provider: ExecutionProviderName;
}

/** A package that may be absent; undefined when it is not installed, a warning when it is but does not load. */
async function importOptional(specifier: string, warnings: string[]): Promise<Tf | undefined> {
  try {
    const module = (await import(specifier)) as { default?: Tf };
    return module.default ?? (module as unknown as Tf);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') {
      warnings.push(`${specifier} is installed but does not load: ${(error as Error).message}`);
    }
    return undefined;
  }
}

/**
 * The fastest engine installed: tfjs-node-gpu (CUDA; only when the model asks for it), then
 * tfjs-node (TensorFlow's C library on the CPU), then the wasm backend, which plain installs have.
 * wasm takes `intraOpNumThreads` as its thread count where it can use threads (not in Node:
 * tfjs-backend-wasm 4.22 reports no thread support there and runs its single-threaded build).
 */
export async function selectEngine(options: WorkerOptions, warnings: string[]): Promise<Engine> {
  const wantsGpu = options.executionProvider === 'cuda';
  if (wantsGpu) {
    const tf = await importOptional('@tensorflow/tfjs-node-gpu', warnings);
    if (tf) {
      if (options.deviceId !== 0) warnings.push(`tfjs-node-gpu cannot choose a GPU: deviceId ${options.deviceId} ignored (set CUDA_VISIBLE_DEVICES instead)`);
      return { tf, name: 'tfjs-node-gpu', provider: 'cuda' };
    }
    const reason = 'executionProvider "cuda" needs @tensorflow/tfjs-node-gpu, which is not installed or does not load';
    if (options.requireGpu) throw new Error(reason);
    warnings.push(`${reason}; running on the CPU`);
  }
  const native = await importOptional('@tensorflow/tfjs-node', warnings);
  if (native) return { tf: native, name: 'tfjs-node', provider: 'cpu' };

  const tf = ((await import('@tensorflow/tfjs')) as unknown as { default: Tf }).default;
  const wasm = ((await import('@tensorflow/tfjs-backend-wasm')) as unknown as { default: typeof import('@tensorflow/tfjs-backend-wasm') }).default;
  wasm.setThreadsCount(options.intraOpNumThreads);
  if (!(await tf.setBackend('wasm'))) throw new Error('the TF.js wasm backend did not initialise');
  const threads = wasm.getThreadsCount();
  if (threads < options.intraOpNumThreads) {
    warnings.push(`the TF.js wasm backend runs ${threads} thread(s) here, not intraOpNumThreads ${options.intraOpNumThreads}: it has no threads in Node`);
  }
  return { tf, name: 'wasm', provider: 'cpu' };
}

/** model.json and its weight shards, concatenated in manifest order, as TF.js's loaders expect. */
export async function readModelArtifacts(tf: Tf, modelPath: string): Promise<{ json: ModelJson; artifacts: ModelArtifacts }> {
  let json: ModelJson;
  try {
    json = JSON.parse(await readFile(modelPath, 'utf8')) as ModelJson;
  } catch (error) {
    throw new Error(`${modelPath}: not a readable TF.js model.json (${(error as Error).message})`, { cause: error });
  }
  if (typeof json !== 'object' || json === null || json.modelTopology === undefined) {
    throw new Error(`${modelPath} has no modelTopology: not a TF.js model.json`);
  }
  const dir = dirname(modelPath);
  const loadWeights = async (manifest: readonly WeightsGroupJson[]): Promise<[WeightsManifestEntry[], ArrayBuffer]> => {
    const shards: Buffer[] = [];
    for (const group of manifest) {
      for (const path of group.paths) {
        const full = shardPath(dir, path);
        try {
          shards.push(await readFile(full));
        } catch (error) {
          throw new Error(`weight shard "${path}" listed in ${modelPath} cannot be read: ${(error as Error).message}`, { cause: error });
        }
      }
    }
    // One buffer of exactly the weights' size, copied into once.
    const joined = new Uint8Array(shards.reduce((total, shard) => total + shard.byteLength, 0));
    let offset = 0;
    for (const shard of shards) {
      joined.set(shard, offset);
      offset += shard.byteLength;
    }
    return [manifest.flatMap((group) => [...group.weights]), joined.buffer];
  };
  const artifacts = await tf.io.getModelArtifactsForJSON(
    json as Parameters<Tf['io']['getModelArtifactsForJSON']>[0],
    loadWeights as Parameters<Tf['io']['getModelArtifactsForJSON']>[1],
  );
  return { json, artifacts };
}

export interface LoadedTfjsModel {
  readonly engine: string;
  readonly provider: ExecutionProviderName;
  readonly signature: ModelSignature;
  readonly warnings: readonly string[];
  /** Runs one batch; rejects when TF.js fails. Every tensor it makes is disposed. */
  run(inputs: NamedTensors): Promise<NamedTensors>;
  dispose(): void;
}

function toTfTensor(tf: Tf, tensor: Tensor): TfTensor {
  return tf.tensor(tensor.data as Float32Array | Int32Array | Uint8Array, [...tensor.dims], tensor.dtype as 'float32' | 'int32' | 'bool');
}

/** Reads a result into a buffer of its own: the answer to the main thread moves or copies whole buffers. */
function fromTfTensor(name: string, tensor: TfTensor): Tensor {
  const dtype = inferdDType(tensor.dtype, `output '${name}'`);
  const data = tensor.dataSync() as Float32Array | Int32Array | Uint8Array;
  const read: Tensor = { dtype, dims: [...tensor.shape], data };
  // The wasm backend hands out a fresh copy; others may hand out a view into a larger buffer.
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? read : toOwnedTensor(read);
}

const asList = (result: TfTensor | TfTensor[]): TfTensor[] => (Array.isArray(result) ? result : [result]);

function disposeAll(tensors: Iterable<TfTensor>): void {
  for (const tensor of tensors) tensor.dispose();
}

interface Runner {
  readonly inputs: readonly TensorSpec[];
  /** Every output the model has, in its order. */
  readonly outputs: readonly TensorSpec[];
  /** The named outputs of one batch, as TF.js tensors the caller disposes. */
  execute(feeds: Record<string, TfTensor>, outputNames: readonly string[]): Promise<TfTensor[]>;
  dispose(): void;
}

async function graphRunner(tf: Tf, json: ModelJson, artifacts: ModelArtifacts): Promise<Runner> {
  // Dtypes first: a string input should fail the load with its name, not somewhere inside TF.js.
  const declared = graphSignatureOf(json);
  const declaredInputs = graphSignatureSpecs(declared?.inputs, 'input');
  const declaredOutputs = graphSignatureSpecs(declared?.outputs, 'output');
  const model: GraphModel = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  const useAsync = needsAsyncExecution(json);
  const execute = async (feeds: Record<string, TfTensor>, names: readonly string[]) =>
    asList(useAsync ? await model.executeAsync(feeds, [...names]) : model.execute(feeds, [...names]));
  // Without a signature, tensors are named by their graph nodes (`input_1`), as TF.js feeds and fetches them.
  const inputs = declaredInputs ?? model.inputs.map((info, i) => specOf(model.inputNodes[i]!, info.dtype, info.shape, 'input'));
  let outputs = declaredOutputs;
  if (!outputs) {
    // No usable signature for the outputs: a batch of one tells their dtypes and ranks; every
    // dimension but the first is taken as fixed.
    const names = model.outputNodes;
    const feeds = Object.fromEntries(Object.entries(warmUpInputs({ inputs, outputs: [] })).map(([name, t]) => [name, toTfTensor(tf, t)]));
    try {
      const results = await execute(feeds, names);
      outputs = results.map((t, i) => specOf(names[i]!, t.dtype, [-1, ...t.shape.slice(1)], 'output'));
      disposeAll(results);
    } finally {
      disposeAll(Object.values(feeds));
    }
  }
  return { inputs, outputs, execute, dispose: () => model.dispose() };
}

async function layersRunner(tf: Tf, artifacts: ModelArtifacts): Promise<Runner> {
  const model: LayersModel = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  // Named by layer: a Sequential model's tensor names get counters (`features_1`), its layers keep theirs.
  const inputs = model.inputs.map((t) => specOf(t.sourceLayer.name, t.dtype, t.shape, 'input'));
  const outputs = model.outputs.map((t) => specOf(t.sourceLayer.name, t.dtype, t.shape, 'output'));
  for (const [what, specs] of [['inputs', inputs], ['outputs', outputs]] as const) {
    const names = specs.map((s) => s.name);
    if (new Set(names).size !== names.length) throw new Error(`two ${what} of the model come from the same layer (${names.join(', ')}); inferd names them by layer`);
  }
  const outputNames = outputs.map((o) => o.name);
  return {
    inputs,
    outputs,
    execute: async (feeds, names) => {
      const all = asList(model.predict(inputs.map((spec) => feeds[spec.name]!)));
      const wanted = names.map((name) => all[outputNames.indexOf(name)]!);
      disposeAll(all.filter((t) => !wanted.includes(t)));
      return wanted;
    },
    dispose: () => model.dispose(),
  };
}

/**
 * Loads the model.json at `options.modelPath` on the best engine installed, and reports its
 * signature: a graph model's from its `signature` (else its placeholders and a probe run), a
 * layers model's from its input and output layers. Fails with a message naming what is wrong.
 */
export async function loadTfjsModel(options: WorkerOptions): Promise<LoadedTfjsModel> {
  const warnings: string[] = [];
  const engine = await selectEngine(options, warnings);
  const { tf } = engine;
  const { json, artifacts } = await readModelArtifacts(tf, options.modelPath);
  const runner = isGraphModel(json) ? await graphRunner(tf, json, artifacts) : await layersRunner(tf, artifacts);
  let signature: ModelSignature;
  try {
    signature = { inputs: runner.inputs, outputs: selectOutputs(runner.outputs, options.outputs) };
    checkBatchFirst({ inputs: runner.inputs, outputs: runner.outputs });
  } catch (error) {
    runner.dispose();
    throw error;
  }
  const outputNames = signature.outputs.map((o) => o.name);
  return {
    engine: engine.name,
    provider: engine.provider,
    signature,
    warnings,
    async run(inputs) {
      const feeds: Record<string, TfTensor> = {};
      try {
        for (const spec of signature.inputs) feeds[spec.name] = toTfTensor(tf, inputs[spec.name]!);
        const results = await runner.execute(feeds, outputNames);
        try {
          const outputs: NamedTensors = {};
          outputNames.forEach((name, i) => {
            outputs[name] = fromTfTensor(name, results[i]!);
          });
          return outputs;
        } finally {
          disposeAll(results);
        }
      } finally {
        disposeAll(Object.values(feeds));
      }
    },
    dispose: () => runner.dispose(),
  };
}

