/**
 * HTTP content codings of request bodies (`Content-Encoding`): which ones inferd undoes, and the
 * streaming decoder that undoes them. Shared by `/invocations`, async submissions and batch
 * transform's `--compression Gzip`, so a body decodes the same way whichever door it comes in.
 */
import { finished, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { InferdError, malformedBody } from '../errors.js';

export type ContentCoding = 'gzip' | 'deflate';

/**
 * The coding to undo, or undefined for none (`identity`). Several codings stacked, or any
 * other coding, are refused: a body we cannot decode must never be read as its Content-Type.
 */
export function contentCodingOf(header: string | undefined): ContentCoding | undefined {
  if (header === undefined) return undefined;
  const codings = header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length === 0) return undefined;
  if (codings.length === 1) {
    if (codings[0] === 'gzip' || codings[0] === 'x-gzip') return 'gzip';
    if (codings[0] === 'deflate') return 'deflate';
  }
  throw new InferdError(
    'INFERD_ERR_UNSUPPORTED_CONTENT_ENCODING',
    `Content-Encoding ${header} is not supported; send gzip, deflate or an unencoded body`,
  );
}

const isZlibError = (error: unknown): boolean => String((error as { code?: unknown }).code).startsWith('Z_');

/**
 * The bytes of `source` with `coding` undone, chunk by chunk as they inflate, so a consumer that
 * counts them can stop a bomb long before it is whole. A corrupt or truncated stream fails with
 * INFERD_ERR_BODY_MALFORMED. Stopping early stops decoding and unpipes `source`, which is not
 * destroyed: its owner (an HTTP request whose client still waits for an answer) decides.
 */
export async function* decodeContent(source: Readable, coding: ContentCoding): AsyncGenerator<Buffer> {
  // `deflate` is the zlib format (RFC 9110), as Node's and Python's clients send it.
  const decoder = coding === 'gzip' ? createGunzip() : createInflate();
  // The source failing, or closing before its end, fails the decoding: pipe() would not say.
  const stopWatching = finished(source, (error) => {
    if (error) decoder.destroy(error);
  });
  source.pipe(decoder);
  try {
    for await (const chunk of decoder) yield chunk as Buffer;
  } catch (error) {
    if (isZlibError(error)) throw malformedBody(`the ${coding} data cannot be decoded: ${(error as Error).message}`, error);
    throw error;
  } finally {
    stopWatching();
    source.unpipe(decoder);
    decoder.destroy();
  }
}
