import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultInstances } from '../../src/runtime/served-model.js';

describe('defaultInstances', () => {
  const table: [string, Parameters<typeof defaultInstances>[0], number][] = [
    ['one core: one instance', { executionProvider: 'cpu', cores: 1, processes: 1, mainThreadCores: 0, intraOpNumThreads: 1 }, 1],
    ['two cores, one process: both cores', { executionProvider: 'cpu', cores: 2, processes: 1, mainThreadCores: 0, intraOpNumThreads: 1 }, 2],
    ['16 cores, one process', { executionProvider: 'cpu', cores: 16, processes: 1, mainThreadCores: 0, intraOpNumThreads: 1 }, 16],
    ['16 cores shared by 8 processes', { executionProvider: 'cpu', cores: 16, processes: 8, mainThreadCores: 0, intraOpNumThreads: 1 }, 2],
    ['threads per session divide the cores', { executionProvider: 'cpu', cores: 16, processes: 1, mainThreadCores: 0, intraOpNumThreads: 4 }, 4],
    ['rounds down', { executionProvider: 'cpu', cores: 6, processes: 1, mainThreadCores: 0, intraOpNumThreads: 4 }, 1],
    ['never fewer than one', { executionProvider: 'cpu', cores: 2, processes: 4, mainThreadCores: 0, intraOpNumThreads: 8 }, 1],
    ['a transform job keeps a core for its parser', { executionProvider: 'cpu', cores: 2, processes: 1, mainThreadCores: 1, intraOpNumThreads: 1 }, 1],
    ['a transform job on 16 cores', { executionProvider: 'cpu', cores: 16, processes: 1, mainThreadCores: 1, intraOpNumThreads: 1 }, 15],
    ['a transform job on one core still gets an instance', { executionProvider: 'cpu', cores: 1, processes: 1, mainThreadCores: 1, intraOpNumThreads: 1 }, 1],
    ['CUDA: two sessions whatever the cores', { executionProvider: 'cuda', cores: 64, processes: 1, mainThreadCores: 0, intraOpNumThreads: 1 }, 2],
  ];
  for (const [name, layout, expected] of table) {
    it(name, () => assert.equal(defaultInstances(layout), expected));
  }
});
