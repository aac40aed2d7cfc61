/** Reading captured objects back in tests. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CaptureRecordSchema, type CaptureRecord } from '../../src/capture/capture-record.js';

export const KEY_LAYOUT = /^ep\/AllTraffic\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl$/;

export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
}

export function parseRecords(text: string): CaptureRecord[] {
  return text.trim().split('\n').map((line) => CaptureRecordSchema.parse(JSON.parse(line)));
}

export const decode = (data: { data: string; encoding: string }) =>
  data.encoding === 'BASE64' ? Buffer.from(data.data, 'base64') : Buffer.from(data.data, 'utf8');

