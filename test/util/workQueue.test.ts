import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runWorkers, WorkQueue } from '../../src/util/workQueue.js';

test('a key added many times while it waits is processed once', async () => {
  const q = new WorkQueue();
  q.add('a');
  q.add('b');
  q.add('a');
  q.add('a');
  assert.equal(q.len(), 2);
  assert.equal(await q.get(), 'a');
  assert.equal(await q.get(), 'b');
  assert.equal(q.len(), 0);
  q.shutDown();
});

test('a key is never handed to two workers at once; re-added while processing, it comes back after done()', async () => {
  const q = new WorkQueue();
  q.add('a');
  const first = await q.get();
  q.add('a'); // an event arrives while a worker has it
  assert.equal(q.len(), 0, 'not handed out again while processing');
  let second: string | undefined;
  const waiting = q.get().then((k) => (second = k));
  await new Promise((r) => setImmediate(r));
  assert.equal(second, undefined);
  q.done(first as string);
  await waiting;
  assert.equal(second, 'a');
  q.shutDown();
});

test('waiting workers get keys as they arrive and undefined on shutdown', async () => {
  const q = new WorkQueue();
  const got = q.get();
  q.add('x');
  assert.equal(await got, 'x');
  const pending = q.get();
  q.shutDown();
  assert.equal(await pending, undefined);
});

test('failures back off exponentially per key; forget() starts over', () => {
  let now = 0;
  const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 1000, now: () => now });
  assert.equal(q.nextDelay('a'), 5);
  q.addRateLimited('a');
  assert.equal(q.nextDelay('a'), 10);
  q.addRateLimited('a');
  assert.equal(q.nextDelay('a'), 20);
  assert.equal(q.nextDelay('b'), 5, 'per key');
  for (let i = 0; i < 20; i++) q.addRateLimited('a');
  assert.equal(q.nextDelay('a'), 1000, 'capped');
  q.forget('a');
  assert.equal(q.nextDelay('a'), 5);
  now += 1;
  q.shutDown();
});

test('the global token bucket limits rate-limited adds across keys', () => {
  const now = 0;
  const q = new WorkQueue({ baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
  q.addRateLimited('a');
  q.addRateLimited('b');
  assert.equal(q.nextDelay('c'), 100, 'bucket empty: one token takes 100 ms at 10 qps');
  q.shutDown();
});

test('addAfter delivers later, and the earlier of two timers wins', async (t) => {
  // Mocked timers: the wall clock of a busy machine once took 753 ms for the 10 ms timer.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let clock = 0;
  const q = new WorkQueue({ now: () => clock });
  q.addAfter('a', 200);
  q.addAfter('a', 10);
  clock = 9;
  t.mock.timers.tick(9);
  assert.equal(q.len(), 0, 'not before its time');
  clock = 10;
  t.mock.timers.tick(1);
  assert.equal(await q.get(), 'a');
  q.done('a');
  clock = 300;
  t.mock.timers.tick(290);
  assert.equal(q.len(), 0, 'the later timer was dropped: one delivery');
  q.shutDown();
});

test('the depth callback follows the number of waiting keys', async () => {
  const depths: number[] = [];
  const q = new WorkQueue({ onDepth: (d) => depths.push(d) });
  q.add('a');
  q.add('b');
  await q.get();
  assert.deepEqual(depths, [1, 2, 1]);
  q.shutDown();
});

test('runWorkers handles a key once per burst, never twice at once, side by side across keys, and retries failures', async () => {
  const calls: string[] = [];
  let running = 0;
  let overlap = false;
  const runningKeys = new Set<string>();
  let sameKeyTwice = false;
  let failOnce = true;
  let release: () => void = () => {};
  const done = new Promise<void>((r) => (release = r));
  const q = new WorkQueue({ baseDelayMs: 10 });
  const loops = runWorkers(q, 'test', 4, async (key) => {
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
  });
  for (let i = 0; i < 5; i++) q.add('a');
  q.add('b');
  await new Promise((r) => setTimeout(r, 5));
  q.add('a'); // while 'a' runs: once more afterwards
  await Promise.race([
    done,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no retry')), 5000)),
  ]);
  await new Promise((r) => setTimeout(r, 50));
  q.shutDown();
  await loops;
  assert.equal(calls.filter((k) => k === 'a').length, 2);
  assert.equal(calls.filter((k) => k === 'b').length, 2);
  assert.equal(overlap, true, 'different keys run side by side');
  assert.equal(sameKeyTwice, false, 'one key never runs twice at once');
});

test('runWorkers reports each key with its result and duration, requeues on request, and drops keys while inactive', async () => {
  const q = new WorkQueue({ baseDelayMs: 10 });
  const results: [string, string][] = [];
  let active = true;
  let handled = 0;
  const loops = runWorkers(
    q,
    'test',
    1,
    async (key) => {
      handled++;
      if (key === 'boom') throw new Error('boom');
      if (key === 'again' && handled === 1) return { requeueAfterMs: 5, result: 'requeue' as const };
      return key === 'skip' ? { result: 'skipped' as const } : undefined;
    },
    {
      active: () => active,
      onResult: (key, result, seconds) => {
        assert.ok(seconds >= 0 && seconds < 5);
        results.push([key, result]);
      },
    },
  );
  q.add('again');
  const until = async (n: number) => {
    for (let i = 0; i < 200 && results.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  };
  await until(2);
  q.add('skip');
  await until(3);
  active = false;
  q.add('dropped');
  await new Promise((r) => setTimeout(r, 30));
  active = true;
  q.add('boom');
  await until(4);
  q.shutDown();
  await loops;
  assert.deepEqual(results.slice(0, 4), [
    ['again', 'requeue'],
    ['again', 'success'],
    ['skip', 'skipped'],
    ['boom', 'error'],
  ]);
  assert.equal(handled, 4, 'the key taken while inactive was never handed to the handler');
});
