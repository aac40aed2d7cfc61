import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { it } from 'node:test';
import { docFiles, renderTables, tablePlaces } from '../scripts/doc-tables.js';
import { ERROR_CODES } from '../src/errors.js';
import { REPO_ROOT } from './helper.js';
import { codeBlocks, headingAnchors, linkTargets } from './markdown.js';

async function readDocs(files: readonly string[]): Promise<Record<string, string>> {
  return Object.fromEntries(await Promise.all(files.map(async (file) => [file, await readFile(`${REPO_ROOT}${file}`, 'utf8')])));
}

it('the generated tables match the configuration schema and the error codes (npm run docs)', async () => {
  const docs = await readDocs(docFiles(REPO_ROOT));
  const places = tablePlaces(docs);
  for (const [file, text] of Object.entries(docs)) assert.equal(text, renderTables(text), `${file} is stale: run \`npm run docs\``);
  const errorsPage = docs[places.errors!]!;
  for (const code of Object.keys(ERROR_CODES)) assert.match(errorsPage, new RegExp(`\`${code}\``), `${places.errors} lacks ${code}`);
});

it('the README starts with the two set-up commands', async () => {
  const readme = await readFile(`${REPO_ROOT}README.md`, 'utf8');
  const firstBlock = codeBlocks(readme)[0]?.body ?? '';
  assert.match(firstBlock, /npm install && npm start/);
  assert.match(firstBlock, /npm test/);
});

it('every relative link in README.md, docs/ and deploy/README.md points at a file, and at a heading there', async () => {
  const docs = await readDocs([...docFiles(REPO_ROOT), 'deploy/README.md']);
  const broken: string[] = [];
  let checked = 0;
  for (const [file, text] of Object.entries(docs)) {
    for (const target of linkTargets(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: — not ours to check
      checked++;
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? join(REPO_ROOT, file) : join(REPO_ROOT, dirname(file), decodeURIComponent(path));
      if (!existsSync(resolved)) {
        broken.push(`${file}: ${target} (no ${relative(REPO_ROOT, resolved)})`);
      } else if (anchor !== undefined && resolved.endsWith('.md') && statSync(resolved).isFile()) {
        const page = path === '' ? text : await readFile(resolved, 'utf8');
        if (!headingAnchors(page).has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor})`);
      }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(checked > 20, `only ${checked} relative links found: is the link parser broken?`);
});
