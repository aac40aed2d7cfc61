/**
 * application/json. Requests: `{"instances": [...]}` (rows), `{"inputs": {name: tensor}}`
 * (columns), Open Inference Protocol v2 `{"inputs": [{name, shape, datatype, data}]}`, or a bare
 * array for a single-input model. Responses: `{"predictions": [...]}`, or the v2 `outputs` form
 * when the request was v2. The v2 front door (`/v2/models/{name}/infer`) reads its whole request
 * here too: `id` and the requested `outputs` beside the tensors (parseV2Request).
 */
import { InferdError, invalidInput, malformedBody } from '../errors.js';
import type { DecodedRequest, RequestDecoder, ResponseEncoder } from './codec.js';
import { floatInstances } from './json-instances.js';
import { isJsonObject, tensorsFromRecords } from './records.js';
import { jsonFlat, jsonRecord, outputColumns, signatureOutputs } from './rows.js';
import { checkInputs, inputSpec, tensorFromNested } from './signature-check.js';
import { elementCount, type DType, type ModelSignature, type NamedTensors, type Tensor, type TensorSpec } from './tensor.js';
import { checkSameKind } from './values.js';

const V2_DATATYPES: Record<string, DType> = {
  FP32: 'float32',
  FP64: 'float64',
  INT8: 'int8',
  UINT8: 'uint8',
  INT16: 'int16',
  UINT16: 'uint16',
  INT32: 'int32',
  INT64: 'int64',
  BOOL: 'bool',
};
const V2_NAMES = Object.fromEntries(Object.entries(V2_DATATYPES).map(([v2, dtype]) => [dtype, v2])) as Record<DType, string>;

/** The Open Inference Protocol's name of a dtype: `float32` is `FP32`, `bool` is `BOOL`. */
export function v2Datatype(dtype: DType): string {
  return V2_NAMES[dtype];
}

const ENVELOPES = 'expected {"instances": [...]}, {"inputs": ...} or a JSON array';

/** Parses JSON without letting the parser's stack or a long excerpt of the body into the message. */
export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.slice(0, 120) : 'unknown error';
    throw malformedBody(`${where} is not valid JSON: ${reason}`);
  }
}

/** A whole tensor for a single-input model; a flat array for a 2-D input is one row. */
function wholeTensor(value: unknown[], signature: ModelSignature): NamedTensors {
  const [spec] = signature.inputs;
  if (signature.inputs.length !== 1 || !spec) {
    const names = signature.inputs.map((s) => `'${s.name}'`).join(', ');
    throw invalidInput(`this model has ${signature.inputs.length} inputs (${names}); name them: {"inputs": {name: tensor}}`);
  }
  const isRow = spec.shape.length === 2 && value.length > 0 && !Array.isArray(value[0]);
  return { [spec.name]: tensorFromNested(spec.name, isRow ? [value] : value, spec) };
}

function columnTensors(columns: Record<string, unknown>, signature: ModelSignature): NamedTensors {
  return Object.fromEntries(
    Object.entries(columns).map(([name, value]) => [name, tensorFromNested(name, value, inputSpec(signature, name))]),
  );
}

function isV2Inputs(inputs: unknown): inputs is unknown[] {
  return Array.isArray(inputs) && isJsonObject(inputs[0]) && Object.hasOwn(inputs[0], 'name');
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((d) => Number.isSafeInteger(d) && (d as number) >= 0);
}

