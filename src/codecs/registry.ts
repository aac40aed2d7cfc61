/** Media types to codecs, and `Accept` negotiation. Media types here are lower-case, without parameters. */
import type { RequestDecoder, ResponseEncoder } from './codec.js';
import { csvDecoder, csvEncoder } from './csv.js';
import { jsonDecoder, jsonEncoder } from './json.js';
import { jsonLinesDecoder, jsonLinesEncoder } from './jsonlines.js';
import { npyDecoder, npyEncoder } from './npy.js';
import { octetStreamDecoder } from './octet-stream.js';

const JSON_LINES_ALIASES = ['application/jsonl', 'application/x-jsonlines'];

const DECODERS = new Map<string, RequestDecoder>([
  ...[jsonDecoder, jsonLinesDecoder, csvDecoder, npyDecoder, octetStreamDecoder].map((d) => [d.mediaType, d] as const),
  ...JSON_LINES_ALIASES.map((alias) => [alias, jsonLinesDecoder] as const),
]);

/** In order of preference when a wildcard leaves the choice to the server. */
const ENCODERS = [jsonEncoder, jsonLinesEncoder, npyEncoder, csvEncoder];
const ENCODERS_BY_TYPE = new Map<string, ResponseEncoder>([
  ...ENCODERS.map((e) => [e.mediaType, e] as const),
  ...JSON_LINES_ALIASES.map((alias) => [alias, jsonLinesEncoder] as const),
]);

export const SUPPORTED_REQUEST_TYPES: readonly string[] = [...DECODERS.keys()];
export const SUPPORTED_RESPONSE_TYPES: readonly string[] = ENCODERS.map((e) => e.mediaType);

export function decoderFor(mediaType: string): RequestDecoder | undefined {
  return DECODERS.get(mediaType);
}

/** Also takes the JSON Lines aliases; the encoder's `mediaType` is the canonical name. */
export function encoderFor(mediaType: string): ResponseEncoder | undefined {
  return ENCODERS_BY_TYPE.get(mediaType);
}

interface MediaRange {
  readonly type: string;
  readonly q: number;
  readonly position: number;
}

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  accept.split(',').forEach((part, position) => {
    const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (!type.includes('/')) return;
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=').map((s) => s.trim());
      if (key === 'q') q = value !== undefined && /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) ? Number(value) : Number.NaN;
    }
    if (!Number.isNaN(q)) ranges.push({ type: encoderFor(type)?.mediaType ?? type, q, position });
  });
  return ranges;
}

/** How specifically `range` names `mediaType`: 3 exact, 2 `type/*`, 1 `*\/*`, 0 not at all. */
function specificity(range: string, mediaType: string): number {
  if (range === mediaType) return 3;
  if (range === '*/*') return 1;
  return range.endsWith('/*') && mediaType.startsWith(range.slice(0, -1)) ? 2 : 0;
}

/**
 * The response type for an `Accept` header (RFC 9110 §12.5.1), or undefined when it admits no
 * supported type (answer 406). Each supported type takes the q of the most specific range naming
 * it; q=0 excludes it. Ties go to the more specific range, then the range the client listed first,
 * then `defaultAccept`, then the order json, jsonlines, x-npy, csv. Malformed ranges are ignored.
 */
export function negotiateResponseType(accept: string | undefined, defaultAccept: string): string | undefined {
  if (accept === undefined || accept.trim() === '') return defaultAccept;
  const ranges = parseAccept(accept);
  const preferred = encoderFor(defaultAccept)?.mediaType;
  const candidates = [...SUPPORTED_RESPONSE_TYPES].sort((a, b) => Number(b === preferred) - Number(a === preferred));
  let best: { type: string; q: number; specificity: number; position: number } | undefined;
  for (const type of candidates) {
    let match: { q: number; specificity: number; position: number } | undefined;
    for (const range of ranges) {
      const rangeSpecificity = specificity(range.type, type);
      if (rangeSpecificity > (match?.specificity ?? 0)) match = { q: range.q, specificity: rangeSpecificity, position: range.position };
    }
    if (!match || match.q === 0) continue;
    const better =
      !best ||
      match.q > best.q ||
      (match.q === best.q &&
        (match.specificity > best.specificity || (match.specificity === best.specificity && match.position < best.position)));
    if (better) best = { type, ...match };
  }
  return best?.type;
}
