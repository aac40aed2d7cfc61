import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { unpackTarGz } from '../../src/repository/tar.js';
import { MLP_MODEL, bytesUnder, paxRecords, systemTar, tarArchive, tarGz, treeOf, zeroBombTarGz, type TarEntry } from './tar-writer.js';

const MiB = 1024 * 1024;
const LIMITS = { maxBytes: 64 * MiB, maxEntries: 100 };
const LONG_DIR = `${'deep-directory-name-'.repeat(4)}/${'second-level-'.repeat(4)}`;

let work = '';
let model = '';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'inferd-tar-'));
  // A real model directory: an ONNX file, a config, a nested file, and a name over 100 bytes.
  model = join(work, 'src', 'mymodel');
  await mkdir(join(model, 'assets'), { recursive: true });
  await mkdir(join(model, LONG_DIR), { recursive: true });
  await copyFile(MLP_MODEL, join(model, 'model.onnx'));
  await writeFile(join(model, 'inferd.json'), '{"name":"churn"}\n');
  await writeFile(join(model, 'assets', 'vocab.txt'), 'a\nb\n');
  await writeFile(join(model, LONG_DIR, 'long-named-file.txt'), 'long\n');
  // Modes in the archive are ignored: an executable (or setuid) file comes out 0644.
  await chmod(join(model, 'assets', 'vocab.txt'), 0o4755);
});
after(() => rm(work, { recursive: true, force: true }));

/** A fresh sandbox holding only the destination, to see that nothing lands beside it. */
async function sandbox(): Promise<{ root: string; dest: string }> {
  const root = await mkdtemp(join(work, 'sandbox-'));
  return { root, dest: join(root, 'dest') };
}

const unpack = (archive: Buffer, dest: string, limits = LIMITS): Promise<void> => unpackTarGz(Readable.from([archive]), dest, limits);

describe('unpackTarGz on archives made by the system tar', () => {
  const cases: [string, (archive: string) => string[], string][] = [
    ['with a top directory', (archive) => ['czf', archive, '-C', join(work, 'src'), 'mymodel'], 'mymodel'],
    ['with a ./ prefix', (archive) => ['czf', archive, '-C', model, '.'], ''],
    ['without a top directory', (archive) => ['czf', archive, '-C', model, 'model.onnx', 'inferd.json', 'assets', LONG_DIR.split('/')[0]!], ''],
    ['in POSIX pax format', (archive) => ['--format=posix', '-czf', archive, '-C', model, '.'], ''],
    ['in ustar format (prefix field)', (archive) => ['--format=ustar', '-czf', archive, '-C', model, '.'], ''],
  ];
  for (const [name, args, top] of cases) {
    it(`unpacks an archive ${name}`, async () => {
      const { root, dest } = await sandbox();
      const archive = join(root, 'model.tar.gz');
      systemTar(args(archive));
      await unpackTarGz(Readable.from([await readFile(archive)]), dest, LIMITS);
      assert.deepEqual(await treeOf(join(dest, top)), await treeOf(model));
      assert.equal((await stat(join(dest, top, 'assets', 'vocab.txt'))).mode & 0o7777, 0o644);
      assert.equal((await stat(join(dest, top, 'assets'))).mode & 0o7777, 0o755);
    });
  }

  it('reads the archive as it streams in, in chunks of any size', async () => {
    const { root, dest } = await sandbox();
    const archive = join(root, 'model.tar.gz');
    systemTar(['czf', archive, '-C', model, '.']);
    const bytes = await readFile(archive);
    const oddChunks = Array.from({ length: Math.ceil(bytes.length / 1000) }, (_, index) => bytes.subarray(index * 1000, (index + 1) * 1000));
    await unpackTarGz(Readable.from(oddChunks), dest, LIMITS);
    assert.deepEqual(await treeOf(dest), await treeOf(model));
  });
});

