// The tokenize stage in plan() (src/operator/tokenizeStage.ts) on the World fixture: one Job per
// domain and one for the seed's data, a domain too big for one pod re-run as an Indexed Job, counts
// carried from the pods' termination messages into status, a failing Job failing the run, reuse.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TokenizeDomainStatus } from '../../src/api/types.js';
import { env, eventReasons, jobIn, jobPod, kinds, makeRun, World } from './fixtures.js';

const jobNames = (w: World) => [...w.jobs.keys()].sort();
const domain = (w: World, name: string): TokenizeDomainStatus | undefined =>
  w.run.status?.tokenize?.domains?.find((d) => d.name === name);

test('a new run starts one tokenize Job per domain and one for the seed data, phase Tokenizing', () => {
  const w = new World(makeRun());
  const p = w.step();
  assert.deepEqual(jobNames(w), [
    'demo-seed-tokenize-1',
    'demo-tokenize-code-1',
    'demo-tokenize-math-1',
    'demo-tokenize-prose-1',
  ]);
  assert.equal(kinds(p, 'createPod').length, 0, 'nothing trains before the shards exist');
  assert.equal(p.status.phase, 'Tokenizing');
  assert.equal(p.status.tokenize?.phase, 'Running');
  assert.match(p.status.tokenize?.tokens ?? '', /^\/btx\/tokens\/[0-9a-f]{16}$/);
  assert.deepEqual(
    p.status.tokenize?.domains?.map((d) => [d.name, d.phase, d.job]),
    [
      ['code', 'Running', 'demo-tokenize-code-1'],
      ['math', 'Running', 'demo-tokenize-math-1'],
      ['prose', 'Running', 'demo-tokenize-prose-1'],
      ['_seed', 'Running', 'demo-seed-tokenize-1'],
    ],
  );
  assert.equal(p.status.conditions?.find((c) => c.type === 'Tokenized')?.status, 'False');
  assert.deepEqual(eventReasons(p), ['StageStarted']);

  const job = w.job('demo-tokenize-math-1');
  const e = env(job);
  assert.equal(e.BTX_STAGE, 'tokenize');
  assert.equal(e.BTX_DATA, 'math=/btx/data/math.txt');
  assert.equal(e.BTX_TOKENS, p.status.tokenize?.tokens);
  assert.equal(e.BTX_TOKENIZER, undefined, 'a seed trained here speaks the byte tokenizer');
  assert.equal(e.BTX_PART_BYTES, '1000');
  assert.equal(e.BTX_MAX_PARTS, '4');
  assert.equal(e.BTX_PARTS, undefined);
  assert.deepEqual(job.spec?.template.spec?.containers[0]?.args, ['tokenize']);
  assert.equal(job.spec?.completions, 1);
  assert.equal(job.spec?.completionMode, undefined);
  assert.equal(job.spec?.backoffLimit, 2);
  assert.equal(job.metadata?.labels?.['btx.ai/stage'], 'tokenize');
  assert.equal(job.metadata?.labels?.['btx.ai/expert'], 'math');
  assert.equal(job.metadata?.ownerReferences?.[0]?.kind, 'BTXRun');
  assert.equal(env(w.job('demo-seed-tokenize-1')).BTX_DATA, '_seed=/btx/data/seed.txt');
  assert.equal(w.job('demo-seed-tokenize-1').metadata?.labels?.['btx.ai/expert'], undefined);
  // Same world again: nothing new.
  assert.equal(kinds(w.step(), 'createJob').length, 0);
});

test("with a seed checkpoint, the domains are tokenized with that checkpoint's tokenizer and there is no seed data", () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/models/llama' } }));
  w.step();
  assert.deepEqual(jobNames(w), ['demo-tokenize-code-1', 'demo-tokenize-math-1', 'demo-tokenize-prose-1']);
  assert.equal(env(w.job('demo-tokenize-code-1')).BTX_TOKENIZER, '/btx/models/llama');
});

