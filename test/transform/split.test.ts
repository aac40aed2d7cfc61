/**
 * SplitType and BatchStrategy as SageMaker Batch Transform applies them: records come out the
 * same however the object is cut into chunks, limits fail early without reading the rest of an
 * object, and mini-batches pack greedily, in order, never over the payload limit.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  encodeRecordIO,
  miniBatches,
  splitRecords,
  SplitError,
  type BatchStrategy,
  type MiniBatch,
  type SplitErrorCode,
  type SplitType,
} from '../../src/modes/transform/split.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const MAGIC = Buffer.from([0x0a, 0x23, 0xd7, 0xce]);

type Chunk = Buffer | Uint8Array | string;

async function* fromChunks<T>(chunks: readonly T[]): AsyncGenerator<T> {
  yield* chunks;
}

/** `bytes` cut at `cuts` (offsets, any order, duplicates allowed: they give empty chunks). */
function cutAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const offsets = [0, ...[...cuts].sort((a, b) => a - b), bytes.length];
  return offsets.slice(1).map((end, i) => bytes.subarray(offsets[i], end));
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

const split = (chunks: readonly Chunk[], splitType: SplitType, maxRecordBytes = Number.POSITIVE_INFINITY) =>
  collect(splitRecords(fromChunks(chunks), splitType, maxRecordBytes));

const texts = (buffers: readonly Buffer[]) => buffers.map((b) => b.toString('utf8'));

