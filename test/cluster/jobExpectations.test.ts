import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Expectations } from '../../src/cluster/jobs/expectations.js';

test('expectations hold a controller back until the informer has shown its own creates and deletes', () => {
  const e = new Expectations();
  assert.equal(e.satisfied('ns/j'), true);
  e.observe('ns/j', 'old', false); // a pod that existed before
  e.expectCreations('ns/j', 2);
  assert.equal(e.satisfied('ns/j'), false);
  e.observe('ns/j', 'a', false);
  e.observe('ns/j', 'a', false); // an update of the same pod is not a second create
  assert.equal(e.satisfied('ns/j'), false);
  e.observe('ns/j', 'b', false);
  assert.equal(e.satisfied('ns/j'), true);
  e.expectDeletions('ns/j', ['a']);
  assert.equal(e.satisfied('ns/j'), false);
  e.observe('ns/j', 'a', true);
  assert.equal(e.satisfied('ns/j'), true);
  e.expectCreations('ns/j', 1);
  e.creationFailed('ns/j');
  assert.equal(e.satisfied('ns/j'), true);
});
