/**
 * application/jsonlines: one JSON record per line, each what a JSON `instances` element would be.
 * Responses carry one line per record, each what a JSON `predictions` element would be.
 */
import { malformedBody } from '../errors.js';
import type { RequestDecoder, ResponseEncoder } from './codec.js';
import { parseJson } from './json.js';
import { tensorsFromRecords } from './records.js';
import { jsonRecord, outputColumns } from './rows.js';
import { checkInputs } from './signature-check.js';

export const jsonLinesDecoder: RequestDecoder = {
  mediaType: 'application/jsonlines',
  decode(body, signature) {
    if (body.length === 0) throw malformedBody('the body is empty');
    const records: unknown[] = [];
    const lineNumbers: number[] = [];
    body
      .toString('utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        records.push(parseJson(line, `line ${i + 1}`));
        lineNumbers.push(i + 1);
      });
    if (records.length === 0) throw malformedBody('the body has no records, only blank lines');
    const inputs = tensorsFromRecords(records, signature, (i) => `line ${lineNumbers[i]}`);
    checkInputs(inputs, signature);
    return { inputs, style: 'predictions' };
  },
};

export const jsonLinesEncoder: ResponseEncoder = {
  mediaType: 'application/jsonlines',
  encode(outputs, signature) {
    const { columns, rows } = outputColumns(outputs, signature);
    let text = '';
    for (let row = 0; row < rows; row++) text += `${jsonRecord(columns, row)}\n`;
    return Buffer.from(text, 'utf8');
  },
};
