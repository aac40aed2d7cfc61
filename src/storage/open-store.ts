/** Chooses the object store for a URI by its scheme. */
import { FileObjectStore } from './file-store.js';
import type { ObjectStore, StorageSettings } from './object-store.js';
import { S3ObjectStore, createS3Client } from './s3-store.js';
import { parseUri } from './uri.js';

const fileStore = new FileObjectStore();
/** One store, so one S3 client and its connection pool, per distinct settings. */
const s3Stores = new Map<string, S3ObjectStore>();

/** Throws StorageError `INVALID_URI` when the URI is neither `s3://`, `file://` nor a path. */
export function openObjectStore(uri: string, settings: StorageSettings): ObjectStore {
  if (parseUri(uri).scheme === 'file') return fileStore;
  const key = JSON.stringify([settings.s3Endpoint, settings.region]);
  let store = s3Stores.get(key);
  if (store === undefined) {
    store = new S3ObjectStore(createS3Client(settings));
    s3Stores.set(key, store);
  }
  return store;
}
