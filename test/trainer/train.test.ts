import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { AdamW } from '../../src/trainer/adamw.js';
import { listCheckpoints, loadCheckpoint } from '../../src/trainer/checkpoint.js';
import { disposeParams, initParams, modelDims } from '../../src/trainer/model.js';
import { trainLoop } from '../../src/trainer/train.js';
import type { StepReport } from '../../src/trainer/train.js';
import { runTrainStage } from '../../src/trainer/trainStage.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import type { TrainStageSettings } from '../../src/trainer/trainStage.js';
import {
  backend,
  byteDomain,
  saveRandomCheckpoint,
  tempDir,
  tinyLlama,
  tinyMixtral,
  writeCorpus,
} from './trainerFixtures.js';
import { byteTokenizer } from '../../src/trainer/tokenizer.js';
import { tokenizeDomain } from '../../src/trainer/tokenize.js';
import { readManifest } from '../../src/trainer/tokenShards.js';

const tmp = tempDir('train');
before(backend);
after(tmp.cleanup);

const corpus = writeCorpus(tmp.dir, 'apples');

function settings(over: Partial<TrainStageSettings>): TrainStageSettings {
  return {
    stage: 'expert',
    data: [{ name: 'apples', path: corpus }],
    out: join(tmp.dir, 'out'),
    steps: 6,
    batchSize: 4,
    learningRate: 3e-3,
    warmupSteps: 2,
    minLrRatio: 0.1,
    weightDecay: 0.1,
    gradClip: 1,
    checkpointEvery: 3,
    seed: 11,
    seqLen: 16,
    freezeExperts: false,
    dtype: 'F32',
    logEvery: 100,
    ...over,
  };
}

function seedCheckpoint(name: string, config: ModelConfig = tinyLlama()): Promise<string> {
  return saveRandomCheckpoint(join(tmp.dir, name), config, { randomSeed: 5 });
}

function maxAbsDiff(a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>): number {
  let worst = 0;
  for (const [name, t] of a) {
    const u = b.get(name)!;
    for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i]! - u.data[i]!));
  }
  return worst;
}

test('training loop: loss falls on a tiny config', async () => {
  const d = modelDims(tinyLlama());
  const params = initParams(d, 1);
  const optimizer = new AdamW(params);
  const losses: number[] = [];
  await trainLoop({
    params,
    dims: d,
    optimizer,
    source: { domains: [await byteDomain('apples', corpus)] },
    seed: 1,
    batchSize: 4,
    seqLen: 16,
    schedule: { peak: 1e-2, warmupSteps: 3, totalSteps: 40, minRatio: 0.1 },
    startStep: 0,
    checkpointEvery: 0,
    onStep: (r: StepReport) => void losses.push(r.loss),
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(losses.slice(0, 5));
  const last = mean(losses.slice(-5));
  assert.ok(first > 5, `initial loss ${first} should be near ln(259) = 5.56`);
  assert.ok(last < first - 2, `loss fell only from ${first} to ${last}`);
  optimizer.dispose();
  disposeParams(params);
});

test('training loop: leaks no tensors across steps (MoE, routing statistics read every step)', async () => {
  const d = modelDims(tinyMixtral(3));
  const params = initParams(d, 1);
  const optimizer = new AdamW(params);
  const source = { domains: [await byteDomain('apples', corpus)] };
  const counts: number[] = [];
  await trainLoop({
    params,
    dims: d,
    optimizer,
    source,
    seed: 1,
    batchSize: 2,
    seqLen: 16,
    schedule: { peak: 1e-3, warmupSteps: 1, totalSteps: 6, minRatio: 0.1 },
    startStep: 0,
    checkpointEvery: 0,
    routingEvery: 1,
    onStep: () => void counts.push(tf.memory().numTensors),
  });
  // The first step creates nothing that lives on either (no caches): counts stay flat.
  assert.deepEqual(new Set(counts.slice(1)).size, 1, `numTensors per step: ${counts.join(', ')}`);
  assert.equal(counts[0], counts[5]);
  optimizer.dispose();
  disposeParams(params);
});

test('expert stage: tokenize -> train -> kill after step 4 -> resume on the shards reaches the same weights as one never killed', async () => {
  const seed = await seedCheckpoint('seed-resume');
  const whole = join(tmp.dir, 'whole');
  const killed = join(tmp.dir, 'killed');
  // Tokenized once up front (as the operator's Tokenizing stage does); every run below reads these shards.
  const tokens = join(tmp.dir, 'tokens');
  const tokenized = await tokenizeDomain({
    name: 'apples',
    dataPath: corpus,
    hostDataPath: corpus,
    tokensDir: tokens,
    tokenizer: byteTokenizer(),
  });
  await runTrainStage(settings({ input: seed, out: whole, tokens }));
  await runTrainStage(settings({ input: seed, out: killed, stopAtStep: 4, tokens }));
  // Killed after step 4: the newest checkpoint is step 3; the restart resumes there.
  assert.deepEqual(
    (await listCheckpoints(killed)).map((c) => c.step),
    [3],
  );
  const resumed = await runTrainStage(settings({ input: seed, out: killed, tokens }));
  const reread = await readManifest(join(tokens, 'apples'));
  assert.equal(reread?.createdAt, tokenized.manifest.createdAt); // reused by all three runs, never rebuilt
  assert.equal(resumed.step, 6);
  const a = await loadCheckpoint(join(whole, 'step-6'));
  const b = await loadCheckpoint(join(killed, 'step-6'));
  assert.equal(b.state?.dataPosition, 6);
  const diff = maxAbsDiff(a.tensors, b.tensors);
  if (process.env.BTX_TEST_VERBOSE) console.log(`kill-and-resume max weight difference: ${diff}`);
  // Same backend, same batches, same optimizer moments: measured bit-identical (diff 0).
  assert.ok(diff <= 1e-6, `weights differ by up to ${diff}`);
  assert.ok(maxAbsDiff(a.extra['optimizer.safetensors']!, b.extra['optimizer.safetensors']!) <= 1e-6);
});

test('finetune stage: freezeExperts trains routers and shared weights and leaves every expert unchanged', async () => {
  const mixed = await seedCheckpoint('mixed', tinyMixtral(2));
  const out = join(tmp.dir, 'finetuned');
  await runTrainStage(
    settings({
      stage: 'finetune',
      input: mixed,
      out,
      steps: 3,
      checkpointEvery: 0,
      data: [
        { name: 'a', path: corpus },
        { name: 'b', path: writeCorpus(tmp.dir, 'pears') },
      ],
      weights: [1, 3],
      freezeExperts: true,
      router: 'soft',
    }),
  );
  const before = (await loadCheckpoint(mixed)).tensors;
  const ft = await loadCheckpoint(join(out, 'step-3'));
  assert.equal(ft.config.model_type === 'mixtral' && ft.config.btx_router, 'soft');
  for (const [name, t] of ft.tensors) {
    const changed = maxAbsDiff(new Map([[name, t]]), new Map([[name, before.get(name)!]])) > 0;
    if (name.includes('.experts.')) assert.ok(!changed, `${name} changed`);
    if (name.endsWith('block_sparse_moe.gate.weight') || name.endsWith('q_proj.weight')) {
      assert.ok(changed, `${name} did not train`);
    }
  }
  assert.ok(![...ft.extra['optimizer.safetensors']!.keys()].some((n) => n.includes('.experts.')));
});
