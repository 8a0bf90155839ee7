// The tfjs model against an independent NumPy transcription of Hugging Face's Llama and Mixtral
// forward passes (fixtures/hf_reference.py): rotate_half rotary embeddings, repeat_kv order of grouped
// KV heads, RMSNorm, SwiGLU, Mixtral's softmax -> top-2 -> renormalise. Swapping in interleaved rotary
// or tiled KV heads in the reference moves the logits by more than 3; the model matches to ~4e-6.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import type { ModelConfig } from '../../src/trainer/hfConfig.js';
import { disposeParams, forward, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import type { Params } from '../../src/trainer/model.js';
import { backend, tinyLlama, tinyMixtral } from './trainerFixtures.js';

before(backend);

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'hf-reference-logits.json'), 'utf8'),
) as { ids: number[]; llama: number[][]; mixtral: number[][] };

/** The reference weights: seeded init, norms jittered, matrices x10 so attention and rotary matter. */
function referenceParams(config: ModelConfig): Params {
  const params = initParams(modelDims(config), 42);
  for (const v of params.values()) {
    if (v.shape.length === 1)
      v.assign(tf.tidy(() => tf.add(1, tf.randomNormal(v.shape, 0, 0.3, 'float32', 7))));
    else v.assign(tf.tidy(() => tf.mul(v, 10)));
  }
  return params;
}

/** "<BOS>Hello world" as bytes; fixtures/hf_reference.py uses the same ids. */
const IDS = [256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100];

const CONFIGS: Record<'llama' | 'mixtral', ModelConfig> = {
  llama: tinyLlama({ rope_theta: 500 }),
  mixtral: { ...tinyMixtral(3, 'topK', 2), rope_theta: 500 },
};

for (const name of ['llama', 'mixtral'] as const) {
  test(`Hugging Face equivalence: ${name}: logits equal HF's forward pass on the same weights (max diff < 1e-4)`, async () => {
    const config = CONFIGS[name];
    const d = modelDims(config);
    const params = referenceParams(config);
    const ids = tf.tensor2d([IDS], [1, IDS.length], 'int32');
    const logits = forward(params, d, ids, { training: false }).logits.arraySync();
    const out = process.env.BTX_WRITE_HF_REFERENCE; // regenerate: see fixtures/hf_reference.py
    if (out) {
      await saveCheckpoint(join(out, `ref-${name}`), await paramsToTensors(params), config, {
        stage: 'reference',
        step: 0,
        totalSteps: 0,
        loss: null,
        dataPosition: 0,
        randomSeed: 42,
        time: new Date().toISOString(),
      });
      writeFileSync(join(out, `ours-${name}.json`), JSON.stringify(logits));
    }
    assert.deepEqual(fixture.ids, IDS);
    assert.equal(fixture[name].length, IDS.length);
    let worst = 0;
    fixture[name].forEach((row, t) =>
      row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - logits[t]![i]!)))),
    );
    assert.ok(worst < 1e-4, `max |ours - HF| = ${worst}`);
    disposeParams(params);
  });
}
