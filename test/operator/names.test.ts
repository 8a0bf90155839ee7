import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childLabels, expertPodName, fit, MAX_NAME, stageJobName } from '../../src/operator/names.js';

test('child names are deterministic and include the attempt', () => {
  assert.equal(expertPodName('demo', 'code', 1), 'demo-expert-code-1');
  assert.equal(expertPodName('demo', 'code', 12), 'demo-expert-code-12');
  assert.equal(stageJobName('demo', 'mix'), 'demo-mix');
  assert.equal(stageJobName('demo', 'mix', 2), 'demo-mix-2');
});

test('a later round names new Jobs that no attempt of an earlier round can have', () => {
  assert.equal(stageJobName('demo', 'mix', 1, 1), 'demo-mix');
  assert.equal(stageJobName('demo', 'mix', 1, 2), 'demo-mix-r2');
  assert.equal(stageJobName('demo', 'eval', 3, 2), 'demo-eval-r2-3');
  const names = new Set<string>();
  for (let round = 1; round <= 4; round++)
    for (let attempt = 1; attempt <= 4; attempt++)
      names.add(stageJobName('demo', 'finetune', attempt, round));
  assert.equal(names.size, 16);
  const long = stageJobName('r'.repeat(60), 'finetune', 2, 3);
  assert.ok(long.length <= MAX_NAME && long.endsWith('-r3-2'), long);
});

test('long names are hash-truncated to 63 characters, deterministically, keeping the attempt suffix', () => {
  const run = 'r'.repeat(60);
  const a = expertPodName(run, 'domain-with-a-long-name', 3);
  assert.ok(a.length <= MAX_NAME, a);
  assert.match(a, /-[0-9a-f]{8}-3$/);
  assert.equal(a, expertPodName(run, 'domain-with-a-long-name', 3));
  assert.notEqual(expertPodName(run, 'domain-with-a-long-name-b', 3), a, 'different inputs, different names');
  assert.ok(stageJobName(run, 'finetune').length <= MAX_NAME);
  assert.ok(stageJobName(run, 'finetune', 7).endsWith('-7'));
  assert.equal(fit('short'), 'short');
  const labels = childLabels('x'.repeat(100), 'expert', 1, 'code');
  for (const v of Object.values(labels)) assert.ok(v.length <= 63);
});
