import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { renderReadme } from '../scripts/readme-tables.js';
import { ERROR_CODES } from '../src/errors.js';
import { REPO_ROOT } from './helper.js';

it('the README tables match the configuration schema and the error codes (npm run docs)', async () => {
  const readme = await readFile(`${REPO_ROOT}README.md`, 'utf8');
  assert.equal(readme, renderReadme(readme), 'README.md is stale: run `npm run docs`');
  for (const code of Object.keys(ERROR_CODES)) assert.match(readme, new RegExp(`\`${code}\``));
});

it('the README starts with the two set-up commands', async () => {
  const readme = await readFile(`${REPO_ROOT}README.md`, 'utf8');
  const firstBlock = /```(?:sh|bash)?\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  assert.match(firstBlock, /npm install && npm start/);
  assert.match(firstBlock, /npm test/);
});
