import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Expectations } from '../../src/cluster/jobs/expectations.js';
import { WorkQueue } from '../../src/cluster/workQueue.js';

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

test('the work queue handles a key once per burst, never twice at once, and retries failures', async () => {
  const calls: string[] = [];
  let running = 0;
  let overlap = false;
  const runningKeys = new Set<string>();
  let sameKeyTwice = false;
  let failOnce = true;
  let release: () => void = () => {};
  const done = new Promise<void>((r) => (release = r));
  const q = new WorkQueue(
    'test',
    async (key) => {
      running++;
      if (running > 1) overlap = true;
      if (runningKeys.has(key)) sameKeyTwice = true;
      runningKeys.add(key);
      calls.push(key);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      runningKeys.delete(key);
      if (key === 'b' && failOnce) {
        failOnce = false;
        throw new Error('boom');
      }
      if (key === 'b') release();
    },
    10,
  );
  for (let i = 0; i < 5; i++) q.add('a');
  q.add('b');
  await new Promise((r) => setTimeout(r, 5));
  q.add('a'); // while 'a' runs: once more afterwards
  await Promise.race([
    done,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no retry')), 5000)),
  ]);
  await new Promise((r) => setTimeout(r, 50));
  q.stop();
  assert.equal(calls.filter((k) => k === 'a').length, 2);
  assert.equal(calls.filter((k) => k === 'b').length, 2);
  assert.equal(overlap, true, 'different keys run side by side');
  assert.equal(sameKeyTwice, false, 'one key never runs twice at once');
});
