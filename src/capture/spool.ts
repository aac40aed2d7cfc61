/**
 * Captured objects that could not be uploaded yet, on local disk, bounded in bytes. Each file
 * holds its destination URI on the first line and the object after it, so after a crash the
 * next start uploads it to the same key: a retry overwrites, it never duplicates.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SpooledObject {
  readonly file: string;
  readonly uri: string;
  readonly body: string;
}

const SUFFIX = '.spool';

export class Spool {
  readonly #dir: string;
  readonly #maxBytes: number;
  #bytes = 0;
  #sequence = 0;

  constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Creates the directory, counts what a previous run left in it, and clears its torn writes. */
  async open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    // A crash between writing and renaming leaves a `.tmp`: its records were never acknowledged
    // as spooled (the upload failed, the spool write did not finish), so nothing counted is lost.
    for (const file of await readdir(this.#dir)) {
      if (file.startsWith('.') && file.endsWith('.tmp')) await rm(join(this.#dir, file), { force: true });
    }
    this.#bytes = 0;
    for (const file of await this.#files()) this.#bytes += (await stat(join(this.#dir, file))).size;
  }

  /** False when the spool has no room for it. */
  async write(uri: string, body: string): Promise<boolean> {
    const content = `${uri}\n${body}`;
    const size = Buffer.byteLength(content);
    if (this.#bytes + size > this.#maxBytes) return false;
    this.#bytes += size;
    // Time first, so that a directory listing is upload order; written aside, then renamed.
    const name = `${Date.now().toString().padStart(15, '0')}-${(this.#sequence++).toString().padStart(6, '0')}-${randomUUID()}`;
    const temporary = join(this.#dir, `.${name}.tmp`);
    try {
      await writeFile(temporary, content);
      await rename(temporary, join(this.#dir, name + SUFFIX));
    } catch (error) {
      this.#bytes -= size;
      await rm(temporary, { force: true });
      throw error;
    }
    return true;
  }

  async *objects(): AsyncGenerator<SpooledObject> {
    for (const file of await this.#files()) {
      const content = await readFile(join(this.#dir, file), 'utf8').catch(() => undefined);
      if (content === undefined) continue;
      const newline = content.indexOf('\n');
      yield { file, uri: content.slice(0, newline), body: content.slice(newline + 1) };
    }
  }

  async remove(object: SpooledObject): Promise<void> {
    await rm(join(this.#dir, object.file), { force: true });
    this.#bytes = Math.max(0, this.#bytes - Buffer.byteLength(`${object.uri}\n${object.body}`));
  }

  async #files(): Promise<string[]> {
    return (await readdir(this.#dir)).filter((file) => file.endsWith(SUFFIX)).sort();
  }
}
