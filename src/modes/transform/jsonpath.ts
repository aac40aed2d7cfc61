/**
 * The JSONPath subset SageMaker Batch Transform accepts in `DataProcessing.InputFilter` and
 * `OutputFilter`, parsed once per job and applied to every record.
 *
 * Source: "Associate Prediction Results with Input Records",
 * https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
 * (section "Supported JSONPath Operators" and the CSV example), and the `DataProcessing` API
 * reference, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataProcessing.html
 *
 * What the documentation settles, and this module follows:
 * - Operators: `$` (required first), `.name`, `*`, `['a'(,'b')]`, `[i(,j)]` with negative indexes
 *   (`-1` is the last element), and `[start:end]` with either end omitted. The examples `$[0,5:]`
 *   show indexes and slices mixed in one bracket. Expressions are at most 63 characters.
 * - Slice ends are INCLUSIVE. The table calls the operator "the array slice() method", but the CSV
 *   example is explicit: "The colon (:) tells SageMaker to include all of the elements between two
 *   values, inclusive. For example, $[1:4] specifies the second through fifth columns", and `[:5]`
 *   is "the first column (index 0) through the sixth column". An omitted end means the last element.
 * - "If you specify indexes that aren't within the dimension size of the joined dataset, you get an
 *   error" (API reference, OutputFilter), so an explicit index or slice bound outside the array fails
 *   the record instead of being clamped.
 * - Multi-child brackets cannot reach deeper: `$.field1.['child1','child2']` is supported,
 *   `['child1','child2.grandchild']` is not, so a dot inside a multi-name bracket is rejected.
 *
 * Where the documentation is silent, this module decides:
 * - A segment that selects several elements (`*`, a list, a slice) must be the last one. Mapping the
 *   rest of the path over each selected element is what general JSONPath does, but SageMaker never
 *   shows it and a clear error beats a guess.
 * - A slice whose start lies after its end selects nothing.
 * - Elements come out in the order the bracket lists them, duplicates included; a multi-name
 *   bracket builds an object of the listed keys the record has, and silently omits the others.
 */
import { invalidInput } from '../../errors.js';

/** SageMaker's limit on `InputFilter` and `OutputFilter` (API reference, length constraints). */
export const MAX_JSON_PATH_LENGTH_CHARS = 63;

/** An expression outside the supported subset; a job-configuration error, never a per-record one. */
export class InvalidJsonPathError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidJsonPathError';
  }
}

/** One member of an index bracket: `[2]`, `[-1]`, or a slice with optional, inclusive bounds. */
export type IndexSelector =
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'slice'; readonly start: number | undefined; readonly end: number | undefined };

export type JsonPathSegment =
  /** `.name` or `['name']`: that member's value. */
  | { readonly kind: 'name'; readonly name: string }
  /** `['a','b']`: an object of those members. */
  | { readonly kind: 'names'; readonly names: readonly string[] }
  /** `[i]`: that element. */
  | { readonly kind: 'index'; readonly index: number }
  /** `[i,j]`, `[a:b]`, `[0,5:]`: an array of the selected elements. */
  | { readonly kind: 'indexes'; readonly items: readonly IndexSelector[] }
  /** `.*` or `[*]`: an array of every element or member value. */
  | { readonly kind: 'wildcard' };

export interface JsonPath {
  readonly expression: string;
  /** Empty for `$`, which selects the whole record. */
  readonly segments: readonly JsonPathSegment[];
}

