import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderReadme } from './readme-tables.js';

const path = fileURLToPath(new URL('../../README.md', import.meta.url));
writeFileSync(path, renderReadme(readFileSync(path, 'utf8')));
console.log(`updated ${path}`);
