/**
 * Writes an ONNX multi-layer perceptron without any ONNX library (there is none here): the few
 * protocol-buffer field kinds ONNX needs (bench/protobuf.ts) and, per dense layer, `MatMul` + `Add` (+ `Relu`), then `Softmax`.
 *
 * Input `features` [batch, inputs] float32 (batch a symbolic dimension), output `probabilities`
 * [batch, classes], opset 13. The weights are laid out as TF.js's Dense kernels are: [in, out],
 * row-major, so `x · W + b` is the same arithmetic on both sides.
 */

import { bytes, int, message } from './protobuf.js';

/** One dense layer: `kernel` is [inputs, units] row-major, `bias` [units]. */
export interface DenseLayer {
  readonly inputs: number;
  readonly units: number;
  readonly kernel: Float32Array;
  readonly bias: Float32Array;
  readonly activation: 'relu' | 'softmax';
}

/** TensorProto.DataType.FLOAT; AttributeProto.AttributeType.INT. */
const FLOAT = 1;
const ATTRIBUTE_INT = 2;

/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. */
function node(op: string, name: string, inputs: readonly string[], output: string, ...attributes: Buffer[]): Buffer {
  return message(1, ...inputs.map((input) => bytes(1, input)), bytes(2, output), bytes(3, name), bytes(4, op), ...attributes);
}

/** AttributeProto: name 1, i 3, type 20. */
const intAttribute = (name: string, value: number) => message(5, bytes(1, name), int(3, value), int(20, ATTRIBUTE_INT));

/** TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian). */
function initializer(name: string, dims: readonly number[], values: Float32Array): Buffer {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => raw.writeFloatLE(value, i * 4));
  return message(5, ...dims.map((d) => int(1, d)), int(2, FLOAT), bytes(8, name), bytes(9, raw));
}

/** ValueInfoProto of a float tensor [batch, n]: TypeProto.tensor_type { elem_type, shape { dim_param, dim_value } }. */
function valueInfo(field: 11 | 12, name: string, n: number): Buffer {
  const shape = message(2, message(1, bytes(2, 'batch')), message(1, int(1, n)));
  return message(field, bytes(1, name), message(2, message(1, int(1, FLOAT), shape)));
}

/** The model's bytes. */
export function onnxMlp(layers: readonly DenseLayer[], names = { input: 'features', output: 'probabilities' }): Buffer {
  const nodes: Buffer[] = [];
  const initializers: Buffer[] = [];
  let current = names.input;
  layers.forEach((layer, i) => {
    if (layer.kernel.length !== layer.inputs * layer.units || layer.bias.length !== layer.units) {
      throw new Error(`layer ${i}: kernel or bias of the wrong size`);
    }
    const last = i === layers.length - 1;
    if (layer.activation === 'softmax' && !last) throw new Error('softmax only as the last layer');
    initializers.push(initializer(`w${i}`, [layer.inputs, layer.units], layer.kernel), initializer(`b${i}`, [layer.units], layer.bias));
    nodes.push(node('MatMul', `matmul${i}`, [current, `w${i}`], `matmul${i}_out`));
    const added = `dense${i}_out`;
    nodes.push(node('Add', `add${i}`, [`matmul${i}_out`, `b${i}`], added));
    const activated = last ? names.output : `relu${i}_out`;
    if (layer.activation === 'relu') nodes.push(node('Relu', `relu${i}`, [added], activated));
    else nodes.push(node('Softmax', `softmax${i}`, [added], activated, intAttribute('axis', 1)));
    current = activated;
  });
  if (current !== names.output) throw new Error('the last layer must be softmax');
  const graph = message(
    7,
    ...nodes,
    bytes(2, 'mlp'),
    ...initializers,
    valueInfo(11, names.input, layers[0]!.inputs),
    valueInfo(12, names.output, layers.at(-1)!.units),
  );
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 { domain 1, version 2 }.
  return Buffer.concat([int(1, 8), bytes(2, 'inferd-bench'), graph, message(8, bytes(1, ''), int(2, 13))]);
}

/** The same network in plain float64 arithmetic: the reference both servers are checked against. */
export function mlpReference(layers: readonly DenseLayer[], row: readonly number[]): number[] {
  let x = [...row];
  for (const layer of layers) {
    const y = Array.from(layer.bias, Number);
    for (let i = 0; i < layer.inputs; i++) {
      const xi = x[i]!;
      for (let j = 0; j < layer.units; j++) y[j]! += xi * layer.kernel[i * layer.units + j]!;
    }
    if (layer.activation === 'relu') {
      x = y.map((v) => Math.max(0, v));
    } else {
      const max = Math.max(...y);
      const exps = y.map((v) => Math.exp(v - max));
      const sum = exps.reduce((a, b) => a + b, 0);
      x = exps.map((v) => v / sum);
    }
  }
  return x;
}
