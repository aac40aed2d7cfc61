/**
 * The credential files, read once at start and validated as the configuration is: a bad file
 * stops the server with INFERD_ERR_CONFIG_INVALID naming the file and the field, never a value
 * from it (JSON.parse's own message quotes the text, so it is not passed on).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../config/load-config.js';
import { SCOPES } from './route-access.js';

/** The runtime API's operations, as IAM names them; a key may be limited to some. */
export const OPERATIONS = ['InvokeEndpoint', 'InvokeEndpointWithResponseStream', 'InvokeEndpointAsync'] as const;
export type Operation = (typeof OPERATIONS)[number];

const SigV4FileSchema = z
  .object({
    keys: z
      .array(
        z
          .object({
            // Letters, digits, `_` and `-`: the Authorization header's Credential splits on `/`.
            accessKeyId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be 1-128 letters, digits, _ or -'),
            secretAccessKey: z.string().min(1),
            /** Model names (`X-Amzn-SageMaker-Target-Model`, else the default model); `*` any, `prefix*` a prefix. */
            models: z.array(z.string().min(1)).min(1),
            routes: z.array(z.enum(OPERATIONS)).min(1).default([...OPERATIONS]),
          })
          .strict(),
      )
      .min(1),
  })
  .strict()
  .superRefine(({ keys }, ctx) => {
    const seen = new Set<string>();
    keys.forEach(({ accessKeyId }, i) => {
      if (seen.has(accessKeyId)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'accessKeyId'], message: 'is listed twice' });
      seen.add(accessKeyId);
    });
  });

const TokenFileSchema = z
  .object({
    tokens: z
      .array(
        z
          .object({
            sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 of the token, 64 hex digits'),
            scopes: z.array(z.enum(SCOPES)).min(1),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type SigV4Key = z.output<typeof SigV4FileSchema>['keys'][number];
export type TokenEntry = z.output<typeof TokenFileSchema>['tokens'][number];

function readCredentialFile<T extends z.ZodType>(path: string, setting: string, schema: T): z.output<T> {
  const where = `${setting} file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`${where}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be read'}`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError([`${where}: not valid JSON`]);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new ConfigError(result.error.issues.map((issue) => `${where}: ${issue.path.join('.')}: ${issue.message}`));
  return result.data;
}

export const readSigV4Keys = (path: string): readonly SigV4Key[] =>
  readCredentialFile(path, 'INFERD_AUTH_SIGV4_CREDENTIALS', SigV4FileSchema).keys;

export const readTokens = (path: string): readonly TokenEntry[] => readCredentialFile(path, 'INFERD_AUTH_TOKENS', TokenFileSchema).tokens;
