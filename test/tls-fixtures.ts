/**
 * HTTPS for tests: certificates made by openssl at test time, as an operator makes them
 * (.tools/bin/openssl from scripts/install-test-tools.sh, else the machine's), and a client
 * that reports which certificate the server presented.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request, type Agent } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { REPO_ROOT } from './helper.js';

const OPENSSL = existsSync(`${REPO_ROOT}.tools/bin/openssl`) ? `${REPO_ROOT}.tools/bin/openssl` : 'openssl';

export function openssl(args: readonly string[], cwd: string): Promise<void> {
  const child = spawn(OPENSSL, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args.join(' ')} exited ${code}:\n${output}`))));
  });
}

export interface KeyPair {
  /** PEM file paths. */
  readonly cert: string;
  readonly key: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA. */
export async function makeCa(dir: string, name: string): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await openssl(['req', '-x509', ...EC_KEY, '-days', '2', '-subj', `/CN=${name}`, '-keyout', pair.key, '-out', pair.cert], dir);
  return pair;
}

/**
 * A certificate signed by `ca` with a chosen serial (hex, as `getPeerCertificate().serialNumber`
 * prints it): for a server, valid for 127.0.0.1 and localhost; for a client, client auth only.
 */
export async function issue(dir: string, ca: KeyPair, name: string, serialHex: string, use: 'server' | 'client'): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extensions = join(dir, `${name}.ext`);
  await writeFile(
    extensions,
    use === 'server' ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n',
  );
  await openssl(['req', '-new', ...EC_KEY, '-subj', `/CN=${name}`, '-keyout', pair.key, '-out', csr], dir);
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${serialHex}`, '-days', '2', '-extfile', extensions, '-out', pair.cert],
    dir,
  );
  return pair;
}

export interface HttpsOptions {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  /** PEM contents of the CA(s) to trust. */
  readonly ca?: string | Buffer;
  /** PEM contents of a client certificate and its key. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly ciphers?: string;
  /** Unset: a connection of its own (`agent: false`), so never a resumed TLS session. */
  readonly agent?: Agent;
}

export interface HttpsAnswer {
  readonly status: number;
  readonly text: string;
  /** The serial of the certificate the server presented on this connection. */
  readonly serial: string;
  readonly reusedSocket: boolean;
}

/** One request to 127.0.0.1:`port`; rejects on a refused handshake with the TLS error. */
export function httpsRequest(port: number, options: HttpsOptions = {}): Promise<HttpsAnswer> {
  const { method = 'GET', path = '/ping', headers = {}, body, agent, ...tls } = options;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: agent ?? false, ...tls }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, serial, reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
