/**
 * SageMaker Batch Transform `DataProcessing`: `InputFilter` picks what the model sees of each
 * record, `JoinSource: Input` puts the original record beside the model's answer, and
 * `OutputFilter` picks what of that is written. Semantics follow
 * https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
 * (see jsonpath.ts for the path subset and its inclusive slices).
 *
 * Errors, in two families:
 * - Configuration, thrown by `createRecordProcessor` before any record is read:
 *   `InvalidJsonPathError` when a filter expression cannot be used (bad syntax, too long, or a
 *   name path on CSV records), `DataProcessingError` when the options do not fit together (a join
 *   between different formats, an unknown `JoinSource`). They are separate classes because the
 *   path module stays independent of this one; callers validating a job catch both.
 * - Per record, thrown by `filterInput` / `assemble`: `InferdError` with
 *   INFERD_ERR_BODY_MALFORMED (a line that is not JSON, an unclosed CSV quote) or
 *   INFERD_ERR_INPUT_INVALID (the record lacks what a filter names), prefixed with the filter.
 */
import { InferdError, malformedBody } from '../../errors.js';
import { InvalidJsonPathError, parseJsonPath, selectJson, type JsonPath } from './jsonpath.js';

export { InvalidJsonPathError } from './jsonpath.js';

/** `json` covers application/json and application/jsonlines: one JSON value per line. */
export type RecordFormat = 'csv' | 'json';

export interface DataProcessingOptions {
  /** JSONPath; `$` (the default) sends the whole record. */
  readonly inputFilter: string;
  readonly joinSource: 'None' | 'Input';
  /** JSONPath over the joined record (or the output record without a join); default `$`. */
  readonly outputFilter: string;
}

export interface RecordProcessor {
  /** True when inputFilter is '$' and joinSource is 'None' and outputFilter is '$': callers skip all per-record work. */
  readonly identity: boolean;
  /** One input record (one line of text, without its newline) → the text sent to the model for it. */
  filterInput(record: string): string;
  /** The model's output record for it (one line, no newline) → the line written to the output, after join and output filter. */
  assemble(inputRecord: string, outputRecord: string): string;
}

/** `DataProcessing` options that cannot work together; a job-configuration error. */
export class DataProcessingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataProcessingError';
  }
}

/** Keys SageMaker reserves in joined JSON records. */
const OUTPUT_KEY = 'SageMakerOutput';
const INPUT_KEY = 'SageMakerInput';

const QUOTE = 0x22;
const COMMA = 0x2c;

const withoutCr = (line: string): string => (line.endsWith('\r') ? line.slice(0, -1) : line);

/**
 * A CSV line as the raw text of its fields, quotes kept, so selected fields are rejoined byte for
 * byte. RFC 4180 quoting; a stray quote inside an unquoted field is kept as text rather than
 * rejected, because nothing here interprets field values.
 */
function csvFields(line: string, what: string): string[] {
  const text = withoutCr(line);
  if (!text.includes('"')) return text.split(',');
  const fields: string[] = [];
  let start = 0;
  let at = 0;
  for (;;) {
    if (text.charCodeAt(at) === QUOTE) {
      at++;
      for (;;) {
        const quote = text.indexOf('"', at);
        if (quote === -1) throw malformedBody(`${what}: the quoted field ${fields.length + 1} is not closed`);
        at = quote + 1;
        if (text.charCodeAt(at) !== QUOTE) break;
        at++;
      }
      if (at < text.length && text.charCodeAt(at) !== COMMA) {
        throw malformedBody(`${what}: unexpected character after the closing quote of field ${fields.length + 1}`);
      }
    } else {
      const comma = text.indexOf(',', at);
      at = comma === -1 ? text.length : comma;
    }
    fields.push(text.slice(start, at));
    if (at >= text.length) return fields;
    at++;
    start = at;
  }
}

function parseJsonRecord(line: string, what: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch (error) {
    throw malformedBody(`${what} is not valid JSON: ${(error as Error).message}`, error);
  }
}

