import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { apiErrorFields, statusCode } from '../../src/util/apiErrors.js';

test('client-node errors log as code and Status reason, never the body or headers', () => {
  const body = JSON.stringify({
    kind: 'Status',
    reason: 'AlreadyExists',
    code: 409,
    message: 'pods "x" already exists',
  });
  const err = new ApiException(
    409,
    'HTTP-Code: 409\nMessage: Unknown\nBody: ...\nHeaders: {"authorization":"secret"}',
    body,
    {},
  );
  assert.equal(statusCode(err), 409);
  const fields = apiErrorFields(err);
  assert.deepEqual(fields, { error: 'HTTP-Code: 409', code: 409, reason: 'AlreadyExists' });
  assert.deepEqual(apiErrorFields(new Error('boom')), { error: 'boom' });
  assert.equal(statusCode('nope'), undefined);
});
