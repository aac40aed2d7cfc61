/**
 * Where a transform job's mini-batches go: the in-process inference API (no HTTP hop), or a
 * running server's `POST /invocations`, with SageMaker's timeout and retries.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decoderFor, encoderFor } from '../../codecs/registry.js';
import type { ModelInfo, Runtime } from '../../runtime/runtime.js';
import { invokeBatch, type RecordErrors } from '../batch-invocation.js';
import type { ExecutionParameters } from './options.js';

export interface MiniBatchInvoker {
  /** The answer to one mini-batch; rejects with a message that says why it failed. */
  invoke(body: Buffer): Promise<Buffer>;
}

/** A content type or accept the model cannot take, found before any input is read. */
export class InvokerSetupError extends Error {}

export interface InProcessSettings {
  readonly contentType: string;
  readonly accept: string;
  readonly recordErrors: RecordErrors;
  /** Mini-batches not yet run when this turns true are abandoned. */
  readonly isCancelled?: (() => boolean) | undefined;
  /** Admitted by a limit of their own (see the runtime's `SubmitOptions`): never refused for a full queue. */
  readonly admitted?: boolean | undefined;
}

/** Mini-batches for `model`, loaded in `runtime`. */
export function inProcessInvoker(runtime: Runtime, model: ModelInfo, { contentType, accept, recordErrors, isCancelled, admitted }: InProcessSettings): MiniBatchInvoker {
  const decoder = decoderFor(contentType);
  if (!decoder) throw new InvokerSetupError(`--content-type ${contentType} is not supported`);
  const encoder = encoderFor(accept);
  if (!encoder) throw new InvokerSetupError(`--accept ${accept} is not supported`);
  try {
    encoder.assertCanEncode?.(model.signature);
  } catch (error) {
    throw new InvokerSetupError(`--accept ${accept}: ${(error as Error).message}`);
  }
  return {
    invoke: async (body) => (await invokeBatch(runtime, model, { body, mediaType: decoder.mediaType, encoder, recordErrors, isCancelled, admitted })).body,
  };
}

export interface EndpointSettings {
  readonly contentType: string;
  readonly accept: string;
  readonly maxRetries: number;
  readonly invocationTimeoutS: number;
  /** Sent as `X-Amzn-SageMaker-Target-Model`: a model of the server's repository. */
  readonly targetModel?: string | undefined;
}

/** SageMaker asks before the first mini-batch; a missing route or a non-200 means defaults. */
export async function fetchExecutionParameters(endpoint: string): Promise<ExecutionParameters> {
  try {
    const response = await fetch(new URL('/execution-parameters', endpoint), { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) return {};
    const parameters: unknown = await response.json();
    return typeof parameters === 'object' && parameters !== null ? (parameters as ExecutionParameters) : {};
  } catch {
    return {};
  }
}

const FIRST_RETRY_DELAY_MS = 500;

/** Worth another try: the server was busy, failed, or did not answer in time. Other 4xx will not change. */
function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

export function endpointInvoker(endpoint: string, settings: EndpointSettings): MiniBatchInvoker {
  const url = new URL('/invocations', endpoint);
  const attempt = async (body: Buffer): Promise<{ answer?: Buffer; problem: string; retry: boolean }> => {
    try {
      const response = await fetch(url, {
        method: 'POST',
        body,
        headers: {
          'content-type': settings.contentType,
          accept: settings.accept,
          ...(settings.targetModel !== undefined && { 'x-amzn-sagemaker-target-model': settings.targetModel }),
        },
        signal: AbortSignal.timeout(settings.invocationTimeoutS * 1000),
      });
      const bytes = Buffer.from(await response.arrayBuffer());
      if (response.ok) return { answer: bytes, problem: '', retry: false };
      return { problem: `${url.href} answered ${response.status}: ${bytes.toString('utf8', 0, 300)}`, retry: retryable(response.status) };
    } catch (error) {
      const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${settings.invocationTimeoutS} s` : (error as Error).message;
      return { problem: `${url.href}: ${reason}`, retry: true };
    }
  };
  return {
    async invoke(body) {
      for (let tries = 0; ; tries++) {
        const { answer, problem, retry } = await attempt(body);
        if (answer) return answer;
        if (!retry || tries >= settings.maxRetries) throw new Error(tries > 0 ? `${problem} (after ${tries} retries)` : problem);
        await sleep(FIRST_RETRY_DELAY_MS * 2 ** tries);
      }
    },
  };
}
