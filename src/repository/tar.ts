/**
 * A streaming reader for model archives (`.tar.gz`), written here rather than taken from npm
 * because what it must refuse matters more than what it can read: links, devices, `..`,
 * absolute paths, and archives or gzip bombs larger than their bound. It reads ustar, pax
 * (`path`, `size`) and GNU (long names, base-256 sizes) headers: what GNU tar, bsdtar, Python's
 * tarfile and node-tar write. Entries are written as they arrive, so an archive never sits in
 * memory; a refused archive may leave some of its entries behind (see unpackTarGz).
 */
import { constants } from 'node:fs';
import { chmod, mkdir, open } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { decodeContent } from '../codecs/content-encoding.js';
import { InferdError } from '../errors.js';
import { relativeSegments, sourceInvalid } from './target-model.js';

export interface UnpackLimits {
  /** Bound on the decoded (gunzipped) archive, headers and padding included. */
  readonly maxBytes: number;
  /** Bound on the files and directories in the archive. */
  readonly maxEntries: number;
}

const BLOCK_BYTES = 512;
/** Pax headers and GNU long names are held whole; real ones are a few hundred bytes. */
const MAX_META_BYTES = 1024 * 1024;
const FILE_MODE = 0o644;
const DIRECTORY_MODE = 0o755;
/** Never follow a link at the final component: the archive cannot make links, nor may anyone else. */
const CREATE_FILE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
const DIRECTORY_TYPE = '5';
/** Regular files (`0`, and `\0` from pre-POSIX writers) and directories: all an archive may hold. */
const ENTRY_TYPES = new Set(['0', '\0', DIRECTORY_TYPE]);
/** What the file system says when two entries disagree (a file where a directory should be). */
const CONFLICT_CODES = new Set(['EEXIST', 'ENOTDIR', 'EISDIR', 'ELOOP']);

/**
 * Unpacks the gzipped tar `source` into `destinationDir` (created if absent). Refuses the whole
 * archive with INFERD_ERR_MODEL_SOURCE_INVALID (a corrupt gzip stream, a bad header checksum, a
 * truncated archive, a link, device or FIFO, a path that is absolute, has `..` or leads outside,
 * more than `limits`); entries already written are then left in place, so callers unpack into
 * a fresh directory and remove it on failure. Modes in the archive are ignored: files are 0644,
 * directories 0755. `source` is not destroyed: its owner decides.
 */
export async function unpackTarGz(source: Readable, destinationDir: string, limits: UnpackLimits): Promise<void> {
  await mkdir(destinationDir, { recursive: true, mode: DIRECTORY_MODE });
  const reader = new BlockReader(decodeContent(source, 'gzip'), limits.maxBytes);
  try {
    await unpackEntries(reader, destinationDir, limits.maxEntries);
    // Read to the end, so that gzip checks its CRC and length: trailing corruption is caught.
    await reader.drain();
  } catch (error) {
    if (error instanceof InferdError && error.code === 'INFERD_ERR_BODY_MALFORMED') {
      throw sourceInvalid(`the archive is not valid gzip: ${error.message}`, error);
    }
    throw error;
  } finally {
    await reader.close();
  }
}

/** What pax and GNU long-name headers say about the entry that follows them. */
interface Overrides {
  path?: string;
  size?: number;
}

async function unpackEntries(reader: BlockReader, destinationDir: string, maxEntries: number): Promise<void> {
  let overrides: Overrides = {};
  let entries = 0;
  // Every turn reads a header block at least, so the decoded bound ends the loop on any archive.
  for (;;) {
    const block = await reader.readBlock();
    if (block === undefined) throw sourceInvalid('the archive is truncated: it ends without its end-of-archive block');
    if (isZeroBlock(block)) return;
    const header = parseHeader(block);
    const isEntry = ENTRY_TYPES.has(header.type);
    // A pax `size` describes the entry that follows, not the next pax or long-name header.
    const size = isEntry ? (overrides.size ?? header.size) : header.size;
    const padding = (BLOCK_BYTES - (size % BLOCK_BYTES)) % BLOCK_BYTES;
    switch (header.type) {
      case 'x':
        overrides = { ...overrides, ...parsePax(await reader.readMeta(size, 'pax header')) };
        break;
      case 'L':
        overrides = { ...overrides, path: cString(await reader.readMeta(size, 'GNU long name')) };
        break;
      case 'g': // Global pax defaults (comments, times, owners): nothing we use.
      case 'K': // GNU long link name: the link entry that follows it is refused anyway.
        await reader.skip(size);
        break;
      case '0':
      case '\0':
      case DIRECTORY_TYPE: {
        entries += 1;
        if (entries > maxEntries) throw sourceInvalid(`the archive holds more than ${maxEntries} entries`);
        const path = overrides.path ?? header.path;
        if (header.type === DIRECTORY_TYPE) {
          await makeDirectory(destinationDir, path);
          await reader.skip(size);
        } else {
          await writeFile(reader, destinationDir, path, size);
        }
        overrides = {};
        break;
      }
      default:
        throw sourceInvalid(`archive entry ${JSON.stringify(overrides.path ?? header.path)} is ${describeType(header.type)}`);
    }
    await reader.skip(padding);
  }
}

