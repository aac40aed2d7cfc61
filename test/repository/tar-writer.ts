/**
 * A minimal tar writer for crafting archives the system `tar` refuses to make: `..` and
 * absolute names, links, devices, bad checksums. Headers are ustar with correct checksums
 * unless a test asks otherwise; gzip comes from node:zlib (fine in test code).
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGzip, gzipSync } from 'node:zlib';

export interface TarEntry {
  readonly name: string;
  /** Typeflag: `0` file (default), `5` directory, `1` hard link, `2` symlink, `3` device, `x` pax, `L` GNU long name. */
  readonly type?: string;
  readonly content?: Buffer | string;
  readonly linkName?: string;
  /** The POSIX ustar prefix field, joined to the name with `/`. */
  readonly prefix?: string;
  /** Overrides the size in the header (the content written is unchanged). */
  readonly headerSize?: number;
  readonly badChecksum?: boolean;
}

const BLOCK = 512;

/** A real ONNX model (15 KB) from the repository's models/, to give archives real content. */
export const MLP_MODEL = fileURLToPath(new URL('../../../models/churn-mlp/model.onnx', import.meta.url));

export function tarHeader(entry: TarEntry, sizeBytes: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(entry.name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write('0001750\0', 108, 'latin1');
  header.write('0001750\0', 116, 'latin1');
  header.write(`${sizeBytes.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 'latin1');
  header.write(entry.type ?? '0', 156, 'latin1');
  header.write(entry.linkName ?? '', 157, 100, 'utf8');
  header.write('ustar\0' + '00', 257, 'latin1');
  header.write(entry.prefix ?? '', 345, 155, 'utf8');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  if (entry.badChecksum === true) sum += 1;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** A tar archive of `entries`, ended by two zero blocks unless `endBlocks` says otherwise. */
export function tarArchive(entries: readonly TarEntry[], endBlocks = 2): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = Buffer.from(entry.content ?? '');
    parts.push(tarHeader(entry, entry.headerSize ?? content.length), content, Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(endBlocks * BLOCK));
  return Buffer.concat(parts);
}

export function tarGz(entries: readonly TarEntry[]): Buffer {
  return gzipSync(tarArchive(entries));
}

/** Pax extended-header records: `LENGTH key=value\n`, LENGTH counting itself. */
export function paxRecords(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([key, value]) => {
      const body = ` ${key}=${value}\n`;
      let length = Buffer.byteLength(body) + 1;
      while (String(length).length + Buffer.byteLength(body) !== length) length += 1;
      return `${length}${body}`;
    })
    .join('');
}

/** A gzipped tar holding one file of `sizeBytes` zeros, compressed as a stream (never whole in memory). */
export async function zeroBombTarGz(sizeBytes: number): Promise<Buffer> {
  const CHUNK = 1024 * 1024;
  function* archive(): Generator<Buffer> {
    yield tarHeader({ name: 'zeros.bin' }, sizeBytes);
    const zeros = Buffer.alloc(CHUNK);
    for (let left = sizeBytes; left > 0; left -= CHUNK) yield left >= CHUNK ? zeros : zeros.subarray(0, left);
    yield Buffer.alloc(2 * BLOCK);
  }
  const gzip = Readable.from(archive()).pipe(createGzip({ level: 9 }));
  return Buffer.concat(await gzip.toArray());
}

/** Runs the system `tar`. */
export function systemTar(args: readonly string[]): void {
  execFileSync('tar', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Every file under `dir` as `relative path → content`, and directories as `path/ → ''`. */
export async function treeOf(dir: string): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const name = relative(dir, path);
    tree[entry.isDirectory() ? `${name}/` : name] = entry.isDirectory() ? '' : (await readFile(path)).toString('base64');
  }
  return tree;
}

/** Bytes of all files under `dir`. */
export async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}
