import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { ADAMW_DEFAULTS, AdamW } from '../../src/trainer/adamw.js';
import { backend } from './trainerFixtures.js';

before(backend);

test('AdamW: takes two clipped, bias-corrected steps as written in torch.optim.AdamW (decay on matrices only)', () => {
  const w = tf.variable(tf.tensor2d([[1, -2]]), true, 'w');
  const g = tf.variable(tf.tensor1d([0.5]), true, 'g');
  const opt = new AdamW(
    new Map<string, tf.Variable>([
      ['w', w],
      ['g', g],
    ]),
  );
  const grads = [
    { w: [0.5, -0.1], g: [2] },
    { w: [-0.3, 0.2], g: [0.1] },
  ];
  const [b1, b2, eps, lr, wd] = [0.9, 0.95, 1e-8, 0.1, 0.1];
  // The same two steps in float64, parameter by parameter.
  const expected = { w: [1, -2], g: [0.5] };
  const m = { w: [0, 0], g: [0] };
  const v = { w: [0, 0], g: [0] };
  grads.forEach((step, i) => {
    const norm = Math.hypot(...step.w, ...step.g);
    const clip = Math.min(1, 1 / (norm + 1e-6));
    for (const name of ['w', 'g'] as const) {
      step[name].forEach((gi, j) => {
        const gc = gi * clip;
        m[name][j] = b1 * m[name][j]! + (1 - b1) * gc;
        v[name][j] = b2 * v[name][j]! + (1 - b2) * gc * gc;
        const mHat = m[name][j]! / (1 - b1 ** (i + 1));
        const vHat = v[name][j]! / (1 - b2 ** (i + 1));
        const decayed = name === 'w' ? expected[name][j]! * (1 - lr * wd) : expected[name][j]!;
        expected[name][j] = decayed - (lr * mHat) / (Math.sqrt(vHat) + eps);
      });
    }
    const norms = opt.apply({ w: tf.tensor2d([step.w]), g: tf.tensor1d(step.g) }, lr);
    assert.ok(Math.abs(norms.dataSync()[0]! - norm) < 1e-6);
  });
  const close = (actual: ArrayLike<number>, wanted: number[], what: string) =>
    wanted.forEach((x, j) =>
      assert.ok(Math.abs(actual[j]! - x) < 1e-6, `${what}[${j}]: ${actual[j]} != ${x}`),
    );
  close(w.dataSync(), expected.w, 'w');
  close(g.dataSync(), expected.g, 'g');
  return opt.toTensors().then((moments) => {
    const byName = new Map(moments.map((t) => [t.name, t.data]));
    close(byName.get('w.exp_avg')!, m.w, 'w.exp_avg');
    close(byName.get('w.exp_avg_sq')!, v.w, 'w.exp_avg_sq');
    close(byName.get('g.exp_avg')!, m.g, 'g.exp_avg');
    close(byName.get('g.exp_avg_sq')!, v.g, 'g.exp_avg_sq');
  });
});

test('AdamW: a parameter long enough for the SIMD loop and its tail matches float64, and moments reload', () => {
  const [rows, cols] = [3, 5]; // 15 = 12 in lanes of 4 + 3 in the tail
  const start = Array.from({ length: rows * cols }, (_, i) => Math.sin(i + 1));
  const w = tf.variable(tf.tensor2d(start, [rows, cols]), true, 'wide');
  const opt = new AdamW(new Map([['wide', w]]), { ...ADAMW_DEFAULTS, gradClip: 0 });
  const [b1, b2, eps, lr, wd] = [0.9, 0.95, 1e-8, 0.05, 0.1];
  const expected = [...start];
  const [m, v] = [start.map(() => 0), start.map(() => 0)];
  for (let step = 1; step <= 3; step++) {
    const g = start.map((_, i) => Math.cos(i * step) * (i % 4 === 0 ? 10 : 0.1));
    g.forEach((gi, j) => {
      m[j] = b1 * m[j]! + (1 - b1) * gi;
      v[j] = b2 * v[j]! + (1 - b2) * gi * gi;
      const update = (lr * (m[j]! / (1 - b1 ** step))) / (Math.sqrt(v[j]! / (1 - b2 ** step)) + eps);
      expected[j] = expected[j]! * (1 - lr * wd) - update;
    });
    opt.apply({ wide: tf.tensor2d(g, [rows, cols]) }, lr);
  }
  const got = w.dataSync();
  expected.forEach((x, j) => assert.ok(Math.abs(got[j]! - x) < 1e-5, `wide[${j}]: ${got[j]} != ${x}`));
  // The moments survive toTensors -> load into a fresh optimizer, value for value.
  return opt.toTensors().then((saved) => {
    const again = new AdamW(new Map([['wide', w]]), { ...ADAMW_DEFAULTS, gradClip: 0 });
    again.load(new Map(saved.map((t) => [t.name, t])), 3);
    return again.toTensors().then((reloaded) => {
      assert.deepEqual(
        reloaded.map((t) => [t.name, [...t.data]]),
        saved.map((t) => [t.name, [...t.data]]),
      );
      saved.forEach((t) => {
        const want = t.name.endsWith('exp_avg') ? m : v;
        want.forEach((x, j) => assert.ok(Math.abs(t.data[j]! - x) < 1e-5 * Math.max(1, Math.abs(x)), `${t.name}[${j}]`)); // prettier-ignore
      });
      again.dispose();
      opt.dispose();
    });
  });
});
