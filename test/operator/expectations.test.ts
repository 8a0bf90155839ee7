import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Expectations } from '../../src/operator/expectations.js';

test('a run with creates in flight is not satisfied until the informer has seen them', () => {
  const e = new Expectations();
  assert.equal(e.satisfied('ml/demo'), true);
  e.expectCreate('ml/demo', 'demo-expert-code-1');
  e.expectCreate('ml/demo', 'demo-expert-math-1');
  assert.equal(e.satisfied('ml/demo'), false);
  assert.equal(e.satisfied('ml/other'), true, 'per run');
  e.observedCreate('ml/demo', 'demo-expert-code-1');
  assert.equal(e.satisfied('ml/demo'), false);
  e.observedCreate('ml/demo', 'demo-expert-math-1');
  assert.equal(e.satisfied('ml/demo'), true);
});

test('deletes in flight are expectations too', () => {
  const e = new Expectations();
  e.expectDelete('ml/demo', 'demo-mix');
  assert.deepEqual(e.pending('ml/demo'), { creates: [], deletes: ['demo-mix'] });
  assert.equal(e.satisfied('ml/demo'), false);
  e.observedDelete('ml/demo', 'demo-mix');
  assert.equal(e.satisfied('ml/demo'), true);
});

test('expectations expire after the TTL, so a lost event cannot wedge a run', () => {
  let now = 0;
  const e = new Expectations(1000, () => now);
  e.expectCreate('ml/demo', 'x');
  now = 400;
  assert.equal(e.expiresIn('ml/demo'), 600);
  assert.equal(e.satisfied('ml/demo'), false);
  now = 1000;
  assert.equal(e.satisfied('ml/demo'), true);
});
