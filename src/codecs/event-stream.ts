/**
 * The AWS event stream framing (`application/vnd.amazon.eventstream`) of
 * `InvokeEndpointWithResponseStream`: each part of an answer is a `PayloadPart` event, and a
 * failure after the first part is a `ModelStreamError` exception message. The framing (prelude,
 * headers, CRCs) is the AWS SDK's own codec, the one its clients decode with.
 */
import { EventStreamCodec } from '@smithy/eventstream-codec';

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
);

const header = (value: string) => ({ type: 'string' as const, value });

export function payloadPartEvent(bytes: Uint8Array): Uint8Array {
  return codec.encode({
    headers: { ':event-type': header('PayloadPart'), ':message-type': header('event'), ':content-type': header('application/octet-stream') },
    body: bytes,
  });
}

/**
 * `errorCode` is SageMaker's (`ModelInvocationTimeExceeded`) where it has one, else the inferd
 * code of the failure.
 */
export function modelStreamErrorEvent(errorCode: string, message: string): Uint8Array {
  return codec.encode({
    headers: { ':exception-type': header('ModelStreamError'), ':message-type': header('exception'), ':content-type': header('application/json') },
    body: Buffer.from(JSON.stringify({ Message: message, ErrorCode: errorCode })),
  });
}

/** A failure of inferd's own (not the model's) after the first part: retryable, as SageMaker's. */
export function internalStreamFailureEvent(message: string): Uint8Array {
  return codec.encode({
    headers: { ':exception-type': header('InternalStreamFailure'), ':message-type': header('exception'), ':content-type': header('application/json') },
    body: Buffer.from(JSON.stringify({ Message: message })),
  });
}
