import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDefaults, DEFAULTS, type BTXRunSpecInput } from '../../src/api/defaults.js';

const minimal: BTXRunSpecInput = {
  storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
  seed: { checkpoint: '/btx/seed' },
  domains: [
    { name: 'math', data: '/btx/data/math' },
    { name: 'code', data: '/btx/data/code' },
  ],
};

const cases: {
  name: string;
  input: BTXRunSpecInput;
  expect: (s: ReturnType<typeof applyDefaults>) => void;
}[] = [
  {
    name: 'a minimal spec gets the trainer image, IfNotPresent, seed 0, not suspended',
    input: minimal,
    expect: (s) => {
      assert.equal(s.image, 'ghcr.io/btx-ai/btx-trainer:0.1.0');
      assert.equal(s.imagePullPolicy, 'IfNotPresent');
      assert.equal(s.randomSeed, 0);
      assert.equal(s.suspend, false);
      assert.equal(s.ttlSecondsAfterFinished, undefined);
      assert.equal(s.model, undefined);
    },
  },
  {
    name: 'expert, mix, finetune and eval get every default of the table',
    input: minimal,
    expect: (s) => {
      assert.deepEqual(s.expert, DEFAULTS.expert);
      assert.deepEqual(s.mix, DEFAULTS.mix);
      assert.deepEqual(s.finetune, DEFAULTS.finetune);
      assert.deepEqual(s.eval, DEFAULTS.eval);
    },
  },
  {
    name: 'minExperts defaults to the number of domains and rules to none',
    input: minimal,
    expect: (s) => assert.deepEqual(s.failurePolicy, { rules: [], minExperts: 2 }),
  },
  {
    name: 'given values win over defaults, field by field',
    input: {
      ...minimal,
      expert: { steps: 5 },
      mix: { router: { k: 1 } },
      eval: { enabled: false },
      suspend: true,
    },
    expect: (s) => {
      assert.equal(s.expert.steps, 5);
      assert.equal(s.expert.batchSize, DEFAULTS.expert.batchSize);
      assert.deepEqual(s.mix.router, { type: 'topK', k: 1 });
      assert.equal(s.eval.enabled, false);
      assert.equal(s.eval.batches, DEFAULTS.eval.batches);
      assert.equal(s.suspend, true);
    },
  },
  {
    name: 'a given minExperts is kept',
    input: { ...minimal, failurePolicy: { minExperts: 1 } },
    expect: (s) => assert.equal(s.failurePolicy?.minExperts, 1),
  },
  {
    name: 'seed.train gets batch size and learning rate; model gets vocab, rope, eps and kvHeads = heads',
    input: {
      ...minimal,
      seed: { train: { data: '/btx/data', steps: 10 } },
      model: { dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 },
    },
    expect: (s) => {
      assert.deepEqual(s.seed.train, { data: '/btx/data', steps: 10, batchSize: 8, learningRate: 6e-4 });
      assert.deepEqual(s.model, {
        vocabSize: 259,
        dModel: 64,
        layers: 2,
        heads: 4,
        kvHeads: 4,
        ffnHidden: 192,
        seqLen: 64,
        ropeTheta: 10000,
        rmsNormEps: 1e-5,
        tieEmbeddings: false,
      });
    },
  },
  {
    name: 'optional fields with no default stay absent, given ones are kept',
    input: { ...minimal, serviceAccountName: 'trainer', ttlSecondsAfterFinished: 60 },
    expect: (s) => {
      assert.equal(s.serviceAccountName, 'trainer');
      assert.equal(s.ttlSecondsAfterFinished, 60);
      assert.ok(!('podLabels' in s));
    },
  },
  {
    name: 'explicit undefined does not erase a default',
    input: { ...minimal, expert: { steps: undefined } },
    expect: (s) => assert.equal(s.expert.steps, DEFAULTS.expert.steps),
  },
];

for (const c of cases) test(`applyDefaults: ${c.name}`, () => c.expect(applyDefaults(c.input)));

test('applyDefaults is pure: the input is unchanged and shares nothing with the result', () => {
  const input = structuredClone(minimal);
  const before = structuredClone(input);
  const out = applyDefaults(input);
  assert.deepEqual(input, before);
  out.domains[0]!.name = 'changed';
  out.storage.persistentVolumeClaim.claimName = 'changed';
  assert.deepEqual(input, before);
});

test('applyDefaults is idempotent', () => {
  const once = applyDefaults(minimal);
  assert.deepEqual(applyDefaults(once), once);
});
