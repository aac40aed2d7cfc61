/**
 * Verifying AWS Signature Version 4 on the runtime API, as SageMaker's front end does for the
 * AWS SDKs and boto3: the request the client signed is rebuilt from what arrived (method, path
 * and query as sent, the headers listed in SignedHeaders, the body or its signed SHA-256), signed
 * again by the AWS SDK's own signer (`@smithy/signature-v4`) with the key's secret, and the two
 * signatures compared in constant time. Refusals read as AWS words them.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { InferdError } from '../../errors.js';
import type { Operation, SigV4Key } from './credentials.js';

/** Headers whose value changes what a runtime request does: never accepted unsigned. */
const ACTED_ON = /^(x-amz-|x-amzn-sagemaker-|content-type$)/;
const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'sagemaker';
/** How far a request's X-Amz-Date may be from the server's clock, either way, as AWS allows. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;
const HEX_SHA256 = /^[0-9a-f]{64}$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

const missingToken = () => new InferdError('INFERD_ERR_UNAUTHENTICATED', 'Missing Authentication Token');
const unrecognized = () => new InferdError('INFERD_ERR_CREDENTIALS_UNKNOWN', 'The security token included in the request is invalid.');
const invalid = (message: string) => new InferdError('INFERD_ERR_SIGNATURE_INVALID', message);
const signatureMismatch = () =>
  invalid(
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
  );
export const payloadMismatch = () => invalid("The provided 'x-amz-content-sha256' header does not match what was computed.");

/** node:crypto behind the signer's Checksum interface: SHA-256, or HMAC-SHA256 given a secret. */
class Sha256 {
  readonly #secret: Buffer | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret =
      secret === undefined ? undefined : typeof secret === 'string' ? Buffer.from(secret, 'utf8') : ArrayBuffer.isView(secret) ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength) : Buffer.from(secret);
    this.#hash = this.#fresh();
  }

  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }

  update(data: Uint8Array): void {
    this.#hash.update(data);
  }

  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }

  reset(): void {
    this.#hash = this.#fresh();
  }
}

/** What arrived, before the body: the method and URL as on the wire, every value of each header. */
export interface SignedRequestHead {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, readonly string[] | undefined>>;
}

/** The request as the signer takes it (structurally `@smithy/types`' HttpRequest). */
interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  body?: Buffer | undefined;
}

/** A request whose head passed every check; what is left is the signature itself. */
export interface CheckedRequest {
  readonly key: SigV4Key;
  /** The SHA-256 of the body the client signed (`X-Amz-Content-SHA256`); undefined if it signed none. */
  readonly declaredPayloadHash: string | undefined;
  readonly date: Date;
  readonly region: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
  readonly request: SignableRequest;
}

interface Authorization {
  readonly accessKeyId: string;
  readonly shortDate: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

function parseAuthorization(value: string): Authorization {
  if (!value.startsWith(`${ALGORITHM} `)) throw invalid(`Authorization header requires the ${ALGORITHM} algorithm.`);
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const equals = part.indexOf('=');
    if (equals > 0) fields.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const credential = fields.get('Credential')?.split('/');
  const signedHeaders = fields.get('SignedHeaders')?.split(';');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw invalid("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.");
  }
  const [accessKeyId, shortDate, region, service, terminator] = credential;
  if (credential.length !== 5 || !accessKeyId || !/^\d{8}$/.test(shortDate!) || !region || !service || terminator !== 'aws4_request') {
    throw invalid("Credential must have the form '<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'.");
  }
  if (!HEX_SHA256.test(signature)) throw invalid('Signature must be 64 lowercase hexadecimal digits.');
  if (!signedHeaders.every((name) => HEADER_NAME.test(name))) throw invalid('SignedHeaders must be lowercase header names separated by semicolons.');
  return { accessKeyId, shortDate: shortDate!, region, service, signedHeaders, signature };
}

/** `20240101T000000Z` */
const amzDate = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');

