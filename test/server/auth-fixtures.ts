/** Credential files for the authentication tests: fresh random secrets and tokens each run. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';

export interface AccessKey {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface AuthFiles {
  readonly sigv4File: string;
  readonly tokensFile: string;
  /** `full`: any model, any operation; `forestOnly`: InvokeEndpoint on churn-forest only. */
  readonly keys: { readonly full: AccessKey; readonly forestOnly: AccessKey };
  /** One token per scope. */
  readonly tokens: { readonly invoke: string; readonly metrics: string; readonly manage: string };
  /** Every secret and token, for scanning what the server wrote. */
  readonly secrets: readonly string[];
}

const random = (bytes: number) => randomBytes(bytes).toString('base64url');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export async function writeAuthFiles(options: { tokens?: boolean; sigv4?: boolean } = {}): Promise<AuthFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'inferd-auth-'));
  const keys = {
    full: { accessKeyId: `AKID${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: random(30) },
    forestOnly: { accessKeyId: `AKID${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: random(30) },
  };
  const tokens = { invoke: random(32), metrics: random(32), manage: random(32) };
  const sigv4File = join(dir, 'sigv4.json');
  const tokensFile = join(dir, 'tokens.json');
  if (options.sigv4 !== false) {
    await writeFile(
      sigv4File,
      JSON.stringify({
        keys: [
          { ...keys.full, models: ['*'] },
          { ...keys.forestOnly, models: ['churn-forest'], routes: ['InvokeEndpoint'] },
        ],
      }),
    );
  }
  if (options.tokens !== false) {
    const entries = Object.entries(tokens).map(([scope, token]) => ({ sha256: sha256(token), scopes: [scope] }));
    await writeFile(tokensFile, JSON.stringify({ tokens: entries }));
  }
  return { sigv4File, tokensFile, keys, tokens, secrets: [keys.full.secretAccessKey, keys.forestOnly.secretAccessKey, ...Object.values(tokens)] };
}

export const authEnv = (files: AuthFiles): Record<string, string> => ({
  INFERD_AUTH_SIGV4_CREDENTIALS: files.sigv4File,
  INFERD_AUTH_TOKENS: files.tokensFile,
});

export function runtimeClient(url: string, key: AccessKey, options: { maxAttempts?: number; systemClockOffset?: number } = {}): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({ endpoint: url, region: 'us-east-1', credentials: key, ...options });
}
