/** `CaptureFiles` over a local directory tree; listed paths extend the prefix as given, as object keys would. */
import { readdir, readFile } from 'node:fs/promises';
import type { CaptureFiles } from './capture-reader.js';

async function* filesUnder(folder: string): AsyncIterable<string> {
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (error) {
    // Hour folders with no traffic simply do not exist.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

export const localFiles: CaptureFiles = {
  list: (prefix) => filesUnder(prefix.replace(/\/+$/, '')),
  readText: (path) => readFile(path, 'utf8'),
};
