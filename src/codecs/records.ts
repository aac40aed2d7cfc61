/**
 * Record-oriented requests (JSON `instances`, JSON Lines): one entry per row, either the single
 * input's row or an object keyed by input name, stacked into one tensor per input.
 */
import { invalidInput } from '../errors.js';
import { tensorFromNested } from './signature-check.js';
import type { ModelSignature, NamedTensors } from './tensor.js';

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `recordLabel(i)` names record i in error messages ("instance 0", "line 3"). */
export function tensorsFromRecords(
  records: readonly unknown[],
  signature: ModelSignature,
  recordLabel: (index: number) => string,
): NamedTensors {
  const specs = signature.inputs;
  const [only] = specs;
  // A single input's rows are already one nested array: no copy needed.
  if (specs.length === 1 && only && !isJsonObject(records[0])) {
    return { [only.name]: tensorFromNested(only.name, records, only) };
  }

  const names = specs.map((spec) => `'${spec.name}'`).join(', ');
  const columns = specs.map(() => new Array<unknown>(records.length));
  records.forEach((record, i) => {
    if (!isJsonObject(record)) throw invalidInput(`${recordLabel(i)} must be an object keyed by input name (${names})`);
    for (const key of Object.keys(record)) {
      if (!specs.some((spec) => spec.name === key)) throw invalidInput(`${recordLabel(i)} has unknown input '${key}'; the model expects ${names}`);
    }
    specs.forEach((spec, k) => {
      if (!Object.hasOwn(record, spec.name)) throw invalidInput(`${recordLabel(i)} is missing input '${spec.name}'`);
      (columns[k] as unknown[])[i] = record[spec.name];
    });
  });
  return Object.fromEntries(specs.map((spec, k) => [spec.name, tensorFromNested(spec.name, columns[k], spec)]));
}
