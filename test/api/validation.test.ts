import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { formatFieldErrors, validateRun } from '../../src/api/validation.js';
import type { BTXRun } from '../../src/api/types.js';
import { repoRoot } from '../support/tools.js';
import { fullRun } from './fullRun.js';
import { invalidManifests } from './invalidManifests.js';

const example = parse(readFileSync(join(repoRoot, 'examples', 'btxrun-local.yaml'), 'utf8')) as BTXRun;

test('the local example is valid', () => {
  assert.deepEqual(validateRun(example), []);
});

test('a run with every field set (apart from the either-or choices) is valid', () => {
  const run = structuredClone(fullRun) as BTXRun;
  delete run.spec.seed.checkpoint;
  delete run.spec.failurePolicy?.rules?.[0]?.onPodCondition;
  assert.deepEqual(validateRun(run), []);
});

test('there are at least 20 invalid manifests', () => {
  assert.ok(invalidManifests().length >= 20, `${invalidManifests().length} fixtures`);
});

for (const m of invalidManifests()) {
  test(`validateRun rejects ${m.file} naming the problem`, () => {
    const errors = validateRun(m.run);
    assert.ok(errors.length > 0, 'no error');
    assert.ok(
      errors.some((e) => e.message.includes(m.validateRun)),
      `expected a message with ${JSON.stringify(m.validateRun)}, got ${JSON.stringify(errors.map((e) => e.message))}`,
    );
    for (const e of errors)
      assert.ok(e.message.startsWith(`${e.field}: `), `message does not start with its field: ${e.message}`);
  });
}

test('validateRun reports every problem at once, not only the first', () => {
  const run = structuredClone(example);
  run.spec.domains.push({ name: 'math', data: '/etc' });
  run.spec.expert.steps = 0;
  const fields = validateRun(run).map((e) => e.field);
  assert.deepEqual(fields.sort(), ['spec.domains[3].data', 'spec.domains[3].name', 'spec.expert.steps']);
});

test('validateRun names a wrong apiVersion or kind', () => {
  const run = { ...structuredClone(example), apiVersion: 'btx.ai/v1', kind: 'Run' } as unknown as BTXRun;
  assert.deepEqual(
    validateRun(run).map((e) => e.field),
    ['apiVersion', 'kind'],
  );
});

test('validateRun survives a spec of the wrong shape', () => {
  const run = { ...structuredClone(example), spec: { domains: 'math', seed: 3 } } as unknown as BTXRun;
  const messages = validateRun(run).map((e) => e.message);
  assert.ok(messages.includes('spec.storage: Required value'));
  assert.ok(
    messages.some((m) => m.startsWith('spec.domains: Invalid value: "string": must be of type array')),
  );
});

test('formatFieldErrors joins messages for a condition', () => {
  assert.equal(
    formatFieldErrors([
      { field: 'a', message: 'a: x' },
      { field: 'b', message: 'b: y' },
    ]),
    'a: x; b: y',
  );
});

test('router k may reach the number of experts; without the seed as expert one fewer', () => {
  const run = structuredClone(example);
  run.spec.mix.router.k = 4;
  assert.deepEqual(validateRun(run), []);
  run.spec.mix.includeSeedAsExpert = false;
  assert.match(
    validateRun(run)[0]?.message ?? '',
    /spec\.mix\.router\.k: Invalid value: 4: must not exceed the number of experts \(3: 3 domains\)/,
  );
  run.spec.mix.router = { type: 'switch', k: 4 };
  assert.deepEqual(validateRun(run), [], 'k only limits topK');
});
