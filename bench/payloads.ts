/** Deterministic request payloads: a seeded RNG, a .npy writer and the churn request rows. */
import { readFileSync } from 'node:fs';

/** mulberry32: tiny, seedable, good enough to make varied but repeatable payloads. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A NumPy v1.0 .npy file of little-endian float32, C order. */
export function npyFloat32(shape: readonly number[], data: Float32Array): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  // The 10-byte preamble, the dict and the closing newline together fill a multiple of 64 bytes.
  const padding = (64 - ((10 + dict.length + 1) % 64)) % 64;
  const header = `${dict}${' '.repeat(padding)}\n`;
  const preamble = Buffer.from([0x93, ...Buffer.from('NUMPY', 'latin1'), 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([preamble, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** The headerless CSV request rows, each as its original line and as numbers. */
export function readCsvRows(path: string): { lines: string[]; rows: number[][] } {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return { lines, rows: lines.map((line) => line.split(',').map(Number)) };
}