function v2Tensors(entries: unknown[], signature: ModelSignature): NamedTensors {
  const tensors: Record<string, Tensor> = {};
  entries.forEach((entry, i) => {
    if (!isJsonObject(entry) || typeof entry.name !== 'string') throw malformedBody(`inputs[${i}] must be an object with a string "name"`);
    const { name, shape, datatype, data } = entry;
    if (!isShape(shape)) throw malformedBody(`inputs[${i}].shape must be an array of non-negative integers`);
    if (typeof datatype !== 'string') throw malformedBody(`inputs[${i}].datatype must be a string`);
    if (!Array.isArray(data)) throw malformedBody(`inputs[${i}].data must be an array`);

    const spec = inputSpec(signature, name);
    if (Object.hasOwn(tensors, name)) throw invalidInput(`input '${name}' is given twice`);
    const given = Object.hasOwn(V2_DATATYPES, datatype) ? V2_DATATYPES[datatype] : undefined;
    if (!given) throw invalidInput(`input '${name}' has unsupported datatype '${datatype}'; use one of ${Object.keys(V2_DATATYPES).join(', ')}`);
    checkSameKind(`datatype ${datatype}`, given, spec);

    const values = tensorFromNested(name, data, spec).data;
    const count = elementCount(shape);
    if (values.length !== count) {
      throw invalidInput(`input '${name}' has shape [${shape.join(',')}] (${count} values), but ${values.length} data values`);
    }
    tensors[name] = { dtype: spec.dtype, dims: shape, data: values };
  });
  return tensors;
}

function decodeJson(body: Buffer, signature: ModelSignature): DecodedRequest {
  if (body.length === 0) throw malformedBody('the body is empty');
  const [only] = signature.inputs;
  if (signature.inputs.length === 1 && only && (only.dtype === 'float32' || only.dtype === 'float64')) {
    const tensor = floatInstances(body, only.dtype);
    if (tensor) {
      const inputs = { [only.name]: tensor };
      checkInputs(inputs, signature);
      return { inputs, style: 'predictions' };
    }
  }
  return decodeJsonValue(parseJson(body.toString('utf8'), 'the body'), signature);
}

/** A parsed JSON body in any of the request forms above. */
export function decodeJsonValue(parsed: unknown, signature: ModelSignature): DecodedRequest {
  let decoded: DecodedRequest;
  if (Array.isArray(parsed)) {
    decoded = { inputs: wholeTensor(parsed, signature), style: 'predictions' };
  } else if (!isJsonObject(parsed) || Object.hasOwn(parsed, 'instances') === Object.hasOwn(parsed, 'inputs')) {
    throw malformedBody(ENVELOPES);
  } else if (Object.hasOwn(parsed, 'instances')) {
    const { instances } = parsed;
    if (!Array.isArray(instances)) throw malformedBody('"instances" must be an array');
    if (instances.length === 0) throw invalidInput('"instances" is empty');
    decoded = { inputs: tensorsFromRecords(instances, signature, (i) => `instance ${i}`), style: 'predictions' };
  } else {
    const { inputs } = parsed;
    if (isV2Inputs(inputs)) decoded = { inputs: v2Tensors(inputs, signature), style: 'v2' };
    else if (Array.isArray(inputs)) decoded = { inputs: wholeTensor(inputs, signature), style: 'predictions' };
    else if (isJsonObject(inputs)) decoded = { inputs: columnTensors(inputs, signature), style: 'predictions' };
    else throw malformedBody('"inputs" must be an object of named tensors, an array of v2 tensors, or a tensor');
  }
  checkInputs(decoded.inputs, signature);
  return decoded;
}

export const jsonDecoder: RequestDecoder = {
  mediaType: 'application/json',
  decode: decodeJson,
};

function predictionsJson(outputs: NamedTensors, signature: ModelSignature): string {
  const { columns, rows } = outputColumns(outputs, signature);
  let text = '{"predictions":[';
  for (let row = 0; row < rows; row++) {
    if (row > 0) text += ',';
    text += jsonRecord(columns, row);
  }
  return `${text}]}`;
}

export interface V2ResponseOptions {
  readonly modelName: string;
  /** The request's `id`, echoed. */
  readonly id?: string | undefined;
  /** Only these outputs, in this order (the request's `outputs`); every output when absent. */
  readonly outputNames?: readonly string[] | undefined;
}

