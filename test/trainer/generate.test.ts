// Sampling from checkpoints: greedy is the argmax of the model's own logits, top-p keeps exactly the
// hand-computed nucleus, seeds make sampling reproducible (and do nothing at temperature 0), an
// end-of-sequence id stops generation, the context is cropped to the model's length, MoE works.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import {
  argmax,
  disposeLanguageModel,
  generate,
  loadLanguageModel,
  nucleus,
  sampleToken,
  softmaxWithTemperature,
  type LanguageModel,
} from '../../src/trainer/generate.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import { disposeParams, forward, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import { mulberry32 } from '../../src/trainer/prng.js';
import { backend, tempDir, tinyLlama, tinyMixtral } from './trainerFixtures.js';

const tmp = tempDir('generate');
let dense: LanguageModel;
let moe: LanguageModel;

async function checkpoint(name: string, config: ModelConfig): Promise<string> {
  const params = initParams(modelDims(config), 7);
  const dir = join(tmp.dir, name, 'step-1');
  await saveCheckpoint(dir, await paramsToTensors(params), config, {
    stage: 'test',
    step: 1,
    totalSteps: 1,
    loss: null,
    dataPosition: 0,
    randomSeed: 7,
    time: new Date().toISOString(),
  });
  disposeParams(params);
  return join(tmp.dir, name);
}

before(async () => {
  await backend();
  // Training output folders (their newest step-N is loaded), contexts of 16 tokens.
  dense = await loadLanguageModel(await checkpoint('dense', tinyLlama()));
  moe = await loadLanguageModel(await checkpoint('moe', tinyMixtral(3)));
});
after(() => {
  disposeLanguageModel(dense);
  disposeLanguageModel(moe);
  tmp.cleanup();
});

/** Logits [T, vocab] of one forward pass over `ids`, rows as arrays. */
function logitRows(model: LanguageModel, ids: number[]): Float32Array[] {
  const flat = tf.tidy(
    () =>
      forward(model.params, model.dims, tf.tensor2d(ids, [1, ids.length], 'int32'), { training: false })
        .logits,
  );
  const data = flat.dataSync() as Float32Array;
  flat.dispose();
  const v = model.dims.vocab;
  return ids.map((_, t) => data.slice(t * v, (t + 1) * v));
}

const PROMPT = [72, 101, 108, 108, 111]; // "Hello"
const GREEDY = { temperature: 0, topP: 1, seed: 1 };

/** Greedy output equals the argmax of one forward pass over the whole sequence, position by position. */
function assertGreedyIsArgmax(model: LanguageModel, maxTokens: number): number[] {
  const { ids, stop } = generate(model, PROMPT, { ...GREEDY, maxTokens });
  assert.equal(stop, 'maxTokens');
  assert.equal(ids.length, maxTokens);
  const sequence = [...PROMPT, ...ids];
  assert.ok(sequence.length <= model.contextLength, 'the check below needs the sequence in one context');
  const rows = logitRows(model, sequence.slice(0, -1));
  ids.forEach((id, i) => assert.equal(id, argmax(rows[PROMPT.length - 1 + i]!), `token ${i}`));
  return ids;
}

test('generate: greedy (temperature 0) picks the argmax of the model’s own logits at every step', () => {
  const ids = assertGreedyIsArgmax(dense, 11);
  assert.ok(new Set(ids).size > 1, `a random model's greedy output should vary: ${ids}`);
});

test('generate: samples from a mixed (MoE) checkpoint, greedy equal to its own argmax', () => {
  assert.equal(moe.dims.experts, 3);
  assertGreedyIsArgmax(moe, 11);
  const sampled = generate(moe, PROMPT, { temperature: 1, topP: 0.9, seed: 3, maxTokens: 8 });
  assert.equal(sampled.ids.length, 8);
});

test('generate: crops the context to the model’s length: a long prompt continues as its last 16 tokens do', () => {
  const long = Array.from({ length: 23 }, (_, i) => 40 + ((i * 7) % 50));
  const opts = { temperature: 0.8, topP: 0.95, seed: 5, maxTokens: 6 };
  assert.equal(dense.contextLength, 16);
  assert.deepEqual(generate(dense, long, opts).ids, generate(dense, long.slice(-16), opts).ids);
  // The same tokens without cropping give other logits (so the check above can fail).
  const uncropped = logitRows(dense, long).at(-1)!;
  const cropped = logitRows(dense, long.slice(-16)).at(-1)!;
  assert.ok(uncropped.some((x, i) => Math.abs(x - cropped[i]!) > 1e-4));
});

