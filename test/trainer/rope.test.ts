import assert from 'node:assert/strict';
import { test } from 'node:test';
import { modelDims } from '../../src/trainer/model.js';
import { ropeInverseFrequencies } from '../../src/trainer/rope.js';
import { tinyLlama } from './trainerFixtures.js';

const close = (a: number[], b: number[]) =>
  a.forEach((x, i) =>
    assert.ok(Math.abs(x - b[i]!) <= 1e-6 * Math.max(1, Math.abs(b[i]!)), `${i}: ${x} vs ${b[i]}`),
  );

test('rotary frequencies: apply llama3 rope_scaling as HF _compute_llama3_parameters does (keep, smooth and divide bands)', () => {
  const scaling = {
    rope_type: 'llama3',
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 64,
  };
  // Expected values from HF's code run in NumPy (float32 inv_freq).
  close(
    ropeInverseFrequencies(16, 10000, scaling),
    [
      1.0, 0.24438458681106567, 0.013042256236076355, 0.0039528473280370235, 0.0012499999720603228,
      0.00039528473280370235, 0.0001250000059371814, 3.9528473280370235e-5,
    ],
  );
});

test('rotary frequencies: divide by the factor for linear scaling and leave dynamic and none alone', () => {
  const plain = ropeInverseFrequencies(8, 10000, null);
  close(
    ropeInverseFrequencies(8, 10000, { type: 'linear', factor: 4 }),
    plain.map((f) => f / 4),
  );
  close(ropeInverseFrequencies(8, 10000, { rope_type: 'dynamic', factor: 2 }), plain);
});

test('rotary frequencies: refuse scalings and biases this model does not implement instead of computing another function', () => {
  assert.throws(
    () => ropeInverseFrequencies(8, 10000, { rope_type: 'yarn', factor: 4 }),
    /yarn.*not supported/,
  );
  assert.throws(() => modelDims(tinyLlama({ attention_bias: true })), /attention_bias/);
});
