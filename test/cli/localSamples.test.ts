// The samples `btx local` prints after the results: which checkpoints (seed, experts in domain
// order, the BTX model), the same text on every call (fixed seed), and how rows look.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { BTXRun } from '../../src/api/types.js';
import { checkpointTokenizer } from '../../src/cli/checkpointTokenizer.js';
import {
  renderSamples,
  SAMPLE_PROMPT,
  SAMPLE_SETTINGS,
  sampleModels,
  sampleTargets,
} from '../../src/cli/localSamples.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import { disposeLanguageModel, generateText, loadLanguageModel } from '../../src/trainer/generate.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import { disposeParams, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import { backend, tempDir, tinyLlama, tinyMixtral } from '../trainer/trainerFixtures.js';

const tmp = tempDir('local-samples');

async function save(dir: string, config: ModelConfig, seed: number): Promise<string> {
  const params = initParams(modelDims(config), seed);
  await saveCheckpoint(dir, await paramsToTensors(params), config, {
    stage: 'test',
    step: 1,
    totalSteps: 1,
    loss: null,
    dataPosition: 1,
    randomSeed: seed,
    time: new Date().toISOString(),
  });
  disposeParams(params);
  return dir;
}

before(backend);
after(tmp.cleanup);

function run(status: BTXRun['status']): BTXRun {
  return {
    apiVersion: 'btx.ai/v1alpha1',
    kind: 'BTXRun',
    metadata: { name: 'tiny', namespace: 'default' },
    spec: {
      domains: [
        { name: 'math', data: '/btx/data/math' },
        { name: 'code', data: '/btx/data/code' },
        { name: 'prose', data: '/btx/data/prose' },
      ],
    } as unknown as BTXRun['spec'],
    status,
  };
}

test('btx local samples: samples the seed, each expert in domain order and the BTX model, from host paths', () => {
  const toHost = (p: string) => p.replace('/btx', '/host');
  const status = {
    seed: { phase: 'Succeeded', checkpoint: '/btx/seed/step-6' },
    experts: [
      { name: 'code', phase: 'Succeeded', attempt: 1, restarts: 0, checkpoint: '/btx/code/step-6' },
      { name: 'math', phase: 'Succeeded', attempt: 1, restarts: 0, checkpoint: '/btx/math/step-6' },
      { name: 'prose', phase: 'Failed', attempt: 1, restarts: 3 },
    ],
    mix: { phase: 'Succeeded', checkpoint: '/btx/mixed' },
    finetune: { phase: 'Succeeded', checkpoint: '/btx/finetuned/step-3' },
  } as unknown as BTXRun['status'];
  assert.deepEqual(sampleTargets(run(status), toHost), [
    { model: 'seed', dir: '/host/seed/step-6' },
    { model: 'math', dir: '/host/math/step-6' },
    { model: 'code', dir: '/host/code/step-6' },
    { model: 'btx', dir: '/host/finetuned/step-3' },
  ]);
  // Finetuning skipped: the mixed model is the BTX model.
  const noFinetune = { ...status, finetune: undefined } as BTXRun['status'];
  assert.deepEqual(sampleTargets(run(noFinetune), toHost).at(-1), { model: 'btx', dir: '/host/mixed' });
});

test('btx local samples: gives the same text on every call, the text generateText samples with the fixed settings', async () => {
  const targets = [
    { model: 'seed', dir: await save(join(tmp.dir, 'seed'), tinyLlama(), 1) },
    { model: 'btx', dir: await save(join(tmp.dir, 'btx'), tinyMixtral(3), 2) },
    { model: 'gone', dir: join(tmp.dir, 'missing') },
  ];
  const first = await sampleModels(targets);
  assert.deepEqual(await sampleModels(targets), first);
  assert.deepEqual(
    first.map((s) => s.model),
    ['seed', 'btx', 'gone'],
  );
  const lm = await loadLanguageModel(targets[0]!.dir);
  const want = await generateText(lm, await checkpointTokenizer(lm), SAMPLE_PROMPT, SAMPLE_SETTINGS);
  disposeLanguageModel(lm);
  assert.equal(first[0]!.text, want.text);
  assert.notEqual(first[0]!.text, first[1]!.text, 'different models, different samples');
  assert.equal(first[2]!.text, undefined);
  assert.match(first[2]!.error ?? '', /no checkpoint in .*missing/);
});

test('btx local samples: prints one quoted line per model (newlines escaped) and the reason where sampling failed', () => {
  assert.deepEqual(renderSamples([]), []);
  assert.deepEqual(
    renderSamples([
      { model: 'seed', text: 'a "b"\nc' },
      { model: 'math', error: 'no checkpoint in /x' },
    ]),
    [
      'Samples (up to 40 tokens after "\\n\\n", temperature 0.8, top-p 0.95, seed 1):',
      '  seed  "a \\"b\\"\\nc"',
      '  math  (no sample: no checkpoint in /x)',
    ],
  );
});