test('success carries each Job’s counts into status, and then the seed starts reading the shards', () => {
  const w = new World(makeRun());
  w.step();
  w.completeJob('demo-tokenize-code-1', World.tokenized('code', 5000));
  let p = w.step();
  assert.deepEqual(domain(w, 'code'), {
    name: 'code',
    phase: 'Succeeded',
    job: 'demo-tokenize-code-1',
    documents: 10,
    tokens: 5000,
    bytes: 5000,
    heldOutTokens: 500,
    reused: false,
  });
  assert.equal(p.status.phase, 'Tokenizing', 'the others still run');
  assert.equal(kinds(p, 'createJob').length, 0);
  for (const d of ['math', 'prose']) w.completeJob(`demo-tokenize-${d}-1`, World.tokenized(d, 100, true));
  w.completeJob('demo-seed-tokenize-1', World.tokenized('_seed', 300));
  p = w.step();
  assert.equal(p.status.tokenize?.phase, 'Succeeded');
  assert.equal(domain(w, 'math')?.reused, true);
  const tokenized = p.status.conditions?.find((c) => c.type === 'Tokenized');
  assert.equal(tokenized?.status, 'True');
  assert.equal(tokenized?.message, '4 data sets, 5500 tokens (2 reused as they were)');
  assert.ok(eventReasons(p).includes('StageSucceeded'));
  // The walk goes on in the same plan: the seed Job, reading the seed data's shards.
  const seed = env(w.job('demo-seed'));
  assert.equal(p.status.phase, 'Seeding');
  assert.equal(seed.BTX_DOMAIN, '_seed');
  assert.equal(seed.BTX_TOKENIZED, 'true');
  assert.equal(seed.BTX_TOKENS, p.status.tokenize?.tokens);
  w.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
  w.step();
  assert.equal(env(w.pod('demo-expert-code-1')).BTX_TOKENIZED, 'true', 'experts never tokenize on their own');
});

test('a domain too big for one pod is re-run as an Indexed Job of the parts its pod asked for', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.step();
  w.completeJob('demo-tokenize-code-1', {
    checkpoint: '/btx/tokens/x',
    tokenized: [],
    split: [{ domain: 'code', bytes: 3500, parts: 4 }],
  });
  let p = w.step();
  assert.ok(eventReasons(p).includes('TokenizeSplit'));
  const job = w.job('demo-tokenize-code-1-4parts');
  assert.equal(job.spec?.completionMode, 'Indexed');
  assert.equal(job.spec?.completions, 4);
  assert.equal(job.spec?.parallelism, 4);
  assert.equal(job.spec?.backoffLimit, 8);
  assert.equal(env(job).BTX_PARTS, '4');
  assert.equal(env(job).BTX_PART_BYTES, undefined, 'a part never asks for another split');
  assert.deepEqual(
    { ...domain(w, 'code') },
    { name: 'code', phase: 'Running', job: 'demo-tokenize-code-1-4parts', parts: 4, sourceBytes: 3500 },
  );
  // Each part's pod reports its part; the domain's counts are their sums (a retried part counts once).
  const done = jobIn(job, 'Complete');
  w.jobs.set('demo-tokenize-code-1-4parts', done);
  for (let i = 0; i < 4; i++) {
    const pod = jobPod(done, {
      tokenized: [
        {
          domain: 'code',
          part: `${i}/4`,
          documents: 5,
          tokens: 100,
          bytes: 90,
          heldOutTokens: 10,
          reused: false,
        },
      ],
    });
    pod.metadata = { ...pod.metadata, name: `demo-tokenize-code-1-4parts-${i}` };
    w.pods.set(pod.metadata.name ?? '', pod);
  }
  const retried = jobPod(done, {
    tokenized: [
      { domain: 'code', part: '0/4', documents: 5, tokens: 100, bytes: 90, heldOutTokens: 10, reused: true },
    ],
  });
  retried.metadata = { ...retried.metadata, name: 'demo-tokenize-code-1-4parts-0-again' };
  w.pods.set(retried.metadata.name ?? '', retried);
  p = w.step();
  const code = domain(w, 'code');
  assert.equal(code?.phase, 'Succeeded');
  assert.deepEqual([code?.documents, code?.tokens, code?.bytes, code?.heldOutTokens], [20, 400, 360, 40]);
  assert.equal(code?.reused, false);
  assert.equal(p.status.phase, 'Tokenizing');
});

