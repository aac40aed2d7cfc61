/** Webhook delivery against a real HTTP listener: retries, giving up, and a bounded retry list. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { notificationFor } from '../../src/modes/async/notification.js';
import type { AsyncJob } from '../../src/modes/async/queue.js';
import { Webhooks, type WebhookOutcome, type WebhookSettings } from '../../src/modes/async/webhooks.js';
import { SageMakerNotificationSchema } from './sagemaker-notification.js';
import { startWebhookListener, until, type WebhookListener } from './toolkit.js';

let listener: WebhookListener;
before(async () => (listener = await startWebhookListener()));
after(() => listener.close());

const log = pino({ level: 'silent' });
const FAST = { maxAttempts: 3, firstRetryDelayMs: 10, maxDelayMs: 40, attemptTimeoutMs: 2_000, maxPending: 100 };

function job(inferenceId: string, status: AsyncJob['status'] = 'completed'): AsyncJob {
  return {
    inferenceId,
    endpointName: 'churn',
    inputLocation: 's3://in/x.csv',
    inputInline: false,
    contentType: 'text/csv',
    outputLocation: `s3://out/${inferenceId}.out`,
    failureLocation: `s3://out/${inferenceId}-error.out`,
    receivedAtMs: 1_700_000_000_000,
    requestTtlS: 60,
    invocationTimeoutS: 10,
    status,
    attempts: 1,
    failureReason: status === 'completed' ? undefined : 'ClientError: nope',
  };
}

function webhooks(settings: Partial<WebhookSettings>) {
  const counts: Record<WebhookOutcome, number> = { delivered: 0, retried: 0, failed: 0, dropped: 0 };
  const hooks = new Webhooks({ successUrl: listener.url('/ok'), errorUrl: listener.url('/err'), ...FAST, ...settings }, (outcome) => counts[outcome]++, log);
  return { hooks, counts };
}

const note = (j: AsyncJob) => notificationFor(j, { awsRegion: 'local', nowMs: 1_700_000_001_000, outputContentType: 'text/csv' });

describe('Webhooks', () => {
  it('sends completed requests to the success URL and failed ones to the error URL, in SageMaker\'s shape', async () => {
    const { hooks, counts } = webhooks({});
    hooks.send(note(job('w-ok')));
    hooks.send(note(job('w-bad', 'failed')));
    SageMakerNotificationSchema.parse((await listener.waitFor('/ok', 'w-ok')).body);
    SageMakerNotificationSchema.parse((await listener.waitFor('/err', 'w-bad')).body);
    await hooks.close();
    assert.deepEqual(counts, { delivered: 2, retried: 0, failed: 0, dropped: 0 });
  });

  it('gives up after maxAttempts and counts it, without throwing', async () => {
    listener.failNext('/ok', 10);
    const { hooks, counts } = webhooks({});
    hooks.send(note(job('w-down')));
    await until(() => (counts.failed === 1 ? true : undefined), 5_000, 'the notification to be given up');
    assert.equal(listener.deliveries.filter((d) => (d.body as { inferenceId: string }).inferenceId === 'w-down').length, 3);
    assert.equal(counts.retried, 2);
    await hooks.close();
    listener.failNext('/ok', 0);
  });

  it('counts an unreachable listener as failed, and drops what does not fit the retry list', async () => {
    // The retry is an hour away: it cannot come during the test, however slow the machine.
    const hourMs = 3_600_000;
    const hooks = new Webhooks({ successUrl: 'http://127.0.0.1:9/', ...FAST, maxAttempts: 2, firstRetryDelayMs: hourMs, maxDelayMs: hourMs, maxPending: 1 }, (o) => counts[o]++, log);
    const counts: Record<WebhookOutcome, number> = { delivered: 0, retried: 0, failed: 0, dropped: 0 };
    hooks.send(note(job('w-1')));
    hooks.send(note(job('w-2')));
    await until(() => (counts.retried + counts.dropped === 2 ? true : undefined), 5_000, 'both first attempts');
    assert.deepEqual(counts, { delivered: 0, retried: 1, failed: 0, dropped: 1 });
    // Closing gives up the retry still waiting.
    await hooks.close();
    assert.equal(counts.failed, 1);
  });
});
