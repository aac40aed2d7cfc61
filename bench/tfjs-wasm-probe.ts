/**
 * Run as `node dist/bench/tfjs-wasm-probe.js THREADS`: starts TF.js's wasm backend the way a
 * worker would (the thread count set before the backend starts) and prints, as one JSON line,
 * what the backend itself says about SIMD and threads in this Node. A separate process, so that
 * the wasm module never lives in the harness that drives the load.
 */
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const requested = Number(process.argv[2] ?? '1');
setThreadsCount(requested);
const [simd, multithread] = await Promise.all([tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')]);
const backendReady = await tf.setBackend('wasm');
await tf.ready();
process.stdout.write(
  `${JSON.stringify({
    requestedThreads: requested,
    backend: tf.getBackend(),
    backendReady,
    simdSupported: simd,
    multithreadSupported: multithread,
    threadsCount: getThreadsCount(),
    isNode: tf.env().get('IS_NODE'),
    tfjsVersion: tf.version.tfjs,
  })}\n`,
);
