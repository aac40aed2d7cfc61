import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { docFiles, renderTables, tablePlaces } from './doc-tables.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const files = Object.fromEntries(docFiles(root).map((file) => [file, readFileSync(`${root}${file}`, 'utf8')]));
tablePlaces(files); // refuses to write when a table is missing or doubled
for (const [file, text] of Object.entries(files)) {
  const rendered = renderTables(text);
  if (rendered === text) continue;
  writeFileSync(`${root}${file}`, rendered);
  console.log(`updated ${file}`);
}
