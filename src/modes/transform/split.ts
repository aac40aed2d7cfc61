/**
 * SageMaker Batch Transform input handling: `SplitType` cuts an S3 object into records and
 * `BatchStrategy` / `MaxPayloadInMB` pack those records into the request bodies sent to
 * `/invocations` (contract §3.2). Both stages stream: memory stays near one record plus one
 * chunk for splitting, and one mini-batch (body and records) for packing, whatever the size of
 * the object.
 */

export type SplitType = 'None' | 'Line' | 'RecordIO';
export type BatchStrategy = 'SingleRecord' | 'MultiRecord';

/**
 * `RECORD_TOO_LARGE`: a record, or a single record's request body, is over the limit.
 * `OBJECT_TOO_LARGE`: with `SplitType` None, the whole object is over the limit.
 * `RECORDIO_CORRUPT`: bad magic, a torn frame, or multi-part frames out of order.
 * Each fails the object it came from, as in SageMaker; other objects go on.
 */
export type SplitErrorCode = 'RECORD_TOO_LARGE' | 'RECORDIO_CORRUPT' | 'OBJECT_TOO_LARGE';

export class SplitError extends Error {
  readonly code: SplitErrorCode;
  constructor(code: SplitErrorCode, message: string) {
    super(message);
    this.name = 'SplitError';
    this.code = code;
  }
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** dmlc-core `RecordIOWriter::kMagic`, which MXNet and SageMaker's RecordIO splitting use. */
const RECORDIO_MAGIC = 0xced7230a;
const RECORDIO_MAGIC_BYTES = Buffer.from([0x0a, 0x23, 0xd7, 0xce]);
const RECORDIO_HEADER_BYTES = 8;
/** `lrecord` keeps the continuation flag in its top 3 bits and the length in the low 29. */
const RECORDIO_LENGTH_BITS = 29;
const RECORDIO_MAX_PART_BYTES = 2 ** RECORDIO_LENGTH_BITS - 1;
/** Continuation flags: a whole record, or the first, a middle and the last part of a split one. */
const CFLAG_WHOLE = 0;
const CFLAG_FIRST = 1;
const CFLAG_MIDDLE = 2;
const CFLAG_LAST = 3;

const EMPTY = Buffer.alloc(0);
const NO_OFFSETS: readonly number[] = Object.freeze([]);

/**
 * Records of a byte stream, in order, holding at most one record plus one chunk.
 *
 * - `Line`: split on `\n`; one trailing `\r` is removed; blank lines (empty, or only ASCII
 *   whitespace) are not records; the last line needs no newline.
 * - `RecordIO`: MXNet RecordIO frames (uint32 LE magic 0xced7230a, uint32 LE
 *   `cflag << 29 | length`, payload, zero padding to 4 bytes). Yields each payload without
 *   framing or padding. Multi-part records (cflag 1, 2…, 3) are reassembled as dmlc-core does,
 *   with the magic the writer cut out put back between the parts. Padding bytes are not checked,
 *   as dmlc-core does not check them.
 * - `None`: the whole object is one record; an empty object yields none.
 *
 * A record longer than `maxRecordBytes` (None: the object) throws SplitError `RECORD_TOO_LARGE`
 * (None: `OBJECT_TOO_LARGE`) as soon as the bytes read prove it, without reading the rest of it.
 * `Infinity` means no limit (SageMaker's `MaxPayloadInMB=0`). A blank line longer than the limit
 * is skipped, not rejected, since it is not a record.
 *
 * Yielded buffers may be views of a source chunk rather than copies. They stay valid for as long
 * as the consumer holds them, because a source that yields a chunk must not write to it again
 * (Node streams never do). A held view keeps its whole chunk in memory.
 *
 * A limit that is not a positive integer or `Infinity` throws RangeError at the call, not at the
 * first record.
 */
export function splitRecords(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  splitType: SplitType,
  maxRecordBytes: number,
): AsyncGenerator<Buffer> {
  checkLimit('maxRecordBytes', maxRecordBytes);
  // Returned, not delegated to with yield*, which would add a promise hop to every record.
  switch (splitType) {
    case 'Line':
      return splitLines(source, maxRecordBytes);
    case 'RecordIO':
      return splitRecordIO(source, maxRecordBytes);
    case 'None':
      return wholeObject(source, maxRecordBytes);
    default:
      throw new RangeError(`unknown SplitType ${String(splitType satisfies never)}`);
  }
}

export interface MiniBatch {
  /** The request body, as SageMaker would send it. */
  readonly body: Buffer;
  /**
   * Records in it, in order: the buffers `miniBatches` was given, not views of `body`. A view per
   * record would add about a third to the cost of splitting and packing; the price is that a batch held whole
   * keeps its source chunks alive too, about twice its body.
   */
  readonly records: readonly Buffer[];
}

export interface MiniBatchOptions {
  readonly splitType: SplitType;
  readonly strategy: BatchStrategy;
  /** `MaxPayloadInMB` in bytes; `Infinity` for `MaxPayloadInMB=0`. */
  readonly maxPayloadBytes: number;
}

/**
 * Packs records into mini-batches, the request bodies of `/invocations`.
 *
 * - `SingleRecord`: one record per batch. The body is the record followed by `\n` for Line, and
 *   the bare payload for RecordIO (SageMaker strips the framing only here) and None.
 * - `MultiRecord`: as many records as fit in `maxPayloadBytes`, in order, greedily. A Line body
 *   is each record followed by `\n`; a RecordIO body is the records framed again as RecordIO,
 *   byte for byte what `encodeRecordIO` gives. With None every record is its own batch, since
 *   SageMaker needs a split type to pack records.
 *
 * A record whose body alone is over `maxPayloadBytes` throws SplitError `RECORD_TOO_LARGE`: with
 * Line that is a record of `maxPayloadBytes` bytes or more, as the newline counts.
 * A batch is sent as soon as it is full or the records end, never held for the next record.
 * Limits that are not positive integers or `Infinity` throw RangeError at the call.
 */
export function miniBatches(records: AsyncIterable<Buffer>, options: MiniBatchOptions): AsyncGenerator<MiniBatch> {
  const { splitType, strategy, maxPayloadBytes } = options;
  checkLimit('maxPayloadBytes', maxPayloadBytes);
  return strategy === 'SingleRecord' || splitType === 'None'
    ? singleRecordBatches(records, splitType, maxPayloadBytes)
    : multiRecordBatches(records, splitType, maxPayloadBytes);
}

/** Frames payloads as RecordIO exactly as dmlc-core's `RecordIOWriter` does (for tests and MultiRecord bodies). */
export function encodeRecordIO(payloads: readonly Buffer[]): Buffer {
  const offsets = payloads.map((payload) => recordIOMagicOffsets(payload));
  let totalBytes = 0;
  payloads.forEach((payload, i) => {
    totalBytes += recordIOFramedBytes(payload.length, (offsets[i] as readonly number[]).length);
  });
  return buildRecordIOBody(payloads, offsets, totalBytes);
}

async function* singleRecordBatches(records: AsyncIterable<Buffer>, splitType: SplitType, maxPayloadBytes: number): AsyncGenerator<MiniBatch> {
    let recordIndex = 0;
    for await (const record of records) {
      const bodyBytes = splitType === 'Line' ? record.length + 1 : record.length;
      if (bodyBytes > maxPayloadBytes) throw recordOverPayload(recordIndex, bodyBytes, maxPayloadBytes);
      recordIndex += 1;
      yield { body: splitType === 'Line' ? buildLineBody([record], bodyBytes) : record, records: [record] };
    }
}

async function* multiRecordBatches(
  records: AsyncIterable<Buffer>,
  splitType: 'Line' | 'RecordIO',
  maxPayloadBytes: number,
): AsyncGenerator<MiniBatch> {
  const isLine = splitType === 'Line';
  let batch: Buffer[] = [];
  // RecordIO only: where each record's payload holds the magic, which framing must cut out.
  let batchMagicOffsets: (readonly number[])[] = [];
  let batchBytes = 0;
  let recordIndex = 0;
  const build = (): MiniBatch => {
    const body = isLine ? buildLineBody(batch, batchBytes) : buildRecordIOBody(batch, batchMagicOffsets, batchBytes);
    const built = { body, records: batch };
    batch = [];
    batchMagicOffsets = [];
    batchBytes = 0;
    return built;
  };

  for await (const record of records) {
    const magicOffsets = isLine ? NO_OFFSETS : recordIOMagicOffsets(record);
    const framedBytes = isLine ? record.length + 1 : recordIOFramedBytes(record.length, magicOffsets.length);
    if (framedBytes > maxPayloadBytes) throw recordOverPayload(recordIndex, framedBytes, maxPayloadBytes);
    recordIndex += 1;
    if (batch.length > 0 && batchBytes + framedBytes > maxPayloadBytes) yield build();
    batch.push(record);
    if (!isLine) batchMagicOffsets.push(magicOffsets);
    batchBytes += framedBytes;
    // Nothing can join a batch that is exactly full (every framed record is at least 1 byte),
    // so send it now rather than after waiting on the next record.
    if (batchBytes === maxPayloadBytes) yield build();
  }
  if (batch.length > 0) yield build();
}

function checkLimit(name: string, value: number): void {
  if (!(value === Number.POSITIVE_INFINITY || (Number.isSafeInteger(value) && value > 0))) {
    // 0 is refused rather than read as "no limit", so a caller that forgot to map
    // MaxPayloadInMB=0 to Infinity fails loudly instead of rejecting every record.
    throw new RangeError(`${name} must be a positive integer or Infinity, got ${value}`);
  }
}

function asBuffer(chunk: Buffer | Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Whether `bytes[start, end)` is empty or only ASCII whitespace, as `/^\s*$/` for CSV or JSON Lines. */
function isBlank(bytes: Buffer, start: number, end: number): boolean {
  // Real records start with a non-blank byte, so this almost always returns on the first one.
  for (let i = start; i < end; i += 1) {
    const byte = bytes[i] as number;
    if (byte !== 0x20 && (byte < 0x09 || byte > 0x0d)) return false;
  }
  return true;
}

/**
 * The bytes of a record that is not yet complete. A part that is a tail of a chunk is copied so
 * the chunk can be freed; a whole chunk is kept as it is, since all of it is needed.
 */
class PartialRecord {
  private parts: Buffer[] = [];
  bytes = 0;

  add(part: Buffer, chunk: Buffer): void {
    this.parts.push(part.length === chunk.length ? part : Buffer.from(part));
    this.bytes += part.length;
  }

  lastByte(): number | undefined {
    const last = this.parts.at(-1);
    return last === undefined ? undefined : last[last.length - 1];
  }

  isBlank(): boolean {
    return this.parts.every((part) => isBlank(part, 0, part.length));
  }

  /** The whole record with `final` appended (a view of the current chunk, not copied first). */
  take(final: Buffer): Buffer {
    this.parts.push(final);
    const whole = Buffer.concat(this.parts, this.bytes + final.length);
    this.clear();
    return whole;
  }

  clear(): void {
    this.parts = [];
    this.bytes = 0;
  }
}

async function* splitLines(source: AsyncIterable<Buffer | Uint8Array | string>, maxRecordBytes: number): AsyncGenerator<Buffer> {
  const partial = new PartialRecord();
  // Set while reading past a blank line longer than the limit, so it is never buffered.
  let skippingBlankLine = false;
  let linesEnded = 0;
  const tooLarge = () => new SplitError('RECORD_TOO_LARGE', `line ${linesEnded + 1} is longer than the ${maxRecordBytes}-byte record limit`);

  for await (const raw of source) {
    const chunk = asBuffer(raw);
    let start = 0;
    let newline = chunk.indexOf(NEWLINE, start);
    while (newline !== -1) {
      const lineStart = start;
      start = newline + 1;
      if (skippingBlankLine) {
        if (!isBlank(chunk, lineStart, newline)) throw tooLarge();
        skippingBlankLine = false;
      } else if (partial.bytes === 0) {
        // The common case, a line inside one chunk: checked in place and yielded as one view,
        // since a view costs more than everything else done per line.
        const end = newline > lineStart && chunk[newline - 1] === CARRIAGE_RETURN ? newline - 1 : newline;
        if (!isBlank(chunk, lineStart, end)) {
          if (end - lineStart > maxRecordBytes) throw tooLarge();
          yield chunk.subarray(lineStart, end);
        }
      } else {
        const segment = chunk.subarray(lineStart, newline);
        // Refuse before concatenating: the minimum length holds even if the line ends in "\r".
        const lastByte = segment.length > 0 ? segment[segment.length - 1] : partial.lastByte();
        const lineBytes = partial.bytes + segment.length - (lastByte === CARRIAGE_RETURN ? 1 : 0);
        if (lineBytes > maxRecordBytes && !(partial.isBlank() && isBlank(segment, 0, segment.length))) throw tooLarge();
        const line = withoutCarriageReturn(partial.take(segment));
        if (!isBlank(line, 0, line.length)) yield line;
      }
      linesEnded += 1;
      newline = chunk.indexOf(NEWLINE, start);
    }

    if (start === chunk.length) continue;
    if (skippingBlankLine) {
      if (!isBlank(chunk, start, chunk.length)) throw tooLarge();
      continue;
    }
    partial.add(chunk.subarray(start), chunk);
    // The line can still lose a trailing "\r", but no more: past that it is surely too large.
    const shortestBytes = partial.bytes - (partial.lastByte() === CARRIAGE_RETURN ? 1 : 0);
    if (shortestBytes > maxRecordBytes) {
      if (!partial.isBlank()) throw tooLarge();
      partial.clear();
      skippingBlankLine = true;
    }
  }

  if (partial.bytes > 0) {
    const line = withoutCarriageReturn(partial.take(EMPTY));
    if (!isBlank(line, 0, line.length)) {
      if (line.length > maxRecordBytes) throw tooLarge();
      yield line;
    }
  }
}

function withoutCarriageReturn(line: Buffer): Buffer {
  return line[line.length - 1] === CARRIAGE_RETURN ? line.subarray(0, line.length - 1) : line;
}

async function* splitRecordIO(source: AsyncIterable<Buffer | Uint8Array | string>, maxRecordBytes: number): AsyncGenerator<Buffer> {
  const header = Buffer.alloc(RECORDIO_HEADER_BYTES);
  let headerBytes = 0;
  let phase: 'header' | 'payload' | 'padding' = 'header';
  let frameFlag = CFLAG_WHOLE;
  let frameBytes = 0;
  let frameOffsetBytes = 0;
  const framePayload = new PartialRecord();
  let paddingLeftBytes = 0;
  // Parts of a multi-part record read so far, and its length once reassembled.
  let recordParts: Buffer[] = [];
  let recordBytes = 0;
  let recordsEnded = 0;
  let chunkOffsetBytes = 0;
  const corrupt = (offsetBytes: number, why: string) =>
    new SplitError('RECORDIO_CORRUPT', `RecordIO record ${recordsEnded + 1} (frame at byte ${offsetBytes}): ${why}`);

  /** A frame's payload is complete: returns the record it completes, if any. */
  const endFrame = (payload: Buffer): Buffer | undefined => {
    if (frameFlag === CFLAG_WHOLE) {
      recordsEnded += 1;
      return payload;
    }
    // The other parts are copied: they may be views of chunks long gone by the last part.
    if (frameFlag !== CFLAG_FIRST) recordParts.push(RECORDIO_MAGIC_BYTES);
    recordParts.push(frameFlag === CFLAG_LAST ? payload : Buffer.from(payload));
    if (frameFlag !== CFLAG_LAST) return undefined;
    const record = Buffer.concat(recordParts, recordBytes);
    recordParts = [];
    recordBytes = 0;
    recordsEnded += 1;
    return record;
  };

  for await (const raw of source) {
    const chunk = asBuffer(raw);
    let position = 0;
    for (;;) {
      if (phase === 'header') {
        if (position === chunk.length) break;
        let magic: number;
        let lrecord: number;
        if (headerBytes === 0 && chunk.length - position >= RECORDIO_HEADER_BYTES) {
          frameOffsetBytes = chunkOffsetBytes + position;
          magic = chunk.readUInt32LE(position);
          lrecord = chunk.readUInt32LE(position + 4);
          position += RECORDIO_HEADER_BYTES;
        } else {
          if (headerBytes === 0) frameOffsetBytes = chunkOffsetBytes + position;
          const copied = chunk.copy(header, headerBytes, position, Math.min(chunk.length, position + RECORDIO_HEADER_BYTES - headerBytes));
          headerBytes += copied;
          position += copied;
          if (headerBytes < RECORDIO_HEADER_BYTES) break;
          headerBytes = 0;
          magic = header.readUInt32LE(0);
          lrecord = header.readUInt32LE(4);
        }
        if (magic !== RECORDIO_MAGIC) throw corrupt(frameOffsetBytes, `bad magic 0x${magic.toString(16).padStart(8, '0')}`);
        frameFlag = lrecord >>> RECORDIO_LENGTH_BITS;
        frameBytes = lrecord & RECORDIO_MAX_PART_BYTES;
        if (frameFlag > CFLAG_LAST) throw corrupt(frameOffsetBytes, `unknown cflag ${frameFlag}`);
        const continuing = recordParts.length > 0;
        if (continuing !== (frameFlag === CFLAG_MIDDLE || frameFlag === CFLAG_LAST)) {
          const why = continuing ? `cflag ${frameFlag} inside a multi-part record` : `cflag ${frameFlag} without a first part`;
          throw corrupt(frameOffsetBytes, why);
        }
        // Parts after the first get the 4 magic bytes their writer cut out back.
        recordBytes += frameBytes + (continuing ? RECORDIO_MAGIC_BYTES.length : 0);
        if (recordBytes > maxRecordBytes) {
          throw new SplitError('RECORD_TOO_LARGE', `RecordIO record ${recordsEnded + 1} is longer than the ${maxRecordBytes}-byte record limit`);
        }
        if (frameFlag === CFLAG_WHOLE) recordBytes = 0;
        phase = 'payload';
      }

      if (phase === 'payload') {
        let payload: Buffer;
        const available = chunk.length - position;
        if (framePayload.bytes === 0 && available >= frameBytes) {
          payload = chunk.subarray(position, position + frameBytes);
          position += frameBytes;
        } else {
          if (position === chunk.length) break;
          const needed = frameBytes - framePayload.bytes;
          if (available < needed) {
            framePayload.add(chunk.subarray(position), chunk);
            break;
          }
          payload = framePayload.take(chunk.subarray(position, position + needed));
          position += needed;
        }
        paddingLeftBytes = recordIOPaddingBytes(frameBytes);
        phase = paddingLeftBytes > 0 ? 'padding' : 'header';
        const record = endFrame(payload);
        if (record !== undefined) yield record;
      }

      if (phase === 'padding') {
        if (position === chunk.length) break;
        const skipped = Math.min(paddingLeftBytes, chunk.length - position);
        paddingLeftBytes -= skipped;
        position += skipped;
        if (paddingLeftBytes > 0) break;
        phase = 'header';
      }
    }
    chunkOffsetBytes += chunk.length;
  }

  if (phase !== 'header' || headerBytes > 0) throw corrupt(frameOffsetBytes, `the stream ends inside a frame (${phase})`);
  if (recordParts.length > 0) throw corrupt(frameOffsetBytes, 'the stream ends inside a multi-part record');
}

async function* wholeObject(source: AsyncIterable<Buffer | Uint8Array | string>, maxObjectBytes: number): AsyncGenerator<Buffer> {
  const chunks: Buffer[] = [];
  let objectBytes = 0;
  for await (const raw of source) {
    const chunk = asBuffer(raw);
    if (chunk.length === 0) continue;
    objectBytes += chunk.length;
    if (objectBytes > maxObjectBytes) {
      throw new SplitError('OBJECT_TOO_LARGE', `the object is longer than the ${maxObjectBytes}-byte payload limit and SplitType is None`);
    }
    chunks.push(chunk);
  }
  if (objectBytes === 0) return;
  yield chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, objectBytes);
}

function recordOverPayload(recordIndex: number, bodyBytes: number, maxPayloadBytes: number): SplitError {
  return new SplitError(
    'RECORD_TOO_LARGE',
    `record ${recordIndex + 1} needs a ${bodyBytes}-byte request body, over the ${maxPayloadBytes}-byte payload limit`,
  );
}

/** Zero bytes after a RecordIO part of `length` bytes; arithmetic, not bit masks, as bodies may pass 2 GiB. */
function recordIOPaddingBytes(length: number): number {
  return (4 - (length % 4)) % 4;
}

/**
 * Where dmlc-core's writer cuts a payload: each occurrence of the magic at a 4-byte-aligned
 * offset, which it drops and replaces with a frame boundary so a reader resyncing on the magic
 * never mistakes payload for a header.
 */
function recordIOMagicOffsets(payload: Buffer): readonly number[] {
  // Searching for the magic's last byte (a number) is several times faster than for the 4-byte
  // needle, and a stray 0xce is cheap to dismiss.
  const lastByte = RECORDIO_MAGIC_BYTES[3] as number;
  let found = payload.indexOf(lastByte, 3);
  let offsets: number[] | undefined;
  while (found !== -1) {
    const start = found - 3;
    if (start % 4 === 0 && payload.readUInt32LE(start) === RECORDIO_MAGIC) (offsets ??= []).push(start);
    found = payload.indexOf(lastByte, found + 1);
  }
  return offsets ?? NO_OFFSETS;
}

/** Each cut magic (4 bytes) becomes a header (8 bytes); inner parts are aligned, so only the last pads. */
function recordIOFramedBytes(payloadBytes: number, magicCount: number): number {
  return RECORDIO_HEADER_BYTES + payloadBytes + recordIOPaddingBytes(payloadBytes) + magicCount * (RECORDIO_HEADER_BYTES - RECORDIO_MAGIC_BYTES.length);
}

/** One allocation per batch, filled with `set`, which costs half of `copy` per record. */
function buildLineBody(records: readonly Buffer[], bodyBytes: number): Buffer {
  const body = Buffer.allocUnsafe(bodyBytes);
  let offset = 0;
  for (const record of records) {
    body.set(record, offset);
    offset += record.length;
    body[offset] = NEWLINE;
    offset += 1;
  }
  return body;
}

function buildRecordIOBody(payloads: readonly Buffer[], magicOffsets: readonly (readonly number[])[], bodyBytes: number): Buffer {
  const body = Buffer.allocUnsafe(bodyBytes);
  let offset = 0;
  const writePart = (flag: number, part: Buffer) => {
    if (part.length > RECORDIO_MAX_PART_BYTES) throw new RangeError(`a RecordIO part holds at most ${RECORDIO_MAX_PART_BYTES} bytes, got ${part.length}`);
    body.writeUInt32LE(RECORDIO_MAGIC, offset);
    body.writeUInt32LE(((flag << RECORDIO_LENGTH_BITS) | part.length) >>> 0, offset + 4);
    body.set(part, offset + RECORDIO_HEADER_BYTES);
    offset += RECORDIO_HEADER_BYTES + part.length;
  };
  payloads.forEach((payload, i) => {
    const offsets = magicOffsets[i] ?? NO_OFFSETS;
    let partStart = 0;
    offsets.forEach((magicOffset, k) => {
      writePart(k === 0 ? CFLAG_FIRST : CFLAG_MIDDLE, payload.subarray(partStart, magicOffset));
      partStart = magicOffset + RECORDIO_MAGIC_BYTES.length;
    });
    writePart(offsets.length === 0 ? CFLAG_WHOLE : CFLAG_LAST, offsets.length === 0 ? payload : payload.subarray(partStart));
    // allocUnsafe memory is not zeroed, and the padding must be; at most 3 bytes, below what
    // fill() costs to call.
    for (let padding = recordIOPaddingBytes(offset); padding > 0; padding -= 1) {
      body[offset] = 0;
      offset += 1;
    }
  });
  return body;
}
