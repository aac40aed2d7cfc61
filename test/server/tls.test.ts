/**
 * HTTPS through the real CLI: certificates made by openssl, TLS 1.1 refused, mutual TLS with a
 * client CA, and the certificate reloaded on SIGHUP (alone and under --processes 2) while a
 * request on a connection made before goes on.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load-config.js';
import { freePort, spawnServer, waitUntilReady, type Child } from '../child.js';
import { MODELS } from '../helper.js';
import { httpsRequest, issue, makeCa, type HttpsOptions, type KeyPair } from '../tls-fixtures.js';

const ROW = '69,29.3,3,-0.89,-0.45,-0.99,0.06,1.34,-0.49,-0.62,0.49,0.36,0.11,-0.93,-0.03,0.70,-1.34,-0.46,-1.90,-1.29';
const EXPECTED = '{"predictions":[{"label":0,"probabilities":[0.7269222736358643,0.20824843645095825,0.06482937186956406]}]}';
const FIRST_SERIAL = '1001';
const SECOND_SERIAL = '1002';

let dir = '';
let ca: KeyPair;
let caPem: Buffer;
let first: KeyPair;
let second: KeyPair;
let client: { cert: Buffer; key: Buffer };
let strangerClient: { cert: Buffer; key: Buffer };

/** The files the server is configured with; tests copy a certificate in and out of them. */
async function liveFiles(name: string, pair: KeyPair): Promise<KeyPair> {
  const live = { cert: join(dir, `${name}-live.pem`), key: join(dir, `${name}-live.key`) };
  await installCertificate(live, pair);
  return live;
}

async function installCertificate(live: KeyPair, pair: KeyPair): Promise<void> {
  await copyFile(pair.cert, live.cert);
  await copyFile(pair.key, live.key);
}

async function serveTls(live: KeyPair, env: Record<string, string> = {}, argv: readonly string[] = []): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = await spawnServer(['dist/src/main.js', 'serve', ...argv], {
    SAGEMAKER_BIND_TO_PORT: String(port),
    INFERD_MODEL_DIR: MODELS.forest,
    SAGEMAKER_MODEL_SERVER_WORKERS: '1',
    INFERD_TLS_CERT_FILE: live.cert,
    INFERD_TLS_KEY_FILE: live.key,
    ...env,
  }, port);
  const credentials = env.INFERD_TLS_CLIENT_CA_FILE === undefined ? {} : client;
  await waitUntilReady(child, 60_000, () => httpsRequest(port, { ca: caPem, ...credentials }).then((answer) => answer.status));
  return { child, port };
}

async function stop(child: Child): Promise<void> {
  child.process.kill('SIGTERM');
  assert.deepEqual(await child.exited, { code: 0, signal: null }, child.output());
}

