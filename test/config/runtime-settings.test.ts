import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load-config.js';
import { runtimeSettings } from '../../src/config/runtime-settings.js';

describe('runtimeSettings: the cores a process keeps for its main thread', () => {
  const table: [string, Record<string, string>, { invocationTimeoutS: number } | undefined, { processes: number; mainThreadCores: number }][] = [
    ['the server keeps none: its HTTP thread gets its share', { INFERD_PROCESSES: '2' }, undefined, { processes: 2, mainThreadCores: 0 }],
    ['under SAGEMAKER_BATCH the HTTP thread parses every mini-batch: one', { SAGEMAKER_BATCH: 'true' }, undefined, { processes: 1, mainThreadCores: 1 }],
    ['a transform job in this process: one, and one process whatever the server says', { INFERD_PROCESSES: '4' }, { invocationTimeoutS: 30 }, { processes: 1, mainThreadCores: 1 }],
  ];
  for (const [name, env, transformJob, expected] of table) {
    it(name, () => {
      const { defaults } = runtimeSettings(loadConfig({ env }), transformJob);
      assert.deepEqual({ processes: defaults.processes, mainThreadCores: defaults.mainThreadCores }, expected);
    });
  }

  it("takes a transform job's own timeout", () => {
    assert.equal(runtimeSettings(loadConfig({ env: {} }), { invocationTimeoutS: 30 }).defaults.invocationTimeoutMs, 30_000);
  });
});
