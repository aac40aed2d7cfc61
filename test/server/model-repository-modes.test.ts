/**
 * The target model follows the request through every mode, against the real server and real
 * models, with a local-directory repository beside the `--model-dir` default model (churn-forest):
 * async inference runs on the model its submission named, `inferd transform --target-model`
 * (in-process and against the server) writes that model's outputs, data capture records carry
 * `eventMetadata.targetModel`, and `/models` lists the repository models loaded.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runTransformCommand } from '../../src/modes/transform/cli.js';
import { finished, submitAsync } from '../async/toolkit.js';
import { decode, filesUnder, parseRecords } from '../capture/records.js';
import { MODELS, invoke, loadReference, startServer, type Reference, type TestServer } from '../helper.js';
import { CSV, TARGET_MODEL, assertAnswers, buildLocalRepository, listModels, toCsv, type LocalRepository } from './model-repository-fixtures.js';

const MLP_ARCHIVE = 'customers/42/model.tar.gz';

let work: string;
let repo: LocalRepository;
let ref: Reference;

before(async () => {
  ref = await loadReference();
  work = await mkdtemp(join(tmpdir(), 'inferd-model-repository-modes-'));
  repo = await buildLocalRepository(work);
});
after(() => rm(work, { recursive: true, force: true }));

describe('the target model follows the request', () => {
  let server: TestServer;
  let captureDir: string;

  before(async () => {
    captureDir = join(work, 'capture');
    server = await startServer(MODELS.forest, {
      env: {
        INFERD_MODEL_REPOSITORY: repo.root,
        INFERD_MODEL_CACHE_DIR: repo.cacheDir,
        INFERD_ASYNC_OUTPUT_PATH: join(work, 'async', 'out'),
        INFERD_ASYNC_STATE_DIR: join(work, 'async', 'state'),
        INFERD_CAPTURE_ENABLED: 'true',
        INFERD_CAPTURE_DESTINATION: `file://${captureDir}`,
        INFERD_CAPTURE_SAMPLING_PERCENTAGE: '100',
        INFERD_CAPTURE_SPOOL_DIR: join(work, 'spool'),
        INFERD_ENDPOINT_NAME: 'ep',
      },
    });
  });
  after(() => server?.http.close());

  it('async inference runs on the model X-Amzn-SageMaker-Target-Model names, not the default model', async () => {
    const submit = (target: string | undefined) =>
      submitAsync(
        server.url,
        { 'content-type': 'text/csv', 'x-amzn-sagemaker-accept': 'text/csv', ...(target !== undefined && { [TARGET_MODEL]: target }) },
        toCsv(ref.rows),
        '/endpoints/ep/async-invocations',
      );
    for (const [target, kind] of [
      [MLP_ARCHIVE, 'mlp'],
      ['mlp', 'mlp'],
      [undefined, 'forest'],
    ] as const) {
      const accepted = await submit(target);
      assert.equal(accepted.status, 202, JSON.stringify(accepted.json));
      const done = await finished(server.url, accepted.json.InferenceId as string);
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assertAnswers(kind, await readFile(done.outputLocation.replace(/^file:\/\//, ''), 'utf8'), ref, `async ${target ?? 'default'}`);
    }
    // A target no repository could hold is refused at submission, as the runtime API does.
    const refused = await submit('../x');
    assert.equal(refused.status, 400);
    assert.equal(refused.headers.get('x-amzn-errortype'), 'ValidationError');
    assert.match(String(refused.json.Message), /^INFERD_ERR_MODEL_SOURCE_INVALID: /);
    // Models are not loaded to accept a request (an accept-only instance never loads one): a
    // target the repository does not hold fails the request when it runs, with the reason.
    const missing = await submit('customers/43/model.tar.gz');
    assert.equal(missing.status, 202);
    const failed = await finished(server.url, missing.json.InferenceId as string);
    assert.equal(failed.status, 'failed');
    assert.match(String(failed.failureReason), /INFERD_ERR_MODEL_NOT_FOUND|does not exist|names nothing|not found/i);
  });

  it('data capture records name the target model of each request', async () => {
    const sent = [
      { id: 'with-archive', target: MLP_ARCHIVE },
      { id: 'with-directory', target: 'forest' },
      { id: 'without', target: undefined },
    ];
    for (const { id, target } of sent) {
      const headers = { ...CSV, 'x-amzn-sagemaker-inference-id': id, ...(target !== undefined && { [TARGET_MODEL]: target }) };
      const answer = await invoke(server.url, toCsv(ref.rows), headers, '/endpoints/ep/invocations');
      assert.equal(answer.status, 200, answer.text);
    }
    // Closing the server flushes the capture.
    await server.http.close();
    const records = (await Promise.all((await filesUnder(captureDir)).map((file) => readFile(file, 'utf8')))).flatMap(parseRecords);
    const byId = new Map(records.map((record) => [record.eventMetadata.inferenceId, record]));
    for (const { id, target } of sent) {
      const record = byId.get(id);
      assert.ok(record, `a record of ${id}`);
      assert.equal(record.eventMetadata.targetModel, target, id);
    }
    // And what was captured is the named model's answer.
    assertAnswers('mlp', decode(byId.get('with-archive')!.captureData.endpointOutput!).toString('utf8'), ref, 'captured');
    assertAnswers('forest', decode(byId.get('with-directory')!.captureData.endpointOutput!).toString('utf8'), ref, 'captured');
  });
});

describe('/models lists the repository models loaded', () => {
  it('with modelName, modelUrl, state and footprintBytes, beside the default model', async (t) => {
    const server = await startServer(MODELS.forest, { env: { INFERD_MODEL_REPOSITORY: repo.root, INFERD_MODEL_CACHE_DIR: repo.cacheDir } });
    t.after(() => server.http.close());
    for (const target of [MLP_ARCHIVE, 'mlp']) {
      assert.equal((await invoke(server.url, toCsv(ref.rows), { ...CSV, [TARGET_MODEL]: target })).status, 200);
    }
    const listed = await listModels(server.url);
    assert.deepEqual(
      listed.map(({ modelName, modelUrl, state }) => ({ modelName, modelUrl, state })),
      [
        { modelName: 'churn-forest', modelUrl: MODELS.forest, state: 'ready' },
        { modelName: MLP_ARCHIVE, modelUrl: join(repo.root, MLP_ARCHIVE), state: 'ready' },
        { modelName: 'mlp', modelUrl: join(repo.root, 'mlp'), state: 'ready' },
      ],
    );
    const onnxBytes = (await readFile(join(MODELS.mlp, 'model.onnx'))).length;
    for (const model of listed) assert.ok((model.footprintBytes ?? 0) >= onnxBytes, `${model.modelName}: at least its .onnx file`);
    // One model by name too.
    const one = (await (await fetch(`${server.url}/models/${encodeURIComponent('mlp')}`)).json()) as { modelName: string; state: string };
    assert.deepEqual([one.modelName, one.state], ['mlp', 'ready']);
  });
});

describe('inferd transform --target-model', () => {
  let input: string;
  before(async () => {
    input = join(work, 'transform-in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'rows.csv'), toCsv(ref.rows));
  });

  const transform = async (args: readonly string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await runTransformCommand(args, {
      stdout: (text) => (stdout += text),
      stderr: { write: (text: string) => (stderr += text) },
      env: {
        SAGEMAKER_CONTAINER_LOG_LEVEL: 'silent',
        SAGEMAKER_MODEL_SERVER_WORKERS: '1',
        INFERD_MODEL_REPOSITORY: repo.root,
        INFERD_MODEL_CACHE_DIR: repo.cacheDir,
      },
    });
    return { code, stdout, stderr };
  };
  const jobArgs = (output: string) => ['--input', input, '--output', output, '--content-type', 'text/csv', '--accept', 'text/csv', '--split-type', 'Line'];

  it('in-process, writes the outputs of the repository model it names', async () => {
    for (const [target, kind] of [
      [MLP_ARCHIVE, 'mlp'],
      ['customers/7/model.tar.gz', 'forest'],
    ] as const) {
      const output = await mkdtemp(join(work, 'transform-out-'));
      const run = await transform(['--target-model', target, ...jobArgs(output)]);
      assert.equal(run.code, 0, run.stderr);
      assertAnswers(kind, await readFile(join(output, 'rows.csv.out'), 'utf8'), ref, `transform ${target}`);
    }
    // A target the repository refuses fails the job before any output.
    const output = await mkdtemp(join(work, 'transform-out-'));
    const refused = await transform(['--target-model', '../x', ...jobArgs(output)]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /TargetModel "\.\.\/x" contains a "\.\." segment/);
  });

  it('against the server (--endpoint), sends each mini-batch to the model it names', async (t) => {
    const server = await startServer(MODELS.forest, { env: { INFERD_MODEL_REPOSITORY: repo.root, INFERD_MODEL_CACHE_DIR: repo.cacheDir } });
    t.after(() => server.http.close());
    const output = await mkdtemp(join(work, 'transform-out-'));
    const run = await transform(['--endpoint', server.url, '--target-model', MLP_ARCHIVE, ...jobArgs(output)]);
    assert.equal(run.code, 0, run.stderr);
    assertAnswers('mlp', await readFile(join(output, 'rows.csv.out'), 'utf8'), ref, 'transform --endpoint');
    assert.deepEqual(
      (await listModels(server.url)).map((model) => model.modelName),
      ['churn-forest', MLP_ARCHIVE],
    );
  });
});
