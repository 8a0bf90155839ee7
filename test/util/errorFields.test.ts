import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { statusCode } from '../../src/util/apiErrors.js';
import { errorFields } from '../../src/util/log.js';

const alreadyExists = () =>
  new ApiException(
    409,
    'HTTP-Code: 409\nMessage: Unknown\nBody: ...\nHeaders: {"authorization":"secret"}',
    JSON.stringify({
      kind: 'Status',
      reason: 'AlreadyExists',
      code: 409,
      message: 'pods "x" already exists',
    }),
    { authorization: 'secret' },
  );

test('client-node errors log as code and Status reason, never the body or headers', () => {
  const err = alreadyExists();
  assert.equal(statusCode(err), 409);
  const fields = errorFields(err);
  assert.deepEqual(fields, {
    error: 'HTTP-Code: 409',
    code: 409,
    reason: 'AlreadyExists',
    statusMessage: 'pods "x" already exists',
  });
  assert.doesNotMatch(JSON.stringify(fields), /secret|Headers|Body/);
  assert.deepEqual(errorFields(new Error('boom')), { error: 'boom' });
  assert.equal(statusCode('nope'), undefined);
});

test('an error wrapping a client-node error logs its own message with the cause code, reason and message', () => {
  const err = new Error('create demo-expert-code-1 failed', { cause: alreadyExists() });
  assert.deepEqual(errorFields(err), {
    error: 'create demo-expert-code-1 failed',
    code: 409,
    reason: 'AlreadyExists',
    statusMessage: 'pods "x" already exists',
  });
});

test('errors that are not HTTP responses keep their whole message and system code', () => {
  const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443\nat line 2'), {
    code: 'ECONNREFUSED',
  });
  assert.deepEqual(errorFields(err), {
    error: 'connect ECONNREFUSED 127.0.0.1:6443\nat line 2',
    code: 'ECONNREFUSED',
  });
  assert.deepEqual(errorFields('plain'), { error: 'plain' });
});