/** Polls `probe` until it answers a value; the deadline only keeps a broken server from hanging the suite. */
async function until<T>(probe: () => Promise<T | undefined>, what: string, child: Child): Promise<T> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never saw ${what}:\n${child.output()}`);
}

/** The serials `count` new connections get. */
async function serialsOfNewConnections(port: number, count: number, options: HttpsOptions = {}): Promise<string[]> {
  const answers = [];
  for (let i = 0; i < count; i += 1) answers.push(await httpsRequest(port, { ca: caPem, ...options }));
  for (const answer of answers) assert.equal(answer.status, 200);
  return answers.map((answer) => answer.serial);
}

/** The error a refused handshake (or the alert right after it, in TLS 1.3) gives the client. */
async function refusal(port: number, options: HttpsOptions): Promise<Error & { code?: string }> {
  const outcome = await httpsRequest(port, { ca: caPem, ...options }).then(
    (answer) => assert.fail(`answered ${answer.status}; the connection should have been refused`),
    (error: Error & { code?: string }) => error,
  );
  return outcome;
}

/**
 * An invocation whose body is half sent once this resolves: in flight on its connection, made
 * (or reused) with the certificate `serial` names, until `finish()` sends the rest.
 */
async function halfSentInvocation(port: number, agent: Agent) {
  const body = `${ROW}\n`;
  const half = Math.floor(body.length / 2);
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/invocations',
    ca: caPem,
    agent,
    headers: { 'content-type': 'text/csv', 'content-length': String(Buffer.byteLength(body)) },
  });
  const answered = new Promise<{ status: number; text: string; serial: string }>((resolve, reject) => {
    req.on('response', (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, serial }));
    });
    req.on('error', reject);
  });
  const connected = new Promise<TLSSocket>((resolve) =>
    req.once('socket', (socket) => (req.reusedSocket ? resolve(socket as TLSSocket) : socket.once('secureConnect', () => resolve(socket as TLSSocket)))),
  );
  req.write(body.slice(0, half));
  const socket = await connected;
  return {
    serial: socket.getPeerCertificate().serialNumber,
    finish: () => {
      req.end(body.slice(half));
      return answered;
    },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inferd-tls-'));
  ca = await makeCa(dir, 'inferd-test-ca');
  caPem = await readFile(ca.cert);
  first = await issue(dir, ca, 'server-first', FIRST_SERIAL, 'server');
  second = await issue(dir, ca, 'server-second', SECOND_SERIAL, 'server');
  const clientPair = await issue(dir, ca, 'client', '2001', 'client');
  client = { cert: await readFile(clientPair.cert), key: await readFile(clientPair.key) };
  const strangerCa = await makeCa(dir, 'stranger-ca');
  const strangerPair = await issue(dir, strangerCa, 'stranger-client', '3001', 'client');
  strangerClient = { cert: await readFile(strangerPair.cert), key: await readFile(strangerPair.key) };
});
after(() => rm(dir, { recursive: true, force: true }));

describe('HTTPS', () => {
  it('answers /ping and /invocations with an openssl-made certificate, and refuses TLS 1.1', async () => {
    const { child, port } = await serveTls(await liveFiles('basic', first));
    try {
      const ping = await httpsRequest(port, { ca: caPem });
      assert.deepEqual([ping.status, ping.text, ping.serial], [200, '{"status":"Healthy"}', FIRST_SERIAL]);
      const invocation = await httpsRequest(port, { ca: caPem, method: 'POST', path: '/invocations', headers: { 'content-type': 'text/csv' }, body: ROW });
      assert.equal(invocation.status, 200);
      assert.deepEqual(JSON.parse(invocation.text), JSON.parse(EXPECTED));

      assert.equal((await httpsRequest(port, { ca: caPem, maxVersion: 'TLSv1.2' })).status, 200, 'TLS 1.2 is accepted');
      // SECLEVEL=0 lets this client really offer TLS 1.0/1.1, so the refusal is the server's alert.
      const old = await refusal(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      assert.equal(old.code, 'EPROTO');
      assert.match(old.message, /alert protocol version/);
      // Refusing it stopped nothing: the server still answers.
      assert.equal((await httpsRequest(port, { ca: caPem })).status, 200);
    } finally {
      await stop(child);
    }
  });

  it('with a client CA, refuses clients without a certificate it signed and answers those with one', async () => {
    const { child, port } = await serveTls(await liveFiles('mutual', first), { INFERD_TLS_CLIENT_CA_FILE: ca.cert });
    try {
      const anonymous = await refusal(port, {});
      assert.match(String(anonymous.code), /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|ECONNRESET/, anonymous.message);
      const stranger = await refusal(port, strangerClient);
      assert.match(String(stranger.code), /UNKNOWN_CA|DECRYPT_ERROR|BAD_CERTIFICATE|ECONNRESET/, stranger.message);
      const invocation = await httpsRequest(port, { ...client, ca: caPem, method: 'POST', path: '/invocations', headers: { 'content-type': 'text/csv' }, body: ROW });
      assert.equal(invocation.status, 200);
      assert.deepEqual(JSON.parse(invocation.text), JSON.parse(EXPECTED));
    } finally {
      await stop(child);
    }
  });

  it('SIGHUP: new connections get the new certificate while a request on an older connection completes on it', async () => {
    const live = await liveFiles('reload', first);
    const { child, port } = await serveTls(live);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const long = await halfSentInvocation(port, keepAlive);
      assert.equal(long.serial, FIRST_SERIAL);

      await installCertificate(live, second);
      child.process.kill('SIGHUP');
      await until(
        async () => ((await httpsRequest(port, { ca: caPem })).serial === SECOND_SERIAL ? true : undefined),
        'the new certificate on a new connection',
        child,
      );
      assert.deepEqual(await serialsOfNewConnections(port, 3), [SECOND_SERIAL, SECOND_SERIAL, SECOND_SERIAL]);

      const longAnswer = await long.finish();
      assert.equal(longAnswer.status, 200);
      assert.deepEqual(JSON.parse(longAnswer.text), JSON.parse(EXPECTED));
      assert.equal(longAnswer.serial, FIRST_SERIAL);
      // The old connection stays open and usable, with the certificate it was made with.
      const again = await httpsRequest(port, { ca: caPem, agent: keepAlive });
      assert.deepEqual([again.status, again.reusedSocket, again.serial], [200, true, FIRST_SERIAL]);

      // A reload that fails (a key that is not the certificate's) keeps the certificate serving.
      await copyFile(first.key, live.key);
      child.process.kill('SIGHUP');
      await until(async () => (/TLS reload failed/.test(child.output()) ? true : undefined), 'the failed reload logged', child);
      assert.match(child.output(), /INFERD_TLS_KEY_FILE \(server\.tlsKeyFile\) .*is not the key of the certificate/);
      assert.deepEqual(await serialsOfNewConnections(port, 2), [SECOND_SERIAL, SECOND_SERIAL]);

      // The drain works on HTTPS as on HTTP: a request in flight at SIGTERM gets its answer.
      const inFlight = await halfSentInvocation(port, keepAlive);
      child.process.kill('SIGTERM');
      await until(async () => (/draining/.test(child.output()) ? true : undefined), 'the drain to begin', child);
      const drained = await inFlight.finish();
      assert.deepEqual([drained.status, drained.serial], [200, FIRST_SERIAL]);
      assert.deepEqual(await child.exited, { code: 0, signal: null });
    } finally {
      keepAlive.destroy();
      child.process.kill('SIGTERM');
      await child.exited;
    }
  });

  it('--processes 2: both processes serve HTTPS, and SIGHUP to the primary reloads every one', async () => {
    const live = await liveFiles('cluster', first);
    const { child, port } = await serveTls(live, {}, ['--processes', '2']);
    try {
      await until(async () => (/all 2 server processes ready/.test(child.output()) ? true : undefined), 'both processes ready', child);
      assert.deepEqual(new Set(await serialsOfNewConnections(port, 6)), new Set([FIRST_SERIAL]));

      await installCertificate(live, second);
      child.process.kill('SIGHUP');
      // Each process says it reloaded, with its own pid; neither is the primary.
      const reloadedBy = await until(
        async () => {
          const lines = child.output().split('\n').filter((line) => line.includes('TLS certificate reloaded'));
          const pids = lines.map((line) => Number(/"pid":(\d+)/.exec(line)?.[1]));
          return new Set(pids).size === 2 ? new Set(pids) : undefined;
        },
        'both processes reload',
        child,
      );
      assert.equal(reloadedBy.has(child.process.pid!), false);
      // Connections are spread over the processes: a run of new ones, all with the new serial.
      await until(
        async () => ((await serialsOfNewConnections(port, 6)).every((serial) => serial === SECOND_SERIAL) ? true : undefined),
        'every new connection with the new certificate',
        child,
      );
    } finally {
      await stop(child);
    }
  });

  it('without HTTPS, SIGHUP is ignored with a log line instead of stopping the server', async () => {
    const port = await freePort();
    const child = await spawnServer(['dist/src/main.js', 'serve'], { SAGEMAKER_BIND_TO_PORT: String(port), INFERD_MODEL_DIR: MODELS.forest, SAGEMAKER_MODEL_SERVER_WORKERS: '1' }, port);
    try {
      await waitUntilReady(child, 60_000);
      child.process.kill('SIGHUP');
      await until(async () => (/SIGHUP ignored/.test(child.output()) ? true : undefined), 'SIGHUP logged', child);
      assert.equal((await fetch(`${child.url}/ping`)).status, 200);
    } finally {
      await stop(child);
    }
  });
});

describe('HTTPS settings', () => {
  it('need a certificate and its key together, and a client CA only with them', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ env });
      } catch (error) {
        if (error instanceof ConfigError) return error.problems.join('\n');
        throw error;
      }
      return '';
    };
    assert.match(problems({ INFERD_TLS_CERT_FILE: '/x/cert.pem' }), /server\.tlsKeyFile: is required.*INFERD_TLS_KEY_FILE/);
    assert.match(problems({ INFERD_TLS_KEY_FILE: '/x/key.pem' }), /server\.tlsCertFile: is required.*INFERD_TLS_CERT_FILE/);
    assert.match(problems({ INFERD_TLS_CLIENT_CA_FILE: '/x/ca.pem' }), /server\.tlsClientCaFile \/ INFERD_TLS_CLIENT_CA_FILE: needs HTTPS/);
    assert.equal(problems({ INFERD_TLS_CERT_FILE: '/x/cert.pem', INFERD_TLS_KEY_FILE: '/x/key.pem', INFERD_TLS_CLIENT_CA_FILE: '/x/ca.pem' }), '');
  });

  /** Starts the CLI with these files; it must exit 1 before listening, naming the setting. */
  async function refusedAtStart(env: Record<string, string>, argv: readonly string[] = []): Promise<string> {
    const child = await spawnServer(['dist/src/main.js', 'serve', '--port', String(await freePort()), '--model-dir', MODELS.forest, ...argv], env);
    assert.equal((await child.exited).code, 1, child.output());
    assert.doesNotMatch(child.output(), /Server listening/);
    return child.output();
  }

  it('exit 1 before listening when a file is missing, is not PEM, or the key is not the certificate\'s', async () => {
    const missing = await refusedAtStart({ INFERD_TLS_CERT_FILE: join(dir, 'absent.pem'), INFERD_TLS_KEY_FILE: first.key });
    assert.match(missing, /\[INFERD_ERR_CONFIG_INVALID\] INFERD_TLS_CERT_FILE \(server\.tlsCertFile\) \S+absent\.pem: cannot be read \(ENOENT/);

    const garbage = join(dir, 'garbage.pem');
    await writeFile(garbage, 'not a certificate\n');
    const notPem = await refusedAtStart({ INFERD_TLS_CERT_FILE: first.cert, INFERD_TLS_KEY_FILE: garbage });
    assert.match(notPem, /\[INFERD_ERR_CONFIG_INVALID\] INFERD_TLS_KEY_FILE \(server\.tlsKeyFile\) \S+garbage\.pem: holds no unencrypted PEM private key/);

    const badCa = await refusedAtStart({ INFERD_TLS_CERT_FILE: first.cert, INFERD_TLS_KEY_FILE: first.key, INFERD_TLS_CLIENT_CA_FILE: garbage });
    assert.match(badCa, /\[INFERD_ERR_CONFIG_INVALID\] INFERD_TLS_CLIENT_CA_FILE \(server\.tlsClientCaFile\) \S+garbage\.pem: holds no PEM certificate/);

    // Under --processes the primary checks the files once, before any process starts.
    const mismatch = await refusedAtStart({ INFERD_TLS_CERT_FILE: first.cert, INFERD_TLS_KEY_FILE: second.key }, ['--processes', '2']);
    assert.match(mismatch, /\[INFERD_ERR_CONFIG_INVALID\] INFERD_TLS_KEY_FILE \(server\.tlsKeyFile\) \S+server-second\.key: is not the key of the certificate in INFERD_TLS_CERT_FILE/);
    assert.equal(mismatch.match(/INFERD_ERR_CONFIG_INVALID/g)?.length, 1);
  });
});
