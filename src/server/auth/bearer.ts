/**
 * Bearer tokens (`Authorization: Bearer …`), configured only as SHA-256 digests: the server never
 * holds a token itself. A presented token is hashed and compared with every digest in constant
 * time, so neither a digest's bytes nor which entry matched shows in the answer's timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenEntry } from './credentials.js';
import type { Scope } from './route-access.js';

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The token of an `Authorization: Bearer` header; undefined for none or another scheme. */
export function bearerTokenOf(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
}

export class BearerTokens {
  readonly #entries: ReadonlyArray<{ readonly digest: Buffer; readonly scopes: ReadonlySet<Scope> }>;
  readonly #scopes: ReadonlySet<Scope>;

  constructor(entries: readonly TokenEntry[]) {
    this.#entries = entries.map(({ sha256, scopes }) => ({ digest: Buffer.from(sha256, 'hex'), scopes: new Set(scopes) }));
    this.#scopes = new Set(entries.flatMap(({ scopes }) => scopes));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Whether any configured token carries `scope`. */
  grants(scope: Scope): boolean {
    return this.#scopes.has(scope);
  }

  /** The scopes of `token`; undefined when it is not configured. Every entry is compared. */
  scopesOf(token: string): ReadonlySet<Scope> | undefined {
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let found: ReadonlySet<Scope> | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(digest, entry.digest) && found === undefined) found = entry.scopes;
    }
    return found;
  }
}