/** The model may answer a JSON job with bare text; the join keeps it as a string rather than failing. */
function parseJsonOrText(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return line;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function select(value: unknown, path: JsonPath, option: string): unknown {
  try {
    return selectJson(value, path);
  } catch (error) {
    if (error instanceof InferdError) throw new InferdError(error.code, `${option} ${error.message}`);
    throw error;
  }
}

const csvText = (selection: unknown): string => (Array.isArray(selection) ? selection.join(',') : String(selection));

function compile(option: string, expression: string, format: RecordFormat): JsonPath {
  let path: JsonPath;
  try {
    path = parseJsonPath(expression);
  } catch (error) {
    if (error instanceof InvalidJsonPathError) throw new InvalidJsonPathError(`${option}: ${error.message}`, { cause: error });
    throw error;
  }
  const [segment, ...rest] = path.segments;
  // A CSV row is one flat array of strings, so only one index-like step can apply to it.
  if (format === 'csv' && segment && (segment.kind === 'name' || segment.kind === 'names' || rest.length > 0)) {
    throw new InvalidJsonPathError(
      `${option} ${JSON.stringify(expression)}: CSV records are arrays of fields, so only one index step such as $[0], $[1:] or $[0,-1] applies`,
    );
  }
  return path;
}

const identityProcessor: RecordProcessor = Object.freeze({
  identity: true,
  filterInput: (record: string) => record,
  assemble: (_inputRecord: string, outputRecord: string) => outputRecord,
});

/**
 * Compiles `DataProcessing` once per job into per-record functions.
 * @throws InvalidJsonPathError or DataProcessingError when the options are unusable.
 * @example
 * const processor = createRecordProcessor('csv', 'csv', { inputFilter: '$[1:]', joinSource: 'Input', outputFilter: '$[0,-1]' });
 * processor.filterInput('id7,1.5,2'); // '1.5,2'
 * processor.assemble('id7,1.5,2', '0.93'); // 'id7,0.93'
 */
export function createRecordProcessor(
  inputFormat: RecordFormat,
  outputFormat: RecordFormat,
  options: DataProcessingOptions,
): RecordProcessor {
  for (const [name, format] of [['input', inputFormat], ['output', outputFormat]] as const) {
    if (format !== 'csv' && format !== 'json') throw new DataProcessingError(`unsupported ${name} record format ${JSON.stringify(format)}`);
  }
  const { joinSource } = options;
  if (joinSource !== 'None' && joinSource !== 'Input') {
    throw new DataProcessingError(`JoinSource must be "None" or "Input", got ${JSON.stringify(joinSource)}`);
  }
  const join = joinSource === 'Input';
  if (join && inputFormat !== outputFormat) {
    throw new DataProcessingError(
      `JoinSource "Input" needs the input and output in the same format, got ${inputFormat} input and ${outputFormat} output`,
    );
  }
  const inputFilter = compile('InputFilter', options.inputFilter, inputFormat);
  const outputFilter = compile('OutputFilter', options.outputFilter, outputFormat);
  const filtersInput = inputFilter.segments.length > 0;
  const filtersOutput = outputFilter.segments.length > 0;
  if (!filtersInput && !join && !filtersOutput) return identityProcessor;

  const filterInput = !filtersInput
    ? identityProcessor.filterInput
    : inputFormat === 'csv'
      ? (record: string) => csvText(select(csvFields(record, 'input record'), inputFilter, 'InputFilter'))
      : (record: string) => JSON.stringify(select(parseJsonRecord(record, 'input record'), inputFilter, 'InputFilter'));

  let assemble: RecordProcessor['assemble'];
  if (!join) {
    assemble = !filtersOutput
      ? identityProcessor.assemble
      : outputFormat === 'csv'
        ? (_input, output) => csvText(select(csvFields(output, 'model output record'), outputFilter, 'OutputFilter'))
        : (_input, output) =>
            JSON.stringify(select(parseJsonRecord(output, 'model output record'), outputFilter, 'OutputFilter'));
  } else if (inputFormat === 'csv') {
    assemble = !filtersOutput
      ? (input, output) => `${withoutCr(input)},${withoutCr(output)}`
      : (input, output) => {
          const joined = csvFields(input, 'input record');
          for (const field of csvFields(output, 'model output record')) joined.push(field);
          return csvText(select(joined, outputFilter, 'OutputFilter'));
        };
  } else {
    assemble = (input, output) => {
      const inputValue = parseJsonRecord(input, 'input record');
      const outputValue = parseJsonOrText(output);
      let joined: unknown;
      if (isObject(inputValue)) {
        // The freshly parsed record is ours to extend; an input member of this name is overwritten, as SageMaker warns.
        inputValue[OUTPUT_KEY] = outputValue;
        joined = inputValue;
      } else {
        joined = { [INPUT_KEY]: inputValue, [OUTPUT_KEY]: outputValue };
      }
      return JSON.stringify(filtersOutput ? select(joined, outputFilter, 'OutputFilter') : joined);
    };
  }
  return { identity: false, filterInput, assemble };
}