describe('unpackTarGz on crafted archives', () => {
  it('reads pax paths and sizes, GNU long names and base-256 sizes', async () => {
    const longName = `${'n'.repeat(150)}/file.txt`;
    const base256Size = Buffer.alloc(12);
    base256Size[0] = 0x80;
    base256Size.writeUInt32BE(5, 8);
    const base256 = tarArchive([{ name: 'big.txt', content: 'hello' }]);
    base256.set(base256Size, 124);
    rechecksum(base256);
    const archive = Buffer.concat([
      tarArchive(
        [
          { name: 'PaxHeaders/x', type: 'g', content: paxRecords({ comment: 'ignored' }) },
          { name: 'PaxHeaders/y', type: 'x', content: paxRecords({ path: 'pax/renamed.txt', size: '3', mtime: '1.5' }) },
          { name: 'short-name.txt', headerSize: 0, content: 'abc' },
          { name: '././@LongLink', type: 'L', content: `${longName}\0` },
          { name: longName.slice(0, 99), content: 'gnu' },
          { name: 'ignored-name', prefix: 'ustar/prefix', content: 'ustar' },
        ],
        0,
      ),
      base256,
    ]);
    const { dest } = await sandbox();
    await unpack(gzipSync(archive), dest);
    assert.deepEqual(await treeOf(dest), {
      'big.txt': b64('hello'),
      'pax/': '',
      'pax/renamed.txt': b64('abc'),
      [`${'n'.repeat(150)}/`]: '',
      [longName]: b64('gnu'),
      'ustar/': '',
      'ustar/prefix/': '',
      'ustar/prefix/ignored-name': b64('ustar'),
    });
  });

  it('accepts the ./ entry and lets a later entry replace an earlier one', async () => {
    const { dest } = await sandbox();
    await unpack(tarGz([{ name: './', type: '5' }, { name: './a.txt', content: 'first' }, { name: 'a.txt', content: 'second' }]), dest);
    assert.deepEqual(await treeOf(dest), { 'a.txt': b64('second') });
  });

  const malicious: [string, TarEntry[] | (() => Buffer), RegExp][] = [
    ['a parent path', [{ name: '../evil', content: 'x' }], /"\.\."/],
    ['an absolute path', [{ name: '/etc/evil', content: 'x' }], /absolute/],
    ['a parent path inside', [{ name: 'a/../../evil', content: 'x' }], /"\.\."/],
    ['a parent path in the prefix field', [{ name: 'evil', prefix: '..', content: 'x' }], /"\.\."/],
    ['a parent path in a pax header', [{ name: 'h', type: 'x', content: paxRecords({ path: '../evil' }) }, { name: 'fine', content: 'x' }], /"\.\."/],
    ['a parent path in a GNU long name', [{ name: '././@LongLink', type: 'L', content: '../evil\0' }, { name: 'fine', content: 'x' }], /"\.\."/],
    ['a parent directory', [{ name: '../evil/', type: '5' }], /"\.\."/],
    ['a backslash path', [{ name: '..\\evil', content: 'x' }], /backslash/],
    ['a symbolic link', [{ name: 'link', type: '2', linkName: '/etc/passwd' }], /symbolic link/],
    ['a symbolic link, then a file through it', [{ name: 'link', type: '2', linkName: '..' }, { name: 'link/evil', content: 'x' }], /symbolic link/],
    ['a hard link', [{ name: 'link', type: '1', linkName: '/etc/passwd' }], /hard link/],
    ['a character device', [{ name: 'null', type: '3' }], /device/],
    ['a FIFO', [{ name: 'fifo', type: '6' }], /FIFO/],
    ['an unknown type', [{ name: 'sparse', type: 'S' }], /unsupported type/],
    ['a bad checksum', [{ name: 'a.txt', content: 'x', badChecksum: true }], /checksum/],
    ['a file where the root should be', [{ name: '.', content: 'x' }], /archive root/],
    ['a directory where a file was', [{ name: 'a', content: 'x' }, { name: 'a/b', content: 'y' }], /conflicts/],
    ['more entries than the bound', Array.from({ length: 101 }, (_, index) => ({ name: `f${index}`, content: 'x' })), /more than 100 entries/],
    ['a truncated archive (inside valid gzip)', () => gzipSync(tarArchive([{ name: 'a.bin', content: Buffer.alloc(4096, 1) }]).subarray(0, 2048)), /truncated/],
    ['no end-of-archive block', () => gzipSync(tarArchive([{ name: 'a.txt', content: 'x' }], 0)), /truncated/],
    ['a truncated gzip stream', () => truncate(tarGz([{ name: 'a.bin', content: Buffer.alloc(64 * 1024, 7) }])), /not valid gzip/],
    ['bytes that are not gzip', () => Buffer.from('this is not a gzip stream at all'), /not valid gzip/],
    ['a gzip of something else than tar', () => gzipSync(Buffer.alloc(1024, 0x41)), /checksum|octal/],
  ];
  for (const [name, entries, message] of malicious) {
    it(`refuses ${name}, writing nothing outside the destination`, async () => {
      const { root, dest } = await sandbox();
      const archive = typeof entries === 'function' ? entries() : tarGz(entries);
      await assert.rejects(unpack(archive, dest), { name: 'InferdError', code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message });
      assert.deepEqual(await readdir(root), ['dest']);
      assert.equal(existsSync(join(work, 'evil')), false);
      assert.equal(existsSync('/etc/evil'), false);
    });
  }

  // Each record here passes a check that reads only its last byte; none of them advances.
  const stuckPax: [string, string][] = [
    ['a zero length after a valid record', '6 a=b\n0 x'],
    ['a zero length after a record ending the content', '6 a=b\n0 '],
    ['a zero length alone', '0 \n'],
    ['a length shorter than its own prefix', '6 a=b\n2 \n'],
    ['no "=" in it', '6 a=b\n3 \n'],
    ['a length past the content', '6 a=b\n99 path=x\n'],
    ['a length with no space after it', '6 a=b\n12'],
  ];
  for (const [name, records] of stuckPax) {
    it(`refuses a pax record with ${name}, without stopping the event loop`, async () => {
      const { root, dest } = await sandbox();
      const archive = tarGz([{ name: 'PaxHeaders/model.onnx', type: 'x', content: records }, { name: 'model.onnx', content: 'x' }]);
      const outcome = await unpackInWorker(archive, dest, 10_000);
      assert.equal(outcome.code, 'INFERD_ERR_MODEL_SOURCE_INVALID', outcome.message);
      assert.match(outcome.message, /pax header record is malformed/);
      assert.deepEqual(await readdir(root), ['dest']);
    });
  }

  it('stops a gzip bomb at its bound, long before it is written whole', async () => {
    const bomb = await zeroBombTarGz(200 * MiB);
    assert.ok(bomb.length < MiB, `the bomb is small: ${bomb.length} bytes`);
    const { root, dest } = await sandbox();
    const maxBytes = 10 * MiB;
    await assert.rejects(unpack(bomb, dest, { maxBytes, maxEntries: 10 }), {
      code: 'INFERD_ERR_MODEL_SOURCE_INVALID',
      message: /more than its bound of 10485760 bytes/,
    });
    assert.ok((await bytesUnder(dest)) <= maxBytes, `at most the bound was written: ${await bytesUnder(dest)} bytes`);
    assert.deepEqual(await readdir(root), ['dest']);
  });

  it('counts the padding after the end of the archive too', async () => {
    const padded = gzipSync(Buffer.concat([tarArchive([{ name: 'a.txt', content: 'x' }]), Buffer.alloc(2 * MiB)]));
    const { dest } = await sandbox();
    await assert.rejects(unpack(padded, dest, { maxBytes: MiB, maxEntries: 10 }), { code: 'INFERD_ERR_MODEL_SOURCE_INVALID' });
  });
});