const NAME_CHAR = /[^.[\]'"*?@(),:\s]/;
const INTEGER = /^-?\d+$/;

class Parser {
  private at = 0;

  constructor(private readonly text: string) {}

  fail(reason: string): never {
    throw new InvalidJsonPathError(`invalid JSONPath ${JSON.stringify(this.text)} at character ${this.at + 1}: ${reason}`);
  }

  get done(): boolean {
    return this.at >= this.text.length;
  }

  peek(): string | undefined {
    return this.text[this.at];
  }

  take(): string | undefined {
    return this.text[this.at++];
  }

  skipSpaces(): void {
    while (this.peek() === ' ') this.at++;
  }

  segment(): JsonPathSegment {
    const char = this.take();
    if (char === '.') {
      const next = this.peek();
      if (next === '.') this.fail("recursive descent '..' is not supported");
      if (next === '*') {
        this.at++;
        return { kind: 'wildcard' };
      }
      if (next === '[') return this.segment();
      return { kind: 'name', name: this.name() };
    }
    if (char === '[') return this.bracket();
    this.at--;
    return this.fail(`expected '.' or '[', got ${JSON.stringify(char)}`);
  }

  name(): string {
    const start = this.at;
    while (!this.done && NAME_CHAR.test(this.peek() ?? '')) this.at++;
    if (this.at === start) this.fail(this.done ? "a name must follow '.'" : `unexpected ${JSON.stringify(this.peek())}`);
    return this.text.slice(start, this.at);
  }

  bracket(): JsonPathSegment {
    this.skipSpaces();
    const first = this.peek();
    let segment: JsonPathSegment;
    if (first === '*') {
      this.at++;
      segment = { kind: 'wildcard' };
    } else if (first === "'" || first === '"') {
      segment = this.names();
    } else if (first === '[') {
      return this.fail('nested brackets are not supported');
    } else {
      segment = this.indexes();
    }
    this.skipSpaces();
    if (this.peek() === '[') this.fail('nested brackets are not supported');
    if (this.take() !== ']') {
      this.at--;
      this.fail(this.done ? "missing ']'" : `unexpected ${JSON.stringify(this.peek())} in brackets`);
    }
    return segment;
  }

  names(): JsonPathSegment {
    const names: string[] = [];
    for (;;) {
      this.skipSpaces();
      names.push(this.quoted());
      this.skipSpaces();
      if (this.peek() !== ',') break;
      this.at++;
    }
    const [only] = names;
    if (names.length === 1 && only !== undefined) return { kind: 'name', name: only };
    if (names.some((name) => name.includes('.'))) {
      this.fail('a bracket naming several children cannot reach into them (SageMaker rejects nesting inside brackets)');
    }
    return { kind: 'names', names };
  }

  quoted(): string {
    const quote = this.take();
    if (quote !== "'" && quote !== '"') {
      this.at--;
      return this.fail('a bracket mixing names and indexes is not supported');
    }
    let value = '';
    for (;;) {
      const char = this.take();
      if (char === undefined) return this.fail('a quoted name is not closed');
      if (char === quote) return value;
      if (char === '\\') {
        const escaped = this.take();
        if (escaped !== quote && escaped !== '\\') this.fail('only \\\\ and an escaped quote are allowed in a quoted name');
        value += escaped;
      } else {
        value += char;
      }
    }
  }

  integer(): number | undefined {
    this.skipSpaces();
    const start = this.at;
    if (this.peek() === '-') this.at++;
    while (!this.done && (this.peek() ?? '') >= '0' && (this.peek() ?? '') <= '9') this.at++;
    const digits = this.text.slice(start, this.at);
    this.skipSpaces();
    if (digits === '') return undefined;
    const value = Number(digits);
    if (!INTEGER.test(digits) || !Number.isSafeInteger(value)) {
      this.at = start;
      return this.fail(`${JSON.stringify(digits)} is not an index`);
    }
    return value === 0 ? 0 : value;
  }

  indexes(): JsonPathSegment {
    const items: IndexSelector[] = [];
    for (;;) {
      const start = this.integer();
      if (this.peek() === ':') {
        this.at++;
        const end = this.integer();
        if (this.peek() === ':') this.fail('slice steps are not supported');
        items.push({ kind: 'slice', start, end });
      } else if (start === undefined) {
        const char = this.peek();
        if (char === "'" || char === '"') this.fail('a bracket mixing names and indexes is not supported');
        this.fail(char === undefined || char === ']' ? 'empty brackets' : `unexpected ${JSON.stringify(char)} in brackets`);
      } else {
        items.push({ kind: 'index', index: start });
      }
      if (this.peek() !== ',') break;
      this.at++;
    }
    const [only] = items;
    if (items.length === 1 && only?.kind === 'index') return only;
    return { kind: 'indexes', items };
  }
}

const selectsSeveral = (segment: JsonPathSegment): boolean =>
  segment.kind === 'names' || segment.kind === 'indexes' || segment.kind === 'wildcard';

/**
 * Parses an `InputFilter` / `OutputFilter` expression once, so records only pay for selection.
 * @throws InvalidJsonPathError for anything outside SageMaker's subset or longer than 63 characters.
 * @example parseJsonPath("$['id','SageMakerOutput']")
 */
export function parseJsonPath(expression: string): JsonPath {
  if (expression.length > MAX_JSON_PATH_LENGTH_CHARS) {
    throw new InvalidJsonPathError(
      `invalid JSONPath: ${expression.length} characters, SageMaker allows at most ${MAX_JSON_PATH_LENGTH_CHARS}`,
    );
  }
  const parser = new Parser(expression);
  if (parser.take() !== '$') {
    throw new InvalidJsonPathError(`invalid JSONPath ${JSON.stringify(expression)}: it must start with '$'`);
  }
  const segments: JsonPathSegment[] = [];
  while (!parser.done) {
    const previous = segments.at(-1);
    if (previous && selectsSeveral(previous)) {
      parser.fail("only the last segment may select several elements ('*', a list or a slice)");
    }
    segments.push(parser.segment());
  }
  return { expression, segments };
}

function describeKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length} elements`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resolveIndex(path: JsonPath, index: number, array: readonly unknown[]): number {
  const resolved = index < 0 ? array.length + index : index;
  if (resolved < 0 || resolved >= array.length) {
    throw invalidInput(`${path.expression}: index ${index} is out of range for ${describeKind(array)}`);
  }
  return resolved;
}

function selectIndexes(path: JsonPath, items: readonly IndexSelector[], array: readonly unknown[]): unknown[] {
  const selected: unknown[] = [];
  for (const item of items) {
    if (item.kind === 'index') {
      selected.push(array[resolveIndex(path, item.index, array)]);
      continue;
    }
    const first = item.start === undefined ? 0 : resolveIndex(path, item.start, array);
    const last = item.end === undefined ? array.length - 1 : resolveIndex(path, item.end, array);
    for (let i = first; i <= last; i++) selected.push(array[i]);
  }
  return selected;
}

function expectArray(path: JsonPath, value: unknown): readonly unknown[] {
  if (!Array.isArray(value)) throw invalidInput(`${path.expression}: an index needs an array, got ${describeKind(value)}`);
  return value;
}

function expectObject(path: JsonPath, value: unknown): Record<string, unknown> {
  if (!isObject(value)) throw invalidInput(`${path.expression}: a name needs an object, got ${describeKind(value)}`);
  return value;
}

/**
 * Applies a parsed path to one parsed record. Single selections return the element itself;
 * lists, slices and `*` return arrays, and a multi-name bracket returns an object.
 * @throws InferdError INFERD_ERR_INPUT_INVALID when the record lacks what the path names.
 * @example selectJson([7, 1, 2], parseJsonPath('$[1:]')) // [1, 2]
 */
export function selectJson(value: unknown, path: JsonPath): unknown {
  let current = value;
  for (const segment of path.segments) {
    switch (segment.kind) {
      case 'name': {
        const object = expectObject(path, current);
        if (!Object.hasOwn(object, segment.name)) {
          throw invalidInput(`${path.expression}: the record has no member ${JSON.stringify(segment.name)}`);
        }
        current = object[segment.name];
        break;
      }
      case 'names': {
        const object = expectObject(path, current);
        const picked: Record<string, unknown> = {};
        for (const name of segment.names) {
          // defineProperty, because assigning a parsed "__proto__" member would replace the prototype.
          if (Object.hasOwn(object, name)) {
            Object.defineProperty(picked, name, { value: object[name], enumerable: true, writable: true, configurable: true });
          }
        }
        current = picked;
        break;
      }
      case 'index': {
        const array = expectArray(path, current);
        current = array[resolveIndex(path, segment.index, array)];
        break;
      }
      case 'indexes':
        current = selectIndexes(path, segment.items, expectArray(path, current));
        break;
      case 'wildcard':
        if (Array.isArray(current)) current = current.slice();
        else if (isObject(current)) current = Object.values(current);
        else throw invalidInput(`${path.expression}: '*' needs an array or an object, got ${describeKind(current)}`);
        break;
    }
  }
  return current;
}
