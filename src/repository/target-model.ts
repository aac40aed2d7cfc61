/**
 * Paths relative to the model repository: a client's `TargetModel`, the keys of a model's
 * objects under an S3 prefix, and the entries of a model archive. All of them come from outside
 * and are joined to a directory we own, so they are checked the same way before any file is
 * opened: a path that could name something outside its base is refused, never "cleaned".
 */
import { InferdError } from '../errors.js';

/** SageMaker's own bound on `TargetModel`. */
const MAX_TARGET_MODEL_CHARS = 1024;

/**
 * `target` normalised to `a/b/c`: a leading `./` and `.` segments dropped. Refuses (with
 * INFERD_ERR_MODEL_SOURCE_INVALID) an empty or over-long target, control characters, a
 * backslash, an absolute path, `..`, and empty segments (`a//b`, a trailing `/`).
 */
export function targetModelPath(target: string): string {
  if (target.length > MAX_TARGET_MODEL_CHARS) {
    throw sourceInvalid(`TargetModel is longer than ${MAX_TARGET_MODEL_CHARS} characters`);
  }
  const segments = relativeSegments(target, 'TargetModel');
  if (segments.length === 0) throw sourceInvalid(`TargetModel ${JSON.stringify(target)} names the repository itself, not a model`);
  return segments.join('/');
}

/**
 * The segments of a relative path with `.` segments dropped; empty for `.` itself. `what`
 * names the path in the error (`TargetModel`, `archive entry`…). Same refusals as
 * targetModelPath, except the length bound and an empty result, which callers decide on.
 */
export function relativeSegments(path: string, what: string): string[] {
  const refuse = (problem: string): InferdError => sourceInvalid(`${what} ${JSON.stringify(path)} ${problem}`);
  if (path === '') throw sourceInvalid(`${what} is empty`);
  if (hasControlCharacter(path)) throw refuse('contains a NUL or control character');
  // On Windows a backslash separates segments; refusing it keeps `..\evil` from ever meaning `..`.
  if (path.includes('\\')) throw refuse('contains a backslash');
  if (path.startsWith('/')) throw refuse('is absolute; it must be relative to the repository');
  const segments = path.split('/').filter((segment) => segment !== '.');
  if (segments.includes('..')) throw refuse('contains a ".." segment');
  // `a//b` or `a/` could mean different objects on S3 and on disk; refuse rather than guess.
  if (segments.includes('')) throw refuse('contains an empty segment (a doubled or trailing "/")');
  return segments;
}

function hasControlCharacter(path: string): boolean {
  for (let index = 0; index < path.length; index += 1) {
    const code = path.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

export function sourceInvalid(message: string, cause?: unknown): InferdError {
  return new InferdError('INFERD_ERR_MODEL_SOURCE_INVALID', message, { cause });
}