async function assertSplitFails(promise: Promise<unknown>, code: SplitErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof SplitError, `expected a SplitError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

/**
 * `totalBytes` of `fill` in 64 KiB chunks, counting what was pulled and whether the consumer
 * released it, to show a limit stops the read early and closes the source.
 */
function hugeSource(totalBytes: number, fill: string | ((index: number) => Buffer)) {
  const state = { pulledBytes: 0, released: false };
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for (let index = 0; index * 64 * KIB < totalBytes; index += 1) {
        const chunk = typeof fill === 'string' ? Buffer.alloc(64 * KIB, fill) : fill(index);
        state.pulledBytes += chunk.length;
        yield chunk;
      }
    } finally {
      state.released = true;
    }
  }
  return { state, chunks: chunks() };
}

/** Lines as SageMaker sees them: the reference the streaming splitter must agree with. */
function referenceLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
    .filter((line) => !/^[\t\n\v\f\r ]*$/.test(line));
}

/** One frame, written by hand so the reader is not only checked against our own writer. */
function frame(cflag: number, payload: Buffer | string, magic = 0xced7230a): Buffer {
  const bytes = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(((cflag << 29) | bytes.length) >>> 0, 4);
  return Buffer.concat([header, bytes, Buffer.alloc((4 - (bytes.length % 4)) % 4)]);
}

describe('splitRecords, Line', () => {
  const cases: { name: string; chunks: Chunk[]; records: string[] }[] = [
    { name: 'LF lines', chunks: ['a,1\nb,2\nc,3\n'], records: ['a,1', 'b,2', 'c,3'] },
    { name: 'CRLF lines', chunks: ['a,1\r\nb,2\r\n'], records: ['a,1', 'b,2'] },
    { name: 'no final newline', chunks: ['a\nb'], records: ['a', 'b'] },
    { name: 'no final newline after a CR', chunks: ['a\nb\r'], records: ['a', 'b'] },
    { name: 'blank and whitespace-only lines', chunks: ['\n\na\n \n\t \r\n\r\nb\n\n'], records: ['a', 'b'] },
    { name: 'only a CR removed, and only at the end', chunks: ['a\rb\r\r\n \rx\n'], records: ['a\rb\r', ' \rx'] },
    { name: 'surrounding spaces kept', chunks: ['  a, b  \n'], records: ['  a, b  '] },
    { name: 'an empty object', chunks: [], records: [] },
    { name: 'empty chunks', chunks: ['', Buffer.alloc(0), 'a', '', '\n', ''], records: ['a'] },
    { name: 'only blank lines', chunks: ['\n\r\n  \n'], records: [] },
    { name: 'a line across string chunks', chunks: ['ab', 'c', 'd\r', '\ne'], records: ['abcd', 'e'] },
    { name: 'a CR and its LF in different chunks', chunks: ['a\r', '\nb\r', '\n'], records: ['a', 'b'] },
    { name: 'Uint8Array chunks', chunks: [new TextEncoder().encode('é,1\nü'), new TextEncoder().encode(',2\n')], records: ['é,1', 'ü,2'] },
  ];
  for (const { name, chunks, records } of cases) {
    it(`splits ${name}`, async () => assert.deepEqual(texts(await split(chunks, 'Line')), records));
  }

  it('gives the same records with the chunk boundary at every byte', async () => {
    const bytes = Buffer.from('id,x\r\n1,é\n\n  \n2,ü\r\n\r\n3,last', 'utf8');
    const expected = referenceLines(bytes.toString('utf8'));
    for (let cut = 0; cut <= bytes.length; cut += 1) {
      assert.deepEqual(texts(await split(cutAt(bytes, [cut]), 'Line')), expected, `cut at ${cut}`);
    }
    assert.deepEqual(texts(await split(cutAt(bytes, Array.from(bytes.keys())), 'Line')), expected, 'one byte per chunk');
  });

  it('gives the reference records for random lines at random chunkings', async () => {
    const line = fc.array(fc.constantFrom('a', '1', ',', '.', ' ', '\t', '\r', 'é', '"'), { maxLength: 12 }).map((cs) => cs.join(''));
    const text = fc
      .tuple(fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), { maxLength: 12 }), line)
      .map(([lines, last]) => lines.map(([l, end]) => l + end).join('') + last);
    await fc.assert(
      fc.asyncProperty(text, fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), async (t, cutSeeds, asUint8Array) => {
        const bytes = Buffer.from(t, 'utf8');
        const chunks = cutAt(bytes, cutSeeds.map((seed) => seed % (bytes.length + 1)));
        const records = await split(asUint8Array ? chunks.map((c) => new Uint8Array(c)) : chunks, 'Line');
        assert.deepEqual(texts(records), referenceLines(t));
      }),
    );
  });

  const limits: { name: string; chunks: string[]; maxRecordBytes: number; records?: string[] }[] = [
    { name: 'a line exactly at the limit', chunks: ['abcd\nxy\n'], maxRecordBytes: 4, records: ['abcd', 'xy'] },
    { name: 'a CRLF line exactly at the limit, CR excluded', chunks: ['abcd\r\n'], maxRecordBytes: 4, records: ['abcd'] },
    { name: 'a line at the limit across chunks', chunks: ['a', 'bc', 'd\r', '\n'], maxRecordBytes: 4, records: ['abcd'] },
    { name: 'a last line at the limit, no newline', chunks: ['ab', 'cd'], maxRecordBytes: 4, records: ['abcd'] },
    { name: 'a line one byte over', chunks: ['ab\nabcde\n'], maxRecordBytes: 4 },
    { name: 'a line one byte over across chunks', chunks: ['abc', 'de', '\n'], maxRecordBytes: 4 },
    { name: 'a line one byte over, ending in CR across chunks', chunks: ['abcde\r', '\n'], maxRecordBytes: 4 },
    { name: 'a last line one byte over, no newline', chunks: ['abc', 'de'], maxRecordBytes: 4 },
    { name: 'a last line one byte over in one chunk', chunks: ['a\nabcde'], maxRecordBytes: 4 },
  ];
  for (const { name, chunks, maxRecordBytes, records } of limits) {
    it(`${records ? 'accepts' : 'rejects'} ${name}`, async () => {
      const result = split(chunks, 'Line', maxRecordBytes);
      if (records) assert.deepEqual(texts(await result), records);
      else await assertSplitFails(result, 'RECORD_TOO_LARGE', /^line \d is longer than the 4-byte record limit$/);
    });
  }

  it('names the line that is too long', async () => {
    await assertSplitFails(split(['a\n\nb\nlong line\n'], 'Line', 4), 'RECORD_TOO_LARGE', /^line 4 is longer/);
    await assertSplitFails(split(['a\n\nb\nlo', 'ng line\n'], 'Line', 4), 'RECORD_TOO_LARGE', /^line 4 is longer/);
  });

  it('rejects a 100 MB line under a 1 MiB limit after reading about 1 MiB, and releases the source', async () => {
    const { state, chunks } = hugeSource(100 * MIB, 'x');
    await assertSplitFails(collect(splitRecords(chunks, 'Line', MIB)), 'RECORD_TOO_LARGE');
    assert.ok(state.pulledBytes <= MIB + 64 * KIB, `read ${state.pulledBytes} bytes`);
    assert.ok(state.released);
  });

  it('skips a blank line longer than the limit without rejecting it', async () => {
    const blank = ' '.repeat(10 * KIB);
    const bytes = Buffer.from(`a\n${blank}\r\n${blank}\nb`);
    for (const chunkBytes of [1000, 4 * KIB, bytes.length]) {
      const cuts = Array.from({ length: Math.floor(bytes.length / chunkBytes) }, (_, i) => (i + 1) * chunkBytes);
      assert.deepEqual(texts(await split(cutAt(bytes, cuts), 'Line', 100)), ['a', 'b'], `${chunkBytes}-byte chunks`);
    }
  });

  it('rejects a long line that looked blank until past the limit', async () => {
    await assertSplitFails(split([' '.repeat(200), '   x\n'], 'Line', 100), 'RECORD_TOO_LARGE');
    await assertSplitFails(split([' '.repeat(200), '   x'], 'Line', 100), 'RECORD_TOO_LARGE');
    await assertSplitFails(split([`${' '.repeat(200)}x\n`], 'Line', 100), 'RECORD_TOO_LARGE');
  });

  it('yields a line inside a chunk as a view of it, and a line across chunks as a copy', async () => {
    // Buffer.alloc, not Buffer.from: small Buffer.from results share one pooled ArrayBuffer.
    const chunkOf = (text: string) => {
      const chunk = Buffer.alloc(text.length);
      chunk.write(text);
      return chunk;
    };
    const first = chunkOf('a,1\nb,');
    const second = chunkOf('2\nc,3\n');
    const [a, b, c] = await split([first, second], 'Line');
    assert.deepEqual(texts([a, b, c].filter((r) => r !== undefined)), ['a,1', 'b,2', 'c,3']);
    assert.equal(a?.buffer, first.buffer);
    assert.equal(c?.buffer, second.buffer);
    assert.notEqual(b?.buffer, first.buffer);
    assert.notEqual(b?.buffer, second.buffer);
  });

  it('reads a Node stream', async () => {
    const stream = Readable.from([Buffer.from('a,1\r\nb'), Buffer.from(',2\r\n')]);
    assert.deepEqual(texts(await collect(splitRecords(stream, 'Line', 100))), ['a,1', 'b,2']);
  });
});

describe('splitRecords, RecordIO', () => {
  const encodings: { name: string; payloads: string[]; hex: string }[] = [
    { name: 'a payload padded to 4 bytes', payloads: ['abc'], hex: '0a23d7ce 03000000 616263 00' },
    { name: 'an aligned payload, unpadded', payloads: ['abcd'], hex: '0a23d7ce 04000000 61626364' },
    { name: 'an empty payload', payloads: [''], hex: '0a23d7ce 00000000' },
    { name: 'two records', payloads: ['a', 'bcdef'], hex: '0a23d7ce 01000000 61 000000 0a23d7ce 05000000 6263646566 000000' },
  ];
  for (const { name, payloads, hex } of encodings) {
    it(`encodes ${name}`, () => {
      assert.equal(encodeRecordIO(payloads.map((p) => Buffer.from(p))).toString('hex'), hex.replaceAll(' ', ''));
    });
  }

  it('pads every length to a 4-byte boundary with zeros', async () => {
    for (let length = 0; length <= 9; length += 1) {
      const payload = Buffer.alloc(length, 0xff);
      const encoded = encodeRecordIO([payload]);
      assert.equal(encoded.length, 8 + Math.ceil(length / 4) * 4, `length ${length}`);
      assert.ok(encoded.subarray(8 + length).every((byte) => byte === 0));
      assert.deepEqual(await split([encoded], 'RecordIO'), [payload]);
    }
  });

  const multipart: { name: string; payload: Buffer; frames: Buffer[] }[] = [
    {
      name: 'a payload holding the magic at an aligned offset',
      payload: Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('ef')]),
      frames: [frame(1, 'abcd'), frame(3, 'ef')],
    },
    { name: 'a payload starting with the magic', payload: Buffer.concat([MAGIC, Buffer.from('xy')]), frames: [frame(1, ''), frame(3, 'xy')] },
    { name: 'a payload that is two magics', payload: Buffer.concat([MAGIC, MAGIC]), frames: [frame(1, ''), frame(2, ''), frame(3, '')] },
    {
      name: 'three parts',
      payload: Buffer.concat([Buffer.from('1234'), MAGIC, Buffer.from('5678'), MAGIC, Buffer.from('9')]),
      frames: [frame(1, '1234'), frame(2, '5678'), frame(3, '9')],
    },
    { name: 'an unaligned magic, left whole', payload: Buffer.concat([Buffer.from('a'), MAGIC, Buffer.from('bcd')]), frames: [frame(0, Buffer.concat([Buffer.from('a'), MAGIC, Buffer.from('bcd')]))] },
  ];
  for (const { name, payload, frames } of multipart) {
    it(`cuts and reassembles ${name} as dmlc-core does`, async () => {
      const encoded = encodeRecordIO([payload]);
      assert.deepEqual(encoded, Buffer.concat(frames));
      const stream = Buffer.concat([frame(0, 'before'), ...frames, frame(0, 'after')]);
      for (let cut = 0; cut <= stream.length; cut += 1) {
        assert.deepEqual(texts(await split(cutAt(stream, [cut]), 'RecordIO')), ['before', payload.toString('utf8'), 'after'], `cut at ${cut}`);
      }
    });
  }

  it('round-trips random payloads, magic included, at random chunkings', async () => {
    const piece = fc.oneof(fc.uint8Array({ maxLength: 9 }).map((a) => Buffer.from(a)), fc.constant(MAGIC));
    const payload = fc.array(piece, { maxLength: 5 }).map((pieces) => Buffer.concat(pieces));
    await fc.assert(
      fc.asyncProperty(fc.array(payload, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), async (payloads, cutSeeds) => {
        const encoded = encodeRecordIO(payloads);
        assert.equal(encoded.length % 4, 0);
        const chunks = cutAt(encoded, cutSeeds.map((seed) => seed % (encoded.length + 1)));
        assert.deepEqual(await split(chunks, 'RecordIO'), payloads);
      }),
    );
  });

  const corrupt: { name: string; stream: Buffer; message: RegExp }[] = [
    { name: 'bad magic', stream: frame(0, 'abcd', 0xdeadbeef), message: /record 1 \(frame at byte 0\): bad magic 0xdeadbeef/ },
    { name: 'bad magic in the second frame', stream: Buffer.concat([frame(0, 'abc'), frame(0, 'x', 0x0a23d7ce)]), message: /record 2 \(frame at byte 12\): bad magic/ },
    { name: 'plain text', stream: Buffer.from('1,2,3\n4,5,6\n'), message: /bad magic/ },
    { name: 'a truncated header', stream: frame(0, 'abcd').subarray(0, 6), message: /ends inside a frame \(header\)/ },
    { name: 'a truncated payload', stream: frame(0, 'abcdefgh').subarray(0, 12), message: /ends inside a frame \(payload\)/ },
    { name: 'truncated padding', stream: frame(0, 'abcde').subarray(0, 14), message: /ends inside a frame \(padding\)/ },
    { name: 'a middle part first', stream: frame(2, 'abcd'), message: /cflag 2 without a first part/ },
    { name: 'a last part first', stream: Buffer.concat([frame(0, 'a'), frame(3, 'abcd')]), message: /record 2 .*cflag 3 without a first part/ },
    { name: 'a whole record inside a multi-part one', stream: Buffer.concat([frame(1, 'abcd'), frame(0, 'x')]), message: /cflag 0 inside a multi-part record/ },
    { name: 'a first part inside a multi-part one', stream: Buffer.concat([frame(1, 'abcd'), frame(1, 'x')]), message: /cflag 1 inside a multi-part record/ },
    { name: 'an end inside a multi-part record', stream: Buffer.concat([frame(1, 'abcd'), frame(2, 'efgh')]), message: /ends inside a multi-part record/ },
    { name: 'an unknown cflag', stream: frame(5, 'abcd'), message: /unknown cflag 5/ },
  ];
  for (const { name, stream, message } of corrupt) {
    it(`rejects ${name} with RECORDIO_CORRUPT, whatever the chunking`, async () => {
      for (let cut = 0; cut <= stream.length; cut += 1) {
        await assertSplitFails(split(cutAt(stream, [cut]), 'RecordIO'), 'RECORDIO_CORRUPT', message);
      }
    });
  }

  it('yields the records before a corrupt frame', async () => {
    const records: string[] = [];
    const stream = Buffer.concat([frame(0, 'ok'), frame(0, 'bad', 1)]);
    await assertSplitFails(
      (async () => {
        for await (const record of splitRecords(fromChunks([stream]), 'RecordIO', Number.POSITIVE_INFINITY)) records.push(record.toString());
      })(),
      'RECORDIO_CORRUPT',
    );
    assert.deepEqual(records, ['ok']);
  });

  const limits: { name: string; stream: Buffer; maxRecordBytes: number; ok: boolean }[] = [
    { name: 'a record at the limit', stream: frame(0, 'abcdefghij'), maxRecordBytes: 10, ok: true },
    { name: 'a record one byte over', stream: frame(0, 'abcdefghij'), maxRecordBytes: 9, ok: false },
    { name: 'a multi-part record at the limit, magic counted', stream: encodeRecordIO([Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('efgh')])]), maxRecordBytes: 12, ok: true },
    { name: 'a multi-part record one byte over', stream: encodeRecordIO([Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('efgh')])]), maxRecordBytes: 11, ok: false },
  ];
  for (const { name, stream, maxRecordBytes, ok } of limits) {
    it(`${ok ? 'accepts' : 'rejects'} ${name}`, async () => {
      const result = split([stream], 'RecordIO', maxRecordBytes);
      if (ok) assert.equal((await result).length, 1);
      else await assertSplitFails(result, 'RECORD_TOO_LARGE', /RecordIO record 1 is longer than the/);
    });
  }

  it('rejects a 100 MB record from its header alone, reading one chunk', async () => {
    const header = frame(0, '').subarray(0, 8);
    header.writeUInt32LE(100 * MIB, 4);
    const { state, chunks } = hugeSource(100 * MIB, (index) => (index === 0 ? Buffer.concat([header, Buffer.alloc(64 * KIB - 8)]) : Buffer.alloc(64 * KIB)));
    await assertSplitFails(collect(splitRecords(chunks, 'RecordIO', MIB)), 'RECORD_TOO_LARGE');
    assert.equal(state.pulledBytes, 64 * KIB);
    assert.ok(state.released);
  });
});

describe('splitRecords, None', () => {
  it('yields the whole object as one record, across chunks', async () => {
    const records = await split(['a,1\n', Buffer.from('b,2\n'), new TextEncoder().encode('\n\nc')], 'None');
    assert.deepEqual(texts(records), ['a,1\nb,2\n\n\nc']);
  });

  it('yields nothing for an empty object', async () => {
    assert.deepEqual(await split([], 'None'), []);
    assert.deepEqual(await split(['', Buffer.alloc(0)], 'None'), []);
  });

  it('accepts an object at the limit and rejects one a byte over with OBJECT_TOO_LARGE', async () => {
    assert.deepEqual(texts(await split(['ab', 'cd'], 'None', 4)), ['abcd']);
    await assertSplitFails(split(['ab', 'cd', 'e'], 'None', 4), 'OBJECT_TOO_LARGE', /longer than the 4-byte payload limit/);
  });

  it('rejects a 100 MB object under a 1 MiB limit after reading about 1 MiB', async () => {
    const { state, chunks } = hugeSource(100 * MIB, 'x');
    await assertSplitFails(collect(splitRecords(chunks, 'None', MIB)), 'OBJECT_TOO_LARGE');
    assert.ok(state.pulledBytes <= MIB + 64 * KIB, `read ${state.pulledBytes} bytes`);
    assert.ok(state.released);
  });
});

describe('splitRecords, arguments', () => {
  for (const maxRecordBytes of [0, -1, 1.5, Number.NaN]) {
    it(`refuses maxRecordBytes ${maxRecordBytes} at once`, () => {
      assert.throws(() => splitRecords(fromChunks([]), 'Line', maxRecordBytes), RangeError);
    });
  }
});

const batch = (records: readonly string[], splitType: SplitType, strategy: BatchStrategy, maxPayloadBytes: number) =>
  collect(miniBatches(fromChunks(records.map((r) => Buffer.from(r))), { splitType, strategy, maxPayloadBytes }));

const shape = (batches: readonly MiniBatch[]) => batches.map((b) => ({ body: b.body.toString('utf8'), records: texts(b.records) }));

/** What a batch of these records must be sent as under MultiRecord. */
function expectedBody(records: readonly Buffer[], splitType: SplitType): Buffer {
  return splitType === 'Line' ? Buffer.concat(records.flatMap((r) => [r, Buffer.from('\n')])) : encodeRecordIO(records);
}

describe('miniBatches', () => {
  const cases: { name: string; records: string[]; splitType: SplitType; strategy: BatchStrategy; maxPayloadBytes: number; batches: { body: string; records: string[] }[] }[] = [
    {
      name: 'SingleRecord Line: each record and a newline',
      records: ['a,1', 'b,2'],
      splitType: 'Line',
      strategy: 'SingleRecord',
      maxPayloadBytes: 6 * MIB,
      batches: [{ body: 'a,1\n', records: ['a,1'] }, { body: 'b,2\n', records: ['b,2'] }],
    },
    {
      name: 'SingleRecord RecordIO: the bare payload',
      records: ['abc', 'de'],
      splitType: 'RecordIO',
      strategy: 'SingleRecord',
      maxPayloadBytes: 3,
      batches: [{ body: 'abc', records: ['abc'] }, { body: 'de', records: ['de'] }],
    },
    {
      name: 'SingleRecord None: the object',
      records: ['a\nb\n'],
      splitType: 'None',
      strategy: 'SingleRecord',
      maxPayloadBytes: 4,
      batches: [{ body: 'a\nb\n', records: ['a\nb\n'] }],
    },
    {
      name: 'MultiRecord None: still one object per request',
      records: ['x', 'y'],
      splitType: 'None',
      strategy: 'MultiRecord',
      maxPayloadBytes: 6 * MIB,
      batches: [{ body: 'x', records: ['x'] }, { body: 'y', records: ['y'] }],
    },
    {
      name: 'MultiRecord Line: packed to the limit, newline counted',
      records: ['aa', 'bbb', 'c', 'dddddd'],
      splitType: 'Line',
      strategy: 'MultiRecord',
      maxPayloadBytes: 7,
      batches: [
        { body: 'aa\nbbb\n', records: ['aa', 'bbb'] },
        { body: 'c\n', records: ['c'] },
        { body: 'dddddd\n', records: ['dddddd'] },
      ],
    },
    {
      name: 'MultiRecord Line with no payload limit',
      records: ['1', '2', '3'],
      splitType: 'Line',
      strategy: 'MultiRecord',
      maxPayloadBytes: Number.POSITIVE_INFINITY,
      batches: [{ body: '1\n2\n3\n', records: ['1', '2', '3'] }],
    },
    { name: 'no records', records: [], splitType: 'Line', strategy: 'MultiRecord', maxPayloadBytes: 10, batches: [] },
  ];
  for (const { name, records, splitType, strategy, maxPayloadBytes, batches } of cases) {
    it(name, async () => assert.deepEqual(shape(await batch(records, splitType, strategy, maxPayloadBytes)), batches));
  }

  it('gives back the records it was given, not copies', async () => {
    const records = [Buffer.from('a'), Buffer.from('b')];
    for (const strategy of ['SingleRecord', 'MultiRecord'] as const) {
      const batches = await collect(miniBatches(fromChunks(records), { splitType: 'Line', strategy, maxPayloadBytes: 100 }));
      const given = batches.flatMap((b) => b.records);
      given.forEach((record, i) => assert.equal(record, records[i]));
    }
  });

  it('MultiRecord RecordIO: re-frames each batch as SageMaker sends it', async () => {
    const batches = await batch(['abc', 'de', 'f'], 'RecordIO', 'MultiRecord', 24);
    assert.deepEqual(batches.map((b) => texts(b.records)), [['abc', 'de'], ['f']]);
    assert.deepEqual(batches[0]?.body, encodeRecordIO([Buffer.from('abc'), Buffer.from('de')]));
    assert.deepEqual(batches[1]?.body, encodeRecordIO([Buffer.from('f')]));
  });

  const tooLarge: { name: string; records: string[]; splitType: SplitType; strategy: BatchStrategy; maxPayloadBytes: number }[] = [
    { name: 'a Line record as long as the limit (its newline is over)', records: ['ab', 'cdef'], splitType: 'Line', strategy: 'MultiRecord', maxPayloadBytes: 4 },
    { name: 'the same under SingleRecord', records: ['cdef'], splitType: 'Line', strategy: 'SingleRecord', maxPayloadBytes: 4 },
    { name: 'a RecordIO record whose frame is over', records: ['abcd'], splitType: 'RecordIO', strategy: 'MultiRecord', maxPayloadBytes: 11 },
    { name: 'a bare RecordIO payload over', records: ['abcd'], splitType: 'RecordIO', strategy: 'SingleRecord', maxPayloadBytes: 3 },
    { name: 'a None object over', records: ['abcd'], splitType: 'None', strategy: 'SingleRecord', maxPayloadBytes: 3 },
  ];
  for (const { name, records, splitType, strategy, maxPayloadBytes } of tooLarge) {
    it(`rejects ${name} with RECORD_TOO_LARGE`, async () => {
      await assertSplitFails(batch(records, splitType, strategy, maxPayloadBytes), 'RECORD_TOO_LARGE', new RegExp(`^record ${records.length} needs a \\d+-byte request body, over the ${maxPayloadBytes}-byte payload limit$`));
    });
  }

  it('accepts a record whose body is exactly the limit', async () => {
    assert.deepEqual(shape(await batch(['abc'], 'Line', 'SingleRecord', 4)), [{ body: 'abc\n', records: ['abc'] }]);
    assert.equal((await batch(['abcd'], 'RecordIO', 'MultiRecord', 12))[0]?.body.length, 12);
  });

  it('sends a full batch before pulling the next record', async () => {
    for (const options of [{ maxPayloadBytes: 8 }]) {
      async function* records(): AsyncGenerator<Buffer> {
        yield Buffer.from('abc');
        yield Buffer.from('def');
        throw new Error('pulled a record too many');
      }
      const batches = miniBatches(records(), { splitType: 'Line', strategy: 'MultiRecord', ...options });
      const first = await batches.next();
      assert.equal(first.done, false);
      assert.equal(first.value?.body.toString(), 'abc\ndef\n');
      await batches.return(undefined);
    }
  });

  for (const splitType of ['Line', 'RecordIO'] as const) {
    it(`MultiRecord ${splitType}: packs greedily, in order, within both limits (property)`, async () => {
      const record =
        splitType === 'Line'
          ? fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\n')).map((s) => Buffer.from(`x${s}`))
          : fc.array(fc.oneof(fc.uint8Array({ maxLength: 9 }).map((a) => Buffer.from(a)), fc.constant(MAGIC)), { maxLength: 4 }).map((p) => Buffer.concat(p));
      await fc.assert(
        fc.asyncProperty(
          fc.array(record, { maxLength: 30 }),
          fc.nat({ max: 200 }),
          async (records, slackBytes) => {
            const framedBytes = (r: Buffer) => expectedBody([r], splitType).length;
            const maxPayloadBytes = Math.max(1, ...records.map(framedBytes)) + slackBytes;
            const batches = await collect(
              miniBatches(fromChunks(records), { splitType, strategy: 'MultiRecord', maxPayloadBytes }),
            );
            assert.deepEqual(batches.flatMap((b) => b.records), records);
            batches.forEach((b, i) => {
              assert.ok(b.records.length > 0);
              assert.ok(b.body.length <= maxPayloadBytes, `batch ${i}: ${b.body.length} > ${maxPayloadBytes}`);
              assert.deepEqual(b.body, expectedBody(b.records, splitType));
              const next = batches[i + 1]?.records[0];
              if (next !== undefined) {
                const full = b.body.length + framedBytes(next) > maxPayloadBytes;
                assert.ok(full, `batch ${i} had room for the next record`);
              }
            });
          },
        ),
      );
    });
  }

  const badOptions: { name: string; maxPayloadBytes: number }[] = [
    { name: 'maxPayloadBytes 0 (MaxPayloadInMB=0 is Infinity)', maxPayloadBytes: 0 },
    { name: 'a negative maxPayloadBytes', maxPayloadBytes: -1 },
    { name: 'a fractional maxPayloadBytes', maxPayloadBytes: 1.5 },
  ];
  for (const { name, maxPayloadBytes } of badOptions) {
    it(`refuses ${name} at once`, () => {
      assert.throws(() => miniBatches(fromChunks([]), { splitType: 'Line', strategy: 'MultiRecord', maxPayloadBytes }), RangeError);
    });
  }
});

describe('splitRecords into miniBatches', () => {
  it('sends every CSV line once, in order, whatever the chunking (property)', async () => {
    const line = fc.array(fc.constantFrom('1', '2', '.', ',', '-', ' '), { minLength: 0, maxLength: 15 }).map((cs) => cs.join(''));
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 40 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 17, max: 80 }), async (lines, chunkBytes, maxPayloadBytes) => {
        const bytes = Buffer.from(lines.join('\r\n'));
        const cuts = Array.from({ length: Math.floor(bytes.length / chunkBytes) }, (_, i) => (i + 1) * chunkBytes);
        const records = splitRecords(fromChunks(cutAt(bytes, cuts)), 'Line', maxPayloadBytes - 1);
        const batches = await collect(miniBatches(records, { splitType: 'Line', strategy: 'MultiRecord', maxPayloadBytes }));
        const expected = referenceLines(bytes.toString()).map((l) => `${l}\n`).join('');
        assert.equal(Buffer.concat(batches.map((b) => b.body)).toString(), expected);
      }),
    );
  });
});