test('a failed tokenize Job fails the run with TokenizeFailed naming the domain, and stops the other Jobs', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.step();
  const job = jobIn(w.job('demo-tokenize-math-1'), 'Failed', 'BackoffLimitExceeded');
  w.jobs.set('demo-tokenize-math-1', job);
  const pod = jobPod(job, {});
  w.pods.set(pod.metadata?.name ?? '', {
    ...pod,
    status: {
      phase: 'Failed',
      containerStatuses: [
        {
          name: 'trainer',
          image: 'x',
          imageID: 'x',
          ready: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 1,
              message:
                'btx: domain math (/btx/data/math.txt): 3 documents give 0 held-out and 3 training documents',
            },
          },
        },
      ],
    },
  });
  const p = w.step();
  assert.equal(p.status.phase, 'Failed');
  const failed = p.status.conditions?.find((c) => c.type === 'Failed');
  assert.equal(failed?.reason, 'TokenizeFailed');
  assert.match(
    failed?.message ?? '',
    /tokenizing math failed: Job demo-tokenize-math-1 failed \(BackoffLimitExceeded\)/,
  );
  assert.match(failed?.message ?? '', /0 held-out and 3 training documents/);
  assert.equal(p.status.conditions?.find((c) => c.type === 'Tokenized')?.reason, 'TokenizeFailed');
  assert.equal(domain(w, 'math')?.phase, 'Failed');
  assert.equal(p.status.tokenize?.phase, 'Failed');
  assert.deepEqual(
    kinds(p, 'deleteJob').map((a) => (a.kind === 'deleteJob' ? a.name : '')),
    ['demo-tokenize-code-1', 'demo-tokenize-prose-1'],
  );
  assert.equal(kinds(p, 'createPod').length + kinds(p, 'createJob').length, 0);
  assert.ok(eventReasons(p).includes('StageFailed'));
});

test('suspending while tokenizing deletes the Jobs; resuming starts attempt 2 of the unfinished domains only', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.step();
  w.completeJob('demo-tokenize-code-1', World.tokenized('code'));
  w.step();
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: true } };
  let p = w.step();
  assert.equal(p.status.phase, 'Suspended');
  assert.deepEqual(
    kinds(p, 'deleteJob')
      .map((a) => (a.kind === 'deleteJob' ? a.name : ''))
      .sort(),
    ['demo-tokenize-math-1', 'demo-tokenize-prose-1'],
  );
  w.run = { ...w.run, spec: { ...w.run.spec, suspend: false } };
  p = w.step();
  assert.deepEqual(
    kinds(p, 'createJob').map((a) => (a.kind === 'createJob' ? a.job.metadata?.name : '')),
    ['demo-tokenize-math-2', 'demo-tokenize-prose-2'],
  );
  assert.equal(domain(w, 'code')?.phase, 'Succeeded');
  assert.equal(env(w.job('demo-tokenize-math-2')).BTX_ATTEMPT, '2');
});

test('a tokenize pod that reports no counts (a bring-your-own image) still succeeds at once, without counts', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.step();
  w.completeJob('demo-tokenize-code-1', { checkpoint: '/btx/tokens/x' });
  const p = w.step();
  assert.deepEqual(domain(w, 'code'), { name: 'code', phase: 'Succeeded', job: 'demo-tokenize-code-1' });
  assert.equal(p.requeueAfterMs, undefined, 'no wait for counts that will never come');
});
