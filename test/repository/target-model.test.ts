import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { targetModelPath } from '../../src/repository/target-model.js';

describe('targetModelPath', () => {
  const accepted: [string, string][] = [
    ['churn.tar.gz', 'churn.tar.gz'],
    ['customers/42/model.tar.gz', 'customers/42/model.tar.gz'],
    ['mlp', 'mlp'],
    ['./mlp', 'mlp'],
    ['././mlp', 'mlp'],
    ['a/./b/.', 'a/b'],
    ['..hidden/x', '..hidden/x'],
    ['model..v2.tgz', 'model..v2.tgz'],
    ['with space/é.tgz', 'with space/é.tgz'],
    ['C:model', 'C:model'],
    ['x'.repeat(1024), 'x'.repeat(1024)],
  ];
  for (const [target, expected] of accepted) {
    it(`accepts ${JSON.stringify(target.slice(0, 40))} as ${JSON.stringify(expected.slice(0, 40))}`, () => {
      assert.equal(targetModelPath(target), expected);
    });
  }

  const refused: [string, string, RegExp][] = [
    ['', 'empty', /empty/],
    ['.', 'the repository itself', /repository itself/],
    ['./', 'the repository itself, with a slash', /empty segment/],
    ['x'.repeat(1025), 'too long', /longer than 1024/],
    ['a\0b', 'NUL', /control character/],
    ['a\nb', 'newline', /control character/],
    ['a\u007fb', 'DEL', /control character/],
    ['a\\b', 'backslash', /backslash/],
    ['..\\evil', 'Windows-style parent', /backslash/],
    ['/etc/passwd', 'absolute', /absolute/],
    ['//server/share', 'UNC-like absolute', /absolute/],
    ['..', 'parent', /"\.\."/],
    ['../evil', 'parent first', /"\.\."/],
    ['a/../../evil', 'parent inside', /"\.\."/],
    ['a/..', 'parent last', /"\.\."/],
    ['a//b', 'doubled slash', /empty segment/],
    ['mlp/', 'trailing slash', /empty segment/],
  ];
  for (const [target, why, message] of refused) {
    it(`refuses ${JSON.stringify(target.slice(0, 40))} (${why})`, () => {
      assert.throws(() => targetModelPath(target), { name: 'InferdError', code: 'INFERD_ERR_MODEL_SOURCE_INVALID', message });
    });
  }
});
