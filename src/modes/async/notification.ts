/**
 * The message SageMaker publishes to the success or error SNS topic when an async request
 * finishes, in its documented shape (field names and `eventName: "InferenceResult"`), so that
 * consumers written for SageMaker parse inferd's webhooks unchanged. Where SageMaker's own shape
 * is not documented (the failure location, an embedded response body) the fields sit beside the
 * documented ones under `responseParameters`.
 */
import type { AsyncJob } from './queue.js';

/** SageMaker embeds a response only when it is this small. */
export const MAX_EMBEDDED_RESPONSE_BYTES = 128 * 1024;

export interface NotificationOptions {
  readonly awsRegion: string;
  readonly nowMs: number;
  /** The answer's content type (completed requests). */
  readonly outputContentType?: string | undefined;
  /** The answer or error body, to embed when it is small enough. */
  readonly responseBody?: Buffer | undefined;
}

export interface InferenceNotification {
  readonly awsRegion: string;
  readonly eventTime: string;
  readonly receivedTime: string;
  readonly invocationStatus: 'Completed' | 'Failed';
  readonly failureReason?: string;
  readonly requestParameters: {
    readonly accept?: string;
    readonly contentType: string;
    readonly customAttributes?: string;
    readonly endpointName: string;
    readonly inputLocation: string;
  };
  readonly responseParameters: {
    readonly contentType?: string;
    readonly outputLocation?: string;
    readonly failureLocation?: string;
    /** Text bodies as they are, others base64. */
    readonly responseBody?: { readonly content: string; readonly encoding: 'TEXT' | 'BASE64' };
  };
  readonly inferenceId: string;
  readonly eventVersion: '1.0';
  readonly eventSource: 'aws:sagemaker';
  readonly eventName: 'InferenceResult';
}

const TEXT_TYPES = /^(text\/|application\/(json|jsonlines|x-ndjson)\b)/;

function embedded(body: Buffer, contentType: string): InferenceNotification['responseParameters']['responseBody'] {
  const text = TEXT_TYPES.test(contentType);
  return { content: body.toString(text ? 'utf8' : 'base64'), encoding: text ? 'TEXT' : 'BASE64' };
}

export function notificationFor(job: AsyncJob, options: NotificationOptions): InferenceNotification {
  const completed = job.status === 'completed';
  // Failure bodies are inferd's JSON error.
  const contentType = completed ? options.outputContentType : 'application/json';
  const body = options.responseBody && options.responseBody.length <= MAX_EMBEDDED_RESPONSE_BYTES ? options.responseBody : undefined;
  return {
    awsRegion: options.awsRegion,
    eventTime: new Date(options.nowMs).toISOString(),
    receivedTime: new Date(job.receivedAtMs).toISOString(),
    invocationStatus: completed ? 'Completed' : 'Failed',
    ...(completed ? {} : { failureReason: job.failureReason ?? 'the request failed' }),
    requestParameters: {
      ...(job.accept !== undefined ? { accept: job.accept } : {}),
      contentType: job.contentType,
      ...(job.customAttributes !== undefined ? { customAttributes: job.customAttributes } : {}),
      endpointName: job.endpointName,
      inputLocation: job.inputLocation,
    },
    responseParameters: {
      ...(contentType !== undefined ? { contentType } : {}),
      ...(completed ? { outputLocation: job.outputLocation } : { failureLocation: job.failureLocation }),
      ...(body && contentType !== undefined ? { responseBody: embedded(body, contentType) } : {}),
    },
    inferenceId: job.inferenceId,
    eventVersion: '1.0',
    eventSource: 'aws:sagemaker',
    eventName: 'InferenceResult',
  };
}
