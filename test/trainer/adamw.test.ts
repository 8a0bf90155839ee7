import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { AdamW } from '../../src/trainer/adamw.js';
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
