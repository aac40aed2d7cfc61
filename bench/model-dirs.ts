/** Temporary inferd model directories: a symlink to the scenario's .onnx plus an inferd.json. */
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class InferdModelDir {
  private constructor(readonly path: string) {}

  static async create(onnxPath: string, config: Readonly<Record<string, unknown>>): Promise<InferdModelDir> {
    const path = await mkdtemp(join(tmpdir(), 'inferd-bench-'));
    await symlink(onnxPath, join(path, 'model.onnx'));
    if (Object.keys(config).length > 0) await writeFile(join(path, 'inferd.json'), `${JSON.stringify(config, null, 2)}\n`);
    return new InferdModelDir(path);
  }

  async remove(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }
}
