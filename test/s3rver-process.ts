/**
 * An S3-compatible server (s3rver) in a process of its own, so that tests can stop and kill it:
 *
 *   node dist/test/s3rver-process.js --directory DIR [--bucket NAME]... [--port N]
 *
 * Listens on 127.0.0.1 (port 0: any free port), prints one line `{"port":N}` to stdout once it
 * listens, and exits on SIGTERM. It also exits when its stdin closes, so that a test process
 * that dies without stopping it leaves no server behind.
 */
import { parseArgs } from 'node:util';
import S3rver from 's3rver';

interface Listing {
  objects: { key: string }[];
  isTruncated: boolean;
}
interface ListingStore {
  listObjects(bucket: string, options: { maxKeys?: number }): Promise<Listing>;
}

// The test runner runs every file under test/ as a test file, this one included: without
// arguments there is nothing to serve.
if (process.argv.length > 2) await serve();

async function serve(): Promise<void> {
  const { values } = parseArgs({
    options: {
      directory: { type: 'string' },
      bucket: { type: 'string', multiple: true, default: [] },
      port: { type: 'string', default: '0' },
    },
  });
  if (values.directory === undefined) throw new Error('--directory is required');

  const server = new S3rver({
    address: '127.0.0.1',
    port: Number(values.port),
    directory: values.directory,
    silent: true,
    configureBuckets: values.bucket.map((name) => ({ name, configs: [] })),
  });
  listInKeyOrder((server as unknown as { store: ListingStore }).store);

  const { port } = await server.run();
  process.stdout.write(`${JSON.stringify({ port })}\n`);

  const exit = (): void => void server.close().finally(() => process.exit(0));
  process.once('SIGTERM', exit);
  process.stdin.once('end', exit).resume();
}

/**
 * s3rver 3.7.1 lists keys in readdir order (hash order on ext4), and takes the next page's
 * continuation token from the last key of an unsorted page, so keys go missing from paged
 * listings. S3 lists in UTF-8 byte order of key; make the store do so, for every page.
 */
function listInKeyOrder(store: ListingStore): void {
  const listObjects = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const all = await listObjects(bucket, { ...options, maxKeys: Infinity });
    const maxKeys = options.maxKeys ?? Infinity;
    const objects = all.objects.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    return { ...all, objects: objects.slice(0, maxKeys), isTruncated: objects.length > maxKeys };
  };
}