interface Outcome {
  readonly code?: string;
  readonly message: string;
}

/**
 * Unpacks in a worker thread, terminated after `deadlineMs`: an unpacker stuck in a loop then
 * fails the test instead of freezing the test process with it.
 */
async function unpackInWorker(archive: Buffer, dest: string, deadlineMs: number): Promise<Outcome> {
  const tarModule = new URL('../../src/repository/tar.js', import.meta.url).href;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { Readable } = require('node:stream');
    import(workerData.tarModule)
      .then(({ unpackTarGz }) => unpackTarGz(Readable.from([Buffer.from(workerData.archive)]), workerData.dest, workerData.limits))
      .then(() => parentPort.postMessage({ message: 'unpacked' }), (error) => parentPort.postMessage({ code: error.code, message: String(error.message) }));
  `;
  const worker = new Worker(source, { eval: true, workerData: { tarModule, archive, dest, limits: LIMITS } });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      new Promise<Outcome>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }),
      new Promise<Outcome>((resolve) => {
        timer = setTimeout(() => resolve({ message: `still unpacking after ${deadlineMs} ms: stuck` }), deadlineMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** Cuts a gzip stream inside its compressed data, so the trailer (CRC, length) is missing. */
function truncate(gz: Buffer): Buffer {
  return gz.subarray(0, gz.length - 12);
}

/** Recomputes the checksum of the first header of `archive` after a test edited it. */
function rechecksum(archive: Buffer): void {
  archive.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of archive.subarray(0, 512)) sum += byte;
  archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}
