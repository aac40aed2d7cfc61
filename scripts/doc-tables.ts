/**
 * The reference tables of the documentation, generated from the code that defines them: the
 * configuration schema, the inferd.json schema and the error codes. Each table lives between
 * `<!-- NAME:start -->` and `<!-- NAME:end -->` in whichever Markdown file (README.md or docs/*.md)
 * holds those markers, so a table moves with its section. `npm run docs` rewrites them in place;
 * test/docs.test.ts fails when a committed file is stale.
 */
import { readdirSync } from 'node:fs';
import { z } from 'zod';
import { CLI_FLAGS, ConfigSchema, ENV_VARS } from '../src/config/schema.js';
import { ModelConfigSchema } from '../src/config/model-schema.js';
import { ERROR_CODES, RUNTIME_API_STATUS } from '../src/errors.js';

interface JsonSchemaNode {
  type?: string | string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function typeOf(node: JsonSchemaNode): string {
  if (node.enum) return node.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (node.anyOf) return node.anyOf.map(typeOf).join(' \\| ');
  if (node.type === 'array' && node.items) return `${typeOf(node.items)}[]`;
  return Array.isArray(node.type) ? node.type.join(' \\| ') : (node.type ?? 'any');
}

const defaultOf = (node: JsonSchemaNode) => (node.default === undefined ? '' : `\`${JSON.stringify(node.default)}\``);

function configTable(): string {
  const schema = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
  // The parsed empty config is the truth about defaults; JSON Schema loses those behind a preprocess.
  const defaults = ConfigSchema.parse({}) as unknown as Record<string, Record<string, unknown>>;
  const rows = ['| setting | environment | CLI | type | default | meaning |', '|---|---|---|---|---|---|'];
  for (const [group, groupNode] of Object.entries(schema.properties ?? {})) {
    for (const [key, node] of Object.entries(groupNode.properties ?? {})) {
      const env = Object.entries(ENV_VARS).filter(([, path]) => path[0] === group && path[1] === key).map(([name]) => `\`${name}\``);
      const flag = Object.entries(CLI_FLAGS).find(([, path]) => path[0] === group && path[1] === key)?.[0];
      rows.push(
        `| \`${group}.${key}\` | ${env.join(', ')} | ${flag ? `\`--${flag}\`` : ''} | ${typeOf(node)} | ${defaultOf({ default: defaults[group]?.[key] })} | ${cell(node.description ?? '')} |`,
      );
    }
  }
  return rows.join('\n');
}

function modelConfigTable(): string {
  const schema = z.toJSONSchema(ModelConfigSchema, { io: 'input' }) as JsonSchemaNode;
  const rows = ['| key | type | default | meaning |', '|---|---|---|---|'];
  for (const [key, node] of Object.entries(schema.properties ?? {})) {
    rows.push(`| \`${key}\` | ${typeOf(node)} | ${defaultOf(node)} | ${cell(node.description ?? '')} |`);
  }
  return rows.join('\n');
}

function errorTable(): string {
  const rows = ['| status | code | runtime API | when |', '|---|---|---|---|'];
  const entries = Object.entries(ERROR_CODES).sort(([, a], [, b]) => a.status - b.status);
  for (const [code, { status, runtimeApi, summary }] of entries) {
    rows.push(`| ${status} | \`${code}\` | \`${runtimeApi}\` ${RUNTIME_API_STATUS[runtimeApi]} | ${cell(summary)} |`);
  }
  return rows.join('\n');
}

export const DOC_TABLES: Record<string, () => string> = {
  config: configTable,
  'model-config': modelConfigTable,
  errors: errorTable,
};

/** The files that may hold tables, relative to the repository root: README.md and docs/*.md. */
export function docFiles(root: string): string[] {
  const docs = readdirSync(`${root}docs`).filter((name) => name.endsWith('.md')).sort();
  return ['README.md', ...docs.map((name) => `docs/${name}`)];
}

const blockOf = (name: string) => new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`, 'g');

/** Replaces every table block the text holds with its generated table; other text is untouched. */
export function renderTables(text: string): string {
  let out = text;
  for (const [name, render] of Object.entries(DOC_TABLES)) {
    out = out.replace(blockOf(name), (_m, start: string, end: string) => `${start}\n${render()}\n${end}`);
  }
  return out;
}

/** Which file holds each table; throws unless every table is in exactly one place. */
export function tablePlaces(files: Record<string, string>): Record<string, string> {
  const places: Record<string, string> = {};
  for (const name of Object.keys(DOC_TABLES)) {
    const holders: string[] = [];
    for (const [file, text] of Object.entries(files)) for (const _block of text.matchAll(blockOf(name))) holders.push(file);
    if (holders.length !== 1) {
      throw new Error(`<!-- ${name}:start --> … <!-- ${name}:end --> must appear exactly once in README.md and docs/*.md; found in: [${holders.join(', ')}]`);
    }
    places[name] = holders[0]!;
  }
  return places;
}
