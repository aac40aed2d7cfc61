import assert from 'node:assert/strict';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { Spool } from '../../src/capture/spool.js';

it('a spool reopened after a crash keeps whole objects, clears torn writes, and refuses past its bound', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-spool-'));
  const first = new Spool(dir, 1024);
  await first.open();
  assert.equal(await first.write('s3://b/k1.jsonl', '{"a":1}\n'), true);
  await writeFile(join(dir, '.000-torn.tmp'), 'half a wri');

  const second = new Spool(dir, 1024);
  await second.open();
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
  const objects = [];
  for await (const object of second.objects()) objects.push(object);
  assert.deepEqual(objects.map(({ uri, body }) => ({ uri, body })), [{ uri: 's3://b/k1.jsonl', body: '{"a":1}\n' }]);
  assert.equal(second.bytes, Buffer.byteLength('s3://b/k1.jsonl\n{"a":1}\n'));
  assert.equal(await second.write('s3://b/k2.jsonl', 'x'.repeat(2000)), false, 'past maxBytes');
  await second.remove(objects[0]!);
  assert.equal(second.bytes, 0);
});
