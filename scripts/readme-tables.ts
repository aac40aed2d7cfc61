/**
 * The README's reference tables, generated from the code that defines them: the configuration
 * schema, the inferd.json schema and the error codes. `npm run docs` rewrites them in place;
 * test/docs.test.ts fails when the committed README is stale.
 */
import { z } from 'zod';
import { CLI_FLAGS, ConfigSchema, ENV_VARS } from '../src/config/schema.js';
import { ModelConfigSchema } from '../src/config/model-schema.js';
import { ERROR_CODES } from '../src/errors.js';

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
  const rows = ['| status | code | when |', '|---|---|---|'];
  const entries = Object.entries(ERROR_CODES).sort(([, a], [, b]) => a.status - b.status);
  for (const [code, { status, summary }] of entries) rows.push(`| ${status} | \`${code}\` | ${cell(summary)} |`);
  return rows.join('\n');
}

export const README_TABLES: Record<string, () => string> = {
  config: configTable,
  'model-config': modelConfigTable,
  errors: errorTable,
};

/** Replaces every `<!-- NAME:start -->…<!-- NAME:end -->` block with its generated table. */
export function renderReadme(readme: string): string {
  let out = readme;
  for (const [name, render] of Object.entries(README_TABLES)) {
    const pattern = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`);
    if (!pattern.test(out)) throw new Error(`README.md has no <!-- ${name}:start --> … <!-- ${name}:end --> block`);
    out = out.replace(pattern, (_m, start: string, end: string) => `${start}\n${render()}\n${end}`);
  }
  return out;
}