/** The v2 response document: `{"model_name", "id"?, "outputs": [{name, datatype, shape, data}]}`. */
export function v2Response(outputs: NamedTensors, signature: ModelSignature, { modelName, id, outputNames }: V2ResponseOptions): Buffer {
  const wanted = outputNames === undefined ? signature : { inputs: signature.inputs, outputs: outputNames.map((name) => outputSpec(signature, name)) };
  const tensors = signatureOutputs(outputs, wanted).map(
    ({ spec, tensor }) =>
      `{"name":${JSON.stringify(spec.name)},"datatype":"${V2_NAMES[tensor.dtype]}","shape":[${tensor.dims.join(',')}],"data":${jsonFlat(tensor)}}`,
  );
  const idField = id === undefined ? '' : `"id":${JSON.stringify(id)},`;
  return Buffer.from(`{"model_name":${JSON.stringify(modelName)},${idField}"outputs":[${tensors.join(',')}]}`, 'utf8');
}

function outputSpec(signature: ModelSignature, name: string): TensorSpec {
  const spec = signature.outputs.find((s) => s.name === name);
  if (!spec) throw invalidInput(`unknown output '${name}'; the model's outputs are ${signature.outputs.map((s) => `'${s.name}'`).join(', ')}`);
  return spec;
}

export const jsonEncoder: ResponseEncoder = {
  mediaType: 'application/json',
  encode(outputs, signature, { style, modelName }) {
    return style === 'v2' ? v2Response(outputs, signature, { modelName }) : Buffer.from(predictionsJson(outputs, signature), 'utf8');
  },
};

/**
 * An Open Inference Protocol v2 inference request, parsed once: its tensors are decoded when the
 * model is known, by the decoder; the encoder answers in v2 with the request's `id` and only
 * the outputs it asked for. `parameters` (the request's, each input's, each output's) are
 * ignored: no extension inferd serves reads them.
 */
export interface V2Request {
  /** Decodes the inputs, and checks that every requested output is the model's: before inference. */
  readonly decoder: RequestDecoder;
  readonly encoder: ResponseEncoder;
}

const V2_BODY = 'expected the Open Inference Protocol body {"inputs": [{"name", "shape", "datatype", "data"}, ...]}';

export function parseV2Request(body: Buffer): V2Request {
  if (body.length === 0) throw new InferdError('INFERD_ERR_BODY_EMPTY', `the request has no body; ${V2_BODY}`);
  const parsed = parseJson(body.toString('utf8'), 'the body');
  if (!isJsonObject(parsed) || !isV2Inputs(parsed.inputs)) throw malformedBody(V2_BODY);
  const { id, outputs } = parsed;
  if (id !== undefined && typeof id !== 'string') throw malformedBody('"id" must be a string');
  const outputNames = outputs === undefined ? undefined : requestedOutputs(outputs);
  return {
    decoder: {
      mediaType: 'application/json',
      decode(_body, signature) {
        for (const name of outputNames ?? []) outputSpec(signature, name);
        return decodeJsonValue(parsed, signature);
      },
    },
    encoder: {
      mediaType: 'application/json',
      encode: (tensors, signature, { modelName }) => v2Response(tensors, signature, { modelName, id, outputNames }),
    },
  };
}

/** The names of the requested outputs; none named (`[]`) means all, as in Triton. */
function requestedOutputs(outputs: unknown): string[] | undefined {
  if (!Array.isArray(outputs)) throw malformedBody('"outputs" must be an array of {"name": ...}');
  if (outputs.length === 0) return undefined;
  const names = outputs.map((output, i) => {
    if (!isJsonObject(output) || typeof output.name !== 'string') throw malformedBody(`outputs[${i}] must be an object with a string "name"`);
    return output.name;
  });
  const twice = names.find((name, i) => names.indexOf(name) !== i);
  if (twice !== undefined) throw invalidInput(`output '${twice}' is requested twice`);
  return names;
}