function describeType(type: string): string {
  if (type === '1') return 'a hard link; links are refused';
  if (type === '2') return 'a symbolic link; links are refused';
  if (type === '3' || type === '4') return 'a device; only files and directories are allowed';
  if (type === '6') return 'a FIFO; only files and directories are allowed';
  return `of unsupported type ${JSON.stringify(type)}; only files and directories are allowed`;
}

interface Header {
  readonly path: string;
  readonly size: number;
  readonly type: string;
}

/** Field offsets of a ustar header block (POSIX.1-1988, with the GNU and POSIX.1-2001 magic). */
function parseHeader(block: Buffer): Header {
  verifyChecksum(block);
  const name = cString(block.subarray(0, 100));
  // Only POSIX ustar has a prefix field; GNU tar (magic `ustar  `) keeps times in those bytes.
  const isPosixUstar = block.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = isPosixUstar ? cString(block.subarray(345, 500)) : '';
  return {
    path: prefix === '' ? name : `${prefix}/${name}`,
    size: parseSize(block.subarray(124, 136), name),
    type: String.fromCharCode(block[156] ?? 0),
  };
}

/** The checksum is the byte sum of the header with its own field read as spaces. */
function verifyChecksum(block: Buffer): void {
  const stored = parseOctal(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < BLOCK_BYTES; index += 1) {
    const byte = index >= 148 && index < 156 ? 0x20 : (block[index] ?? 0);
    unsigned += byte;
    signed += byte > 0x7f ? byte - 0x100 : byte;
  }
  // Some old writers summed signed chars; tar readers accept either.
  if (stored !== unsigned && stored !== signed) throw sourceInvalid('the archive is corrupt: a header checksum does not match');
}

/** Octal ASCII, or GNU base-256 (high bit of the first byte set) for sizes of 8 GiB and more. */
function parseSize(field: Buffer, name: string): number {
  const first = field[0] ?? 0;
  if ((first & 0x80) === 0) return parseOctal(field);
  if (first === 0xff) throw sourceInvalid(`archive entry ${JSON.stringify(name)} has a negative size`);
  let size = first & 0x7f;
  for (const byte of field.subarray(1)) size = size * 256 + byte;
  if (!Number.isSafeInteger(size)) throw sourceInvalid(`archive entry ${JSON.stringify(name)} has an impossible size`);
  return size;
}

function parseOctal(field: Buffer): number {
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]*$/.test(text)) throw sourceInvalid('the archive is corrupt: a header number is not octal');
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/** A NUL-terminated (or field-filling) string. */
function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

function isZeroBlock(block: Buffer): boolean {
  return block.every((byte) => byte === 0);
}

/**
 * Pax records: `LENGTH key=value\n`, LENGTH counting the whole record. The loop advances by
 * LENGTH, which comes from the archive: a record shorter than its own `LENGTH ` prefix and
 * `\n` (a length of 0, say) would never advance, and freeze the event loop on one archive.
 */
function parsePax(content: Buffer): Overrides {
  const malformed = () => sourceInvalid('the archive is corrupt: a pax header record is malformed');
  const overrides: Overrides = {};
  let offset = 0;
  while (offset < content.length) {
    const space = content.indexOf(0x20, offset);
    if (space === -1) throw malformed();
    const lengthText = content.toString('latin1', offset, space);
    if (!/^[0-9]+$/.test(lengthText)) throw malformed();
    const length = Number(lengthText);
    const end = offset + length;
    const shortestLength = space + 1 - offset + 1;
    if (length < shortestLength || end > content.length || content[end - 1] !== 0x0a) throw malformed();
    const record = content.toString('utf8', space + 1, end - 1);
    const equals = record.indexOf('=');
    if (equals === -1) throw malformed();
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (key === 'path') overrides.path = value;
    if (key === 'size') {
      if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) throw sourceInvalid(`the archive is corrupt: pax size ${JSON.stringify(value)}`);
      overrides.size = Number(value);
    }
    offset = end;
  }
  return overrides;
}

/**
 * Where an entry goes under `destinationDir`, or undefined for the archive root (`./`, which
 * GNU tar writes first). A directory's name may end with `/`.
 */
function entryDestination(destinationDir: string, path: string, isDirectory: boolean): string | undefined {
  const name = isDirectory && path.endsWith('/') ? path.slice(0, -1) : path;
  const segments = relativeSegments(name === '' ? path : name, 'archive entry');
  if (segments.length === 0) {
    if (isDirectory) return undefined;
    throw sourceInvalid(`archive entry ${JSON.stringify(path)} is a file where the archive root should be`);
  }
  const destination = join(destinationDir, ...segments);
  // relativeSegments already refused `..` and absolute paths; this is the belt to those braces.
  const fromRoot = relative(destinationDir, destination);
  if (fromRoot === '' || fromRoot === '..' || fromRoot.startsWith(`..${sep}`)) {
    throw sourceInvalid(`archive entry ${JSON.stringify(path)} leads outside the model directory`);
  }
  return destination;
}

