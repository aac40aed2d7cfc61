import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeBatchBody, errorRecord, recordLines } from '../../src/codecs/batch-records.js';
import type { ModelSignature } from '../../src/codecs/tensor.js';

const signature = (name: string, shape: (number | null)[], extra: ModelSignature['inputs'] = []): ModelSignature => ({
  inputs: [{ name, dtype: 'float32', shape }, ...extra],
  outputs: [],
});
const decode = (text: string, model: ModelSignature) => decodeBatchBody(Buffer.from(text), 'application/json', model, {}).inputs;

describe('batch-mode JSON: one record a line', () => {
  it('decodes a record the same alone as among others', () => {
    const cases: { model: ModelSignature; record: string }[] = [
      { model: signature('x', [null, 2, 2]), record: '[[1,2],[3,4]]' },
      { model: signature('x', [null, 3]), record: '[1,2,3]' },
      { model: signature('x', [null]), record: '5' },
      { model: signature('inputs', [null, 2], [{ name: 'mask', dtype: 'float32', shape: [null, 2] }]), record: '{"inputs":[1,2],"mask":[1,1]}' },
    ];
    for (const { model, record } of cases) {
      const alone = decode(record, model);
      const three = decode(`${record}\n${record}\n\n${record}\n`, model);
      for (const [name, tensor] of Object.entries(alone)) {
        assert.deepEqual(tensor.dims.slice(1), three[name]!.dims.slice(1), `${record}: ${name}`);
        assert.equal(tensor.dims[0], 1);
        assert.equal(three[name]!.dims[0], 3);
      }
    }
  });

  it('still reads one real-time request, also pretty-printed', () => {
    const model = signature('x', [null, 2]);
    assert.deepEqual(decode('{"instances": [[1,2],[3,4]]}', model).x!.dims, [2, 2]);
    assert.deepEqual(decode('{\n  "inputs": {"x": [[1,2]]}\n}\n', model).x!.dims, [1, 2]);
    assert.throws(() => decode('[1,2]\n{oops', model), { code: 'INFERD_ERR_BODY_MALFORMED' });
  });

  it('splits records on lines and writes error lines', () => {
    assert.deepEqual(recordLines(Buffer.from('a\r\n\n  \nb\nc')).map(String), ['a', 'b', 'c']);
    assert.equal(errorRecord('text/csv', { code: 'E', message: 'say "no", then' }), 'ERROR,E,"say ""no"", then"');
    assert.equal(errorRecord('application/json', { code: 'E', message: 'm' }), '{"error":{"code":"E","message":"m"}}');
  });
});
