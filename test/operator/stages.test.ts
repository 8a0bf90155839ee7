// The stage table (src/operator/stages.ts): one entry per stage of STAGES, walked in order, and
// Planner.fail, which says what it stops and never leaves a create behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { STAGES } from '../../src/api/stageContract.js';
import { PIPELINE } from '../../src/operator/stages.js';
import { Planner } from '../../src/operator/planner.js';
import { at, kinds, makeRun, T0, World } from './fixtures.js';

test('the stage table has one entry per stage of the stage contract, in pipeline order', () => {
  assert.deepEqual(
    PIPELINE.map((s) => s.stage),
    [...STAGES],
  );
});

test('each stage sets the run phase its table entry names while it runs', () => {
  const w = new World(makeRun());
  const seen: string[] = [];
  const record = () => {
    const phase = w.run.status?.phase ?? '';
    if (seen[seen.length - 1] !== phase) seen.push(phase);
  };
  w.step();
  record();
  w.throughTokenize();
  w.step();
  record();
  w.completeJob('demo-seed', { checkpoint: '/btx/runs/ml/demo/seed/step-4' });
  w.step();
  record();
  w.throughExperts();
  record();
  for (const stage of ['mix', 'finetune', 'eval']) {
    w.completeJob(`demo-${stage}`, { checkpoint: `/btx/runs/ml/demo/${stage}` });
    w.step();
    record();
  }
  // Without spec.baselines the side stages (startsAfter) never run.
  const main = PIPELINE.filter((s) => s.startsAfter === undefined);
  assert.deepEqual(seen, [...main.map((s) => s.phase), 'Succeeded']);
});

test('fail() deletes each running child once, even an attempt the experts stage already replaced', () => {
  const w = new World(
    makeRun({
      seed: { checkpoint: '/btx/s' },
      failurePolicy: { rules: [{ action: 'FailExpert', onExitCodes: [9] }] },
    }),
  );
  w.throughTokenize();
  w.step();
  // A previous operator started code's attempt 2 while attempt 1 still runs.
  const second: V1Pod = structuredClone(w.pod('demo-expert-code-1'));
  second.metadata = {
    ...second.metadata,
    name: 'demo-expert-code-2',
    labels: { ...second.metadata?.labels, 'btx.ai/attempt': '2' },
  };
  w.pods.set('demo-expert-code-2', second);
  w.setPod('demo-expert-code-1', { phase: 'Running' });
  w.setPod('demo-expert-math-1', { phase: 'Failed', exitCode: 9 });
  const p = w.step(at(10));
  assert.equal(p.status.phase, 'Failed');
  const deleted = kinds(p, 'deletePod').map((a) => (a.kind === 'deletePod' ? a.name : ''));
  assert.deepEqual([...deleted].sort(), ['demo-expert-code-1', 'demo-expert-code-2', 'demo-expert-prose-1']);
  assert.equal(kinds(p, 'createPod').length, 0);
});

test('fail() says what it stops: the running children and the unfinished experts', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  w.throughTokenize();
  w.step();
  w.setPod('demo-expert-code-1', { phase: 'Running' });
  w.setPod('demo-expert-math-1', { phase: 'Succeeded', exitCode: 0 });
  const run = structuredClone(w.run);
  const p = new Planner(run, { pods: [...w.pods.values()], jobs: [] }, T0);
  p.status.experts = [
    { name: 'code', phase: 'Running', attempt: 1, restarts: 0 },
    { name: 'math', phase: 'Succeeded', attempt: 1, restarts: 0 },
    { name: 'prose', phase: 'Pending', attempt: 1, restarts: 0 },
  ];
  const cancelled = p.fail('Tested', 'a test failed the run');
  assert.deepEqual(cancelled, {
    deleted: ['demo-expert-code-1', 'demo-expert-prose-1'],
    stoppedExperts: ['code', 'prose'],
  });
  assert.deepEqual(
    p.status.experts.map((e) => e.phase),
    ['Stopped', 'Succeeded', 'Stopped'],
  );
});

test('fail() refuses to fail a run after a create was queued: stages create only in start, after observe', () => {
  const w = new World(makeRun({ seed: { checkpoint: '/btx/s' } }));
  const p = new Planner(structuredClone(w.run), { pods: [], jobs: [] }, T0);
  p.actions.push({ kind: 'createPod', pod: { metadata: { name: 'x' } } });
  assert.throws(() => p.fail('Tested', 'too late'), /after a create was queued/);
});