async function makeDirectory(destinationDir: string, path: string): Promise<void> {
  const destination = entryDestination(destinationDir, path, true);
  if (destination === undefined) return;
  await withConflicts(path, async () => {
    await mkdir(destination, { recursive: true, mode: DIRECTORY_MODE });
    await chmod(destination, DIRECTORY_MODE);
  });
}

async function writeFile(reader: BlockReader, destinationDir: string, path: string, sizeBytes: number): Promise<void> {
  const destination = entryDestination(destinationDir, path, false)!;
  await withConflicts(path, async () => {
    await mkdir(dirname(destination), { recursive: true, mode: DIRECTORY_MODE });
    const handle = await open(destination, CREATE_FILE_FLAGS, FILE_MODE);
    try {
      // An entry named twice is overwritten (the last one wins, as tar does): the mode must be reset.
      await handle.chmod(FILE_MODE);
      for await (const piece of reader.pieces(sizeBytes)) await handle.write(piece);
      // A model is renamed into the cache once unpacked; its files must be on disk by then.
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/** Two entries that disagree (a file, then a directory of the same name) make an invalid archive. */
async function withConflicts(path: string, operation: () => Promise<void>): Promise<void> {
  try {
    await operation();
  } catch (error) {
    if (CONFLICT_CODES.has((error as NodeJS.ErrnoException).code ?? '')) {
      throw sourceInvalid(`archive entry ${JSON.stringify(path)} conflicts with an earlier entry`, error);
    }
    throw error;
  }
}

/**
 * The decoded archive as blocks and byte ranges. Every decoded chunk is counted as it arrives,
 * and the archive refused the moment the count passes `maxBytes`: a gzip bomb is stopped after
 * one chunk (16 KiB) too many is inflated, and none of it is written.
 */
class BlockReader {
  readonly #chunks: AsyncIterator<Buffer>;
  readonly #maxBytes: number;
  #pending: Buffer = Buffer.alloc(0);
  #decodedBytes = 0;

  constructor(chunks: AsyncIterable<Buffer>, maxBytes: number) {
    this.#chunks = chunks[Symbol.asyncIterator]();
    this.#maxBytes = maxBytes;
  }

  /** One 512-byte block; undefined at the end of the stream; a partial block is a truncation. */
  async readBlock(): Promise<Buffer | undefined> {
    if (this.#pending.length === 0 && !(await this.#pull())) return undefined;
    const parts: Buffer[] = [];
    for await (const piece of this.pieces(BLOCK_BYTES)) parts.push(piece);
    return Buffer.concat(parts, BLOCK_BYTES);
  }

  /** The content of a pax or long-name header, which is held whole and so bounded. */
  async readMeta(sizeBytes: number, what: string): Promise<Buffer> {
    if (sizeBytes > MAX_META_BYTES) throw sourceInvalid(`the archive has a ${what} of ${sizeBytes} bytes`);
    const parts: Buffer[] = [];
    for await (const piece of this.pieces(sizeBytes)) parts.push(piece);
    return Buffer.concat(parts, sizeBytes);
  }

  async skip(sizeBytes: number): Promise<void> {
    for await (const _piece of this.pieces(sizeBytes));
  }

  /**
   * The next `sizeBytes` bytes in pieces as they were decoded; the stream ending first is a
   * truncation. However large a size the archive claims, every turn of the loop consumes decoded
   * bytes, which are bounded by `maxBytes`.
   */
  async *pieces(sizeBytes: number): AsyncGenerator<Buffer> {
    let remaining = sizeBytes;
    while (remaining > 0) {
      if (this.#pending.length === 0 && !(await this.#pull())) {
        throw sourceInvalid('the archive is truncated: it ends in the middle of an entry');
      }
      const piece = this.#pending.subarray(0, remaining);
      this.#pending = this.#pending.subarray(piece.length);
      remaining -= piece.length;
      yield piece;
    }
  }

  /** Reads (and counts) what follows the end-of-archive block: tar pads to 10 KiB records. */
  async drain(): Promise<void> {
    this.#pending = Buffer.alloc(0);
    while (await this.#pull());
  }

  /** Stops decoding (the decoder is destroyed, the source unpiped). */
  async close(): Promise<void> {
    await this.#chunks.return?.();
  }

  async #pull(): Promise<boolean> {
    const next = await this.#chunks.next();
    if (next.done === true) return false;
    this.#decodedBytes += next.value.length;
    if (this.#decodedBytes > this.#maxBytes) {
      throw sourceInvalid(`the archive unpacks to more than its bound of ${this.#maxBytes} bytes`);
    }
    this.#pending = next.value;
    return true;
  }
}