test('generate: the same seed gives the same text, another seed another text', () => {
  const opts = { temperature: 1, topP: 1, maxTokens: 12 };
  const a = generate(dense, PROMPT, { ...opts, seed: 1 }).ids;
  assert.deepEqual(generate(dense, PROMPT, { ...opts, seed: 1 }).ids, a);
  const b = generate(dense, PROMPT, { ...opts, seed: 2 }).ids;
  assert.notDeepEqual(b, a);
  assert.deepEqual(generate(dense, PROMPT, { ...opts, seed: 2 }).ids, b);
});

test('generate: temperature 0 ignores the seed', () => {
  const greedy = generate(dense, PROMPT, { ...GREEDY, maxTokens: 8 }).ids;
  for (const seed of [2, 99, 123456]) {
    assert.deepEqual(generate(dense, PROMPT, { ...GREEDY, seed, maxTokens: 8 }).ids, greedy);
  }
});

test('generate: stops at an end-of-sequence id, which is not returned', () => {
  for (const opts of [GREEDY, { temperature: 1, topP: 1, seed: 4 }]) {
    const free = generate(dense, PROMPT, { ...opts, maxTokens: 10 }).ids;
    const eos = free[4]!;
    const first = free.indexOf(eos);
    const stopped = generate(dense, PROMPT, { ...opts, maxTokens: 10, stopIds: [eos] });
    assert.equal(stopped.stop, 'eos');
    assert.deepEqual(stopped.ids, free.slice(0, first));
  }
  assert.deepEqual(generate(dense, PROMPT, { ...GREEDY, maxTokens: 0 }), { ids: [], stop: 'maxTokens' });
});

test('generate: refuses bad options and out-of-vocabulary prompts, naming what is wrong', () => {
  const ok = { temperature: 1, topP: 1, seed: 1, maxTokens: 2 };
  assert.throws(() => generate(dense, PROMPT, { ...ok, temperature: -1 }), /temperature must be/);
  assert.throws(() => generate(dense, PROMPT, { ...ok, topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => generate(dense, PROMPT, { ...ok, topP: 1.5 }), /topP must be in \(0, 1\]/);
  assert.throws(() => generate(dense, PROMPT, { ...ok, maxTokens: 1.5 }), /maxTokens must be/);
  assert.throws(() => generate(dense, PROMPT, { ...ok, seed: 0.5 }), /seed must be/);
  assert.throws(() => generate(dense, [], ok), /at least one token/);
  assert.throws(() => generate(dense, [1, 259], ok), /token id 259 is outside the model's vocabulary of 259/);
});

const P = Float64Array.from([0.1, 0.4, 0.2, 0.3]);
const close = (a: ArrayLike<number>, b: number[]) =>
  b.forEach((x, i) => assert.ok(Math.abs(a[i]! - x) < 1e-12, `${Array.from(a)} vs ${b}`));

test('sampling rules: top-p keeps the smallest most-likely set reaching p (the crossing token included), renormalised', () => {
  close(nucleus(P, 0.6), [0, 4 / 7, 0, 3 / 7]); // 0.4 + 0.3 = 0.7 >= 0.6
  close(nucleus(P, 0.4), [0, 1, 0, 0]); // 0.4 reaches 0.4 exactly
  close(nucleus(P, 0.75), [0, 4 / 9, 2 / 9, 3 / 9]); // 0.4 + 0.3 + 0.2
  close(nucleus(P, 1), [0.1, 0.4, 0.2, 0.3]);
  close(nucleus(Float64Array.from([0.25, 0.25, 0.25, 0.25]), 0.5), [0.5, 0.5, 0, 0]); // ties: lower id
});

test('sampling rules: temperature divides the logits before the softmax', () => {
  const logits = Array.from(P, Math.log);
  close(softmaxWithTemperature(logits, 1), [0.1, 0.4, 0.2, 0.3]);
  const sqrt = Array.from(P, Math.sqrt);
  const z = sqrt.reduce((a, b) => a + b);
  close(
    softmaxWithTemperature(logits, 2),
    sqrt.map((x) => x / z),
  );
});

test('sampling rules: draws follow the nucleus distribution and never leave it', () => {
  const logits = Array.from(P, Math.log);
  const random = mulberry32(11);
  const counts = [0, 0, 0, 0];
  const n = 20000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1, topP: 0.6 }, random)]!++;
  assert.equal(counts[0], 0);
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[1]! / n - 4 / 7) < 0.015, `${counts}`);
  assert.ok(Math.abs(counts[3]! / n - 3 / 7) < 0.015, `${counts}`);
});