function parseAmzDate(value: string | undefined): Date | undefined {
  const parts = value === undefined ? null : AMZ_DATE.exec(value);
  if (!parts) return undefined;
  const [, year, month, day, hour, minute, second] = parts.map(Number) as [number, number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // 20240231T... would roll over into March: not a date the client meant.
  return amzDate(date.getTime()) === value ? date : undefined;
}

/** The query as the signer wants it: names and values decoded, repeated names as arrays. */
function parseQuery(query: string): Record<string, string | string[]> {
  const parsed: Record<string, string | string[]> = {};
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(equals < 0 ? pair : pair.slice(0, equals));
      value = equals < 0 ? '' : decodeURIComponent(pair.slice(equals + 1));
    } catch {
      throw invalid('The query string is not validly percent-encoded.');
    }
    const seen = parsed[name];
    parsed[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return parsed;
}

/** Whether a key may call `operation` on `model`: `*` allows any model, `prefix*` those under it. */
export function keyAllows(key: SigV4Key, operation: Operation, model: string): boolean {
  if (!key.routes.includes(operation)) return false;
  return key.models.some((pattern) => (pattern.endsWith('*') ? model.startsWith(pattern.slice(0, -1)) : model === pattern));
}

export class SigV4Verifier {
  readonly #keys: ReadonlyMap<string, SigV4Key>;

  constructor(keys: readonly SigV4Key[]) {
    this.#keys = new Map(keys.map((key) => [key.accessKeyId, key]));
  }

  get size(): number {
    return this.#keys.size;
  }

  /**
   * Everything the head alone decides, cheapest first, before any body is read: a signature
   * there at all, a known key without a session token, a well-formed scope for this service,
   * a date within the allowed clock skew, the signed headers present. Throws the refusal.
   */
  check(head: SignedRequestHead, nowMs: number): CheckedRequest {
    const header = (name: string) => head.headers[name]?.join(',');
    // Two of these would be read one way here and another way by a proxy in front.
    for (const name of ['authorization', 'host', 'x-amz-date']) {
      if ((head.headers[name]?.length ?? 0) > 1) throw invalid(`The header '${name}' must be sent once.`);
    }
    const authorization = header('authorization');
    if (authorization === undefined) throw missingToken();
    const auth = parseAuthorization(authorization);
    const key = this.#keys.get(auth.accessKeyId);
    // Temporary credentials are never configured here: their token would be unchecked.
    if (key === undefined || head.headers['x-amz-security-token'] !== undefined) throw unrecognized();
    if (auth.service !== SERVICE) throw invalid(`Credential should be scoped to correct service: '${SERVICE}'.`);
    if (!auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) {
      throw invalid("'Host' and 'X-Amz-Date' must be SignedHeaders in the AWS Authorization.");
    }
    const dateHeader = header('x-amz-date');
    const date = parseAmzDate(dateHeader);
    if (date === undefined) throw invalid("X-Amz-Date must be an ISO 8601 basic date-time, 'YYYYMMDDTHHMMSSZ'.");
    if (!dateHeader!.startsWith(auth.shortDate)) {
      throw invalid(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.shortDate}' != '${dateHeader!.slice(0, 8)}'.`);
    }
    const skew = date.getTime() - nowMs;
    if (skew < -MAX_CLOCK_SKEW_MS) {
      throw invalid(`Signature expired: ${dateHeader} is now earlier than ${amzDate(nowMs - MAX_CLOCK_SKEW_MS)} (${amzDate(nowMs)} - 5 min.)`);
    }
    if (skew > MAX_CLOCK_SKEW_MS) {
      throw invalid(`Signature not yet current: ${dateHeader} is still later than ${amzDate(nowMs + MAX_CLOCK_SKEW_MS)} (${amzDate(nowMs)} + 5 min.)`);
    }
    // The routes act on these headers (the model, the input location, the content type): each
    // must be covered by the signature, as the AWS SDKs and boto3 always sign them, or a replay
    // within the window could change what a signed request does.
    for (const name of Object.keys(head.headers)) {
      if (ACTED_ON.test(name) && !auth.signedHeaders.includes(name)) throw invalid(`The header '${name}' must be signed (in SignedHeaders).`);
    }
    const headers: Record<string, string> = {};
    for (const name of auth.signedHeaders) {
      const value = header(name);
      if (value === undefined) throw invalid(`The signed header '${name}' is not in the request.`);
      headers[name] = value;
    }
    // The signature covers the bytes sent; the routes read them decoded.
    const coding = header('content-encoding')?.trim().toLowerCase();
    if (coding !== undefined && coding !== '' && coding !== 'identity') throw invalid('A signed request body must be sent without a Content-Encoding.');
    const declared = auth.signedHeaders.includes('x-amz-content-sha256') ? headers['x-amz-content-sha256'] : undefined;
    if (declared !== undefined && !HEX_SHA256.test(declared)) {
      throw invalid("X-Amz-Content-SHA256 must be the SHA-256 of the body in lowercase hex: unsigned and streaming payloads are not accepted.");
    }
    const queryAt = head.url.indexOf('?');
    return {
      key,
      declaredPayloadHash: declared,
      date,
      region: auth.region,
      signedHeaders: auth.signedHeaders,
      signature: auth.signature,
      request: {
        method: head.method,
        // The type asks for them; the signer reads neither (the host is a signed header).
        protocol: 'http:',
        hostname: headers.host!,
        path: queryAt < 0 ? head.url : head.url.slice(0, queryAt),
        query: queryAt < 0 ? {} : parseQuery(head.url.slice(queryAt + 1)),
        headers,
      },
    };
  }

  /**
   * Signs the request again with the key's secret and compares the signatures in constant time.
   * `body` is the payload, needed only when the client signed no `X-Amz-Content-SHA256`.
   */
  async verify(checked: CheckedRequest, body: Buffer | undefined): Promise<void> {
    const { key } = checked;
    const signer = new SignatureV4({
      credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      region: checked.region,
      service: SERVICE,
      sha256: Sha256,
      // Sign exactly the headers the client signed: none added, none left out.
      applyChecksum: false,
    });
    const signed = await signer.sign(
      { ...checked.request, headers: { ...checked.request.headers }, body },
      { signingDate: checked.date, signableHeaders: new Set(checked.signedHeaders) },
    );
    const computed = /SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization));
    const matches =
      computed !== null &&
      // Both are 64 hex digits (parseAuthorization checked the client's): equal lengths.
      timingSafeEqual(Buffer.from(computed[2]!, 'hex'), Buffer.from(checked.signature, 'hex')) &&
      computed[1] === checked.signedHeaders.join(';');
    if (!matches) throw signatureMismatch();
  }
}
