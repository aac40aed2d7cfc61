#!/usr/bin/env node
/**
 * The only file that listens and handles signals. `inferd serve` and SageMaker's bare `serve`
 * (docker run IMAGE serve) both land here.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { buildApp } from './app.js';
import { runSimulateCommand } from './autoscale/simulate-cli.js';
import { isClusterWorker, joinCluster, runPrimary } from './cluster.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import { InferdError } from './errors.js';
import { runTransformCommand } from './modes/transform/cli.js';
import { runMonitorCommand } from './monitor/cli.js';
import { readTlsOptions, reloadTls } from './server/tls.js';
import type { StorageSettings } from './storage/object-store.js';

const USAGE = `Usage: inferd serve [--model-dir DIR] [--port N] [--instances N] [--processes N|auto] [--config FILE]
       inferd transform --input URI --output URI [options]   (inferd transform --help)
       inferd monitor baseline|check ...   (inferd monitor --help)
       inferd autoscale simulate --trace FILE.csv --policy FILE.json [--out DIR]   (inferd autoscale --help)

Serves the model in DIR (an .onnx file, or a TF.js model.json) over SageMaker's container contract
(GET /ping, POST /invocations).
Every setting can also come from the environment; see docs/configuration.md.`;

function parseCommandLine(argv: readonly string[]) {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      'model-dir': { type: 'string' },
      port: { type: 'string' },
      instances: { type: 'string' },
      processes: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  return { command: positionals[0], extra: positionals.slice(1), values };
}

/**
 * Node's warnings (the AWS SDK's NodeVersionSupportWarning among them) become log lines, so
 * every line the server writes is JSON. Warnings are emitted on the next tick, so those raised
 * while the app is built still arrive here.
 */
function logWarnings(log: { warn(object: object, message: string): void }): void {
  // No listener: warnings are off (--no-warnings, NODE_NO_WARNINGS=1), and stay off.
  if (process.listenerCount('warning') === 0) return;
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    log.warn({ warning: { name: warning.name, code: warning.code } }, warning.message);
  });
}

async function serve(flags: Record<string, string | undefined>, configFile: string | undefined): Promise<void> {
  // A hang-up that reaches a process still starting (sent to the whole process group) must not
  // kill it, as Node's default would: it reads the files it is about to read anyway.
  const whileStarting = () => {};
  process.on('SIGHUP', whileStarting);
  const config = loadConfig({ flags, env: process.env, configFile });
  if (config.server.processes > 1 && !isClusterWorker()) {
    // A bad TLS file stops the server here, once, rather than in every process.
    readTlsOptions(config.server);
    const log = pino({ level: config.server.logLevel });
    logWarnings(log);
    process.exit(await runPrimary(config.server.processes, config.server.shutdownTimeoutS, log));
  }
  const { http, start, cluster, drain } = buildApp(config, { joinCluster: isClusterWorker() ? joinCluster : undefined });
  logWarnings(http.log);
  // Reloads the certificate; without HTTPS, a log line instead of Node's default (exit).
  process.on('SIGHUP', () => reloadTls(http.server, config.server, http.log));
  process.off('SIGHUP', whileStarting);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    http.log.info({ signal }, 'draining: refusing new requests, finishing those in flight');
    // Not unref'd: it keeps the process alive until the drain ends, so a connection that never
    // closes ends in this exit 1, never in an event loop that empties before the workers stop.
    setTimeout(() => {
      http.log.error(`drain took longer than ${config.server.shutdownTimeoutS} s; exiting anyway`);
      process.exit(1);
    }, config.server.shutdownTimeoutS * 1000);
    try {
      await drain();
    } catch (error) {
      http.log.error({ err: error }, 'the drain failed; exiting');
      process.exit(1);
    }
    http.log.info('drained; exiting');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  // Listen first: SageMaker wants connections accepted (and /ping answered 503) while loading.
  try {
    // Also opens the capture spool (onReady): a port in use or an unusable spool stops here.
    await http.listen({ port: config.server.port, host: config.server.host });
  } catch (error) {
    http.log.fatal({ code: 'INFERD_ERR_CONFIG_INVALID' }, `cannot start serving: ${(error as Error).message}`);
    process.exit(1);
  }
  try {
    await start();
  } catch (error) {
    const code = error instanceof InferdError ? error.code : 'INFERD_ERR_MODEL_LOAD_FAILED';
    http.log.fatal({ code }, (error as Error).message);
    process.exit(1);
  }
  cluster?.reportReady();
}

async function main(): Promise<void> {
  if (process.argv[2] === 'transform') {
    const io = { stdout: (text: string) => process.stdout.write(text), stderr: process.stderr, env: process.env };
    // Exit explicitly: the S3 client's sockets would otherwise hold the process a while.
    process.exit(await runTransformCommand(process.argv.slice(3), io));
  }
  if (process.argv[2] === 'monitor') {
    const io = { stdout: (text: string) => process.stdout.write(text), stderr: (text: string) => process.stderr.write(text) };
    let storage: StorageSettings = {};
    try {
      storage = loadConfig({ env: process.env }).storage;
    } catch (error) {
      // The monitor needs only the S3 settings; the server's own settings may be absent or partial here.
      if (!(error instanceof ConfigError)) throw error;
    }
    process.exitCode = await runMonitorCommand(process.argv.slice(3), io, storage);
    return;
  }
  if (process.argv[2] === 'autoscale') {
    process.exitCode = await runSimulateCommand(process.argv.slice(3));
    return;
  }
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    console.error(`inferd: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(1);
  }
  const { command, extra, values } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (command !== 'serve' || extra.length > 0) {
    console.error(`inferd: ${command === undefined ? 'missing command' : `unknown command "${[command, ...extra].join(' ')}"`}\n\n${USAGE}`);
    process.exit(1);
  }
  const { config: configFile, help: _help, ...flags } = values;
  try {
    await serve(flags, configFile);
  } catch (error) {
    // A TLS file that cannot be used is an invalid setting too (src/server/tls.ts).
    if (error instanceof ConfigError || (error instanceof InferdError && error.code === 'INFERD_ERR_CONFIG_INVALID')) {
      console.error(`inferd: [INFERD_ERR_CONFIG_INVALID] ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}

await main();
