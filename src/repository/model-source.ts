/**
 * What a model directory from a source we do not control may be: the `url` of a SageMaker
 * multi-model `POST /models`, or a model directory of a local repository used where it is. The
 * runtime opens files in it by name (the `.onnx` file, `inferd.json`), so no name there may lead
 * to a device, a kernel pseudo-file or a file elsewhere on the host. `--model-dir` is the
 * operator's own choice and is not checked here (src/runtime/model-dir.ts).
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { InferdError } from '../errors.js';
import { sourceInvalid } from './target-model.js';

/** No model is ever loaded from the kernel's or devices' pseudo-files (as Triton refuses them). */
const REFUSED_ROOTS = ['/proc', '/sys', '/dev'];

const isUnder = (path: string, root: string) => path === root || path.startsWith(`${root}/`);

/** The model directory a load `url` names, refused under /proc, /sys and /dev, links followed. */
export async function modelDirectoryOf(url: string): Promise<string> {
  if (!url.startsWith('/')) throw sourceInvalid(`url ${url} must be an absolute path`);
  const refuse = (path: string) => {
    if (REFUSED_ROOTS.some((root) => isUnder(path, root))) throw sourceInvalid(`url ${url} is under ${REFUSED_ROOTS.join(', ')}, which never hold models`);
  };
  refuse(resolve(url));
  let real: string;
  try {
    real = await realpath(url);
  } catch {
    throw new InferdError('INFERD_ERR_MODEL_NOT_FOUND', `url ${url} does not exist`);
  }
  refuse(real);
  if (!(await stat(real)).isDirectory()) throw sourceInvalid(`url ${url} must name a model directory`);
  return real;
}

/**
 * Refuses (INFERD_ERR_MODEL_SOURCE_INVALID) a model directory whose top level holds anything but
 * regular files and directories, or a symbolic link that leads outside the directory (or to the
 * directory itself) or to anything but a regular file or directory. Only the top level: the
 * runtime opens no other name of a model directory. `what` names the source in the error.
 *
 * This guards against a directory made to mislead (a `model.onnx` linked to /dev/zero, to
 * /proc/self/environ, to another tenant's model), not against someone changing it while it loads:
 * whoever can write there can replace the model itself.
 */
export async function checkModelEntries(dir: string, what: string): Promise<void> {
  const realDir = await realpath(dir);
  for (const entry of await readdir(realDir, { withFileTypes: true })) {
    if (entry.isFile() || entry.isDirectory()) continue;
    const name = JSON.stringify(entry.name);
    if (!entry.isSymbolicLink()) throw sourceInvalid(`${what} holds ${name}, which is neither a file nor a directory`);
    let real: string;
    try {
      real = await realpath(join(realDir, entry.name));
    } catch (error) {
      throw sourceInvalid(`${what} holds ${name}, a symbolic link that leads nowhere or in a loop`, error);
    }
    const fromDir = relative(realDir, real);
    if (fromDir === '' || fromDir === '..' || fromDir.startsWith(`..${sep}`)) {
      throw sourceInvalid(`${what} holds ${name}, a symbolic link that leads outside the model directory`);
    }
    const target = await stat(real);
    if (!target.isFile() && !target.isDirectory()) {
      throw sourceInvalid(`${what} holds ${name}, a symbolic link to something that is neither a file nor a directory`);
    }
  }
}
