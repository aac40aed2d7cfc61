/**
 * HTTPS: the TLS options the server starts with, and their reload on SIGHUP. The files are read
 * here and nowhere else: at start a bad file stops the server before it listens (as any invalid
 * setting does); on reload it keeps the certificate it has, since a server that is serving must
 * not stop over a half-copied file.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import { Server as TlsServer, createSecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import type { Config } from '../config/schema.js';
import { InferdError } from '../errors.js';

/** TLS 1.0 and 1.1 are deprecated (RFC 8996). */
const MIN_TLS_VERSION = 'TLSv1.2';

type ServerSettings = Pick<Config['server'], 'tlsCertFile' | 'tlsKeyFile' | 'tlsClientCaFile'>;

export interface TlsLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
  debug(object: object, message: string): void;
}

/** Names a setting as a user may have set it: the variable, and the key of a config file. */
const SETTING_NAMES = {
  tlsCertFile: 'INFERD_TLS_CERT_FILE (server.tlsCertFile)',
  tlsKeyFile: 'INFERD_TLS_KEY_FILE (server.tlsKeyFile)',
  tlsClientCaFile: 'INFERD_TLS_CLIENT_CA_FILE (server.tlsClientCaFile)',
} as const;

const invalid = (setting: keyof typeof SETTING_NAMES, path: string, problem: string, cause?: unknown) =>
  new InferdError('INFERD_ERR_CONFIG_INVALID', `${SETTING_NAMES[setting]} ${path}: ${problem}`, { cause });

function readSetting(setting: keyof typeof SETTING_NAMES, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw invalid(setting, path, `cannot be read (${(error as Error).message})`, error);
  }
}

function parseCertificate(setting: keyof typeof SETTING_NAMES, path: string, pem: Buffer): X509Certificate {
  try {
    // The first certificate of a chain file is the server's (or the first CA's): the one a key must match.
    return new X509Certificate(pem);
  } catch (error) {
    throw invalid(setting, path, 'holds no PEM certificate', error);
  }
}

function parseKey(path: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    // An encrypted key lands here too: there is no passphrase setting, the server runs unattended.
    throw invalid('tlsKeyFile', path, 'holds no unencrypted PEM private key', error);
  }
}

/**
 * Reads and checks the files; undefined when HTTPS is not configured. Throws
 * INFERD_ERR_CONFIG_INVALID naming the setting whose file is missing, unreadable or wrong.
 */
export function readTlsOptions(settings: ServerSettings): TlsOptions | undefined {
  const { tlsCertFile, tlsKeyFile, tlsClientCaFile } = settings;
  // The schema allows a certificate only with its key.
  if (tlsCertFile === undefined || tlsKeyFile === undefined) return undefined;
  const cert = readSetting('tlsCertFile', tlsCertFile);
  const key = readSetting('tlsKeyFile', tlsKeyFile);
  const certificate = parseCertificate('tlsCertFile', tlsCertFile, cert);
  if (!certificate.checkPrivateKey(parseKey(tlsKeyFile, key))) {
    throw invalid('tlsKeyFile', tlsKeyFile, `is not the key of the certificate in ${SETTING_NAMES.tlsCertFile} ${tlsCertFile}`);
  }
  const context: SecureContextOptions = { cert, key, minVersion: MIN_TLS_VERSION };
  if (tlsClientCaFile !== undefined) {
    const ca = readSetting('tlsClientCaFile', tlsClientCaFile);
    parseCertificate('tlsClientCaFile', tlsClientCaFile, ca);
    context.ca = ca;
  }
  try {
    // What the server will do with them: catches what the checks above cannot (a bad chain).
    createSecureContext(context);
  } catch (error) {
    throw invalid('tlsCertFile', tlsCertFile, `cannot serve TLS with this certificate and key (${(error as Error).message})`, error);
  }
  return tlsClientCaFile === undefined ? context : { ...context, requestCert: true, rejectUnauthorized: true };
}

/**
 * SIGHUP: re-reads the files into `server`. Connections made from now on get the new
 * certificate; those open keep theirs. A file that fails the checks leaves the old certificate
 * serving and is logged. Returns whether the new files are in use.
 */
export function reloadTls(server: NetServer, settings: ServerSettings, log: TlsLogger): boolean {
  if (!(server instanceof TlsServer)) {
    // Not Node's default for SIGHUP (exit): a hang-up of the terminal must not stop a server.
    log.info({ signal: 'SIGHUP' }, 'SIGHUP ignored: the server does not serve HTTPS (INFERD_TLS_CERT_FILE)');
    return false;
  }
  let options: TlsOptions;
  try {
    options = readTlsOptions(settings)!;
  } catch (error) {
    log.error({ err: error, code: 'INFERD_ERR_CONFIG_INVALID' }, `TLS reload failed, still serving the previous certificate: ${(error as Error).message}`);
    return false;
  }
  // requestCert and rejectUnauthorized are the server's own and unchanged: only the context is replaced.
  server.setSecureContext(options);
  const serial = new X509Certificate(options.cert as Buffer).serialNumber;
  log.info({ signal: 'SIGHUP', serial }, 'TLS certificate reloaded: new connections get it');
  return true;
}

/**
 * A refused handshake (an old TLS version, a missing or untrusted client certificate) is the
 * client's problem: one debug line, never more than that, since scanners make many.
 */
export function logRefusedHandshakes(server: NetServer, log: TlsLogger): void {
  if (!(server instanceof TlsServer)) return;
  server.on('tlsClientError', (error: Error & { code?: string }, socket) => {
    log.debug({ code: error.code, remoteAddress: socket.remoteAddress }, `TLS handshake refused: ${error.message}`);
    socket.destroy();
  });
}
