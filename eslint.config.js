// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/', '.gpu/', '.tools/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // The dependency direction of the design card, enforced: codecs are pure; the runtime knows
  // nothing of HTTP or codecs; only src/config reads the environment.
  {
    files: ['src/codecs/**/*.ts'],
    rules: restrict([
      { group: ['fastify', 'onnxruntime-node', 'piscina', 'node:fs*', 'node:net', 'node:http*'], message: 'codecs are pure: bytes in, tensors out' },
      { group: ['../server/*', '../runtime/*', '../config/*'], message: 'codecs depend only on tensor.ts and errors.ts' },
    ]),
  },
  {
    files: ['src/runtime/**/*.ts'],
    rules: restrict([
      { group: ['fastify', '**/server/*', '**/app.js'], message: 'the runtime knows nothing of HTTP' },
      { group: ['../codecs/*', '!../codecs/tensor.js'], message: 'the runtime takes tensors, not bytes' },
      { group: ['**/autoscale/*', '**/metrics.js', '**/capture/*', '**/config/schema.js'], message: 'the runtime is handed typed settings; autoscalers and metrics attach through its hooks (app.ts)' },
    ]),
  },
  // Modes (real-time, batch, async, transform) call the data plane and the runtime; the server calls them.
  {
    files: ['src/modes/**/*.ts', 'src/data-plane.ts', 'src/repository/**/*.ts'],
    rules: restrict([{ group: ['fastify', '**/server/*', '**/app.js'], message: 'modes, the data plane and the repository never import the server' }]),
  },
  // Metrics read a stats source and count what the composition root forwards to them.
  {
    files: ['src/metrics.ts'],
    rules: restrict([{ group: ['./runtime/*', './autoscale/*', './capture/*', './modes/*', './server/*'], message: 'metrics read a StatsSource; app.ts wires the components to them' }]),
  },
  // One decoder for compressed bodies, so every door (HTTP, async, transform) decodes and limits
  // them alike. (The typescript-eslint rule, so it adds to the per-folder rules above.)
  {
    files: ['src/**/*.ts'],
    ignores: ['src/codecs/content-encoding.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: [{ name: 'node:zlib', message: 'decode content codings with src/codecs/content-encoding.ts' }] },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/config/**', 'src/main.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read configuration from the Config object' }],
    },
  },
);
