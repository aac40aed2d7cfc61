/** The batched reference's worker (batched-server.ts): one session, one batch a task, the outputs' data back. */
import { workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const session = await ort.InferenceSession.create(workerData.model as string, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const input = session.inputNames[0]!;

export default async function run({ data, rows, width }: { data: Float32Array; rows: number; width: number }): Promise<Array<ort.Tensor['data']>> {
  const outputs = await session.run({ [input]: new ort.Tensor('float32', data, [rows, width]) });
  return session.outputNames.map((name) => outputs[name]!.data);
}
