import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { batchLoss, disposeParams, initParams, modelDims } from '../../src/trainer/model.js';
import { loadBalancingLoss, route, topKMask } from '../../src/trainer/moe.js';
import { backend, tinyMixtral } from './trainerFixtures.js';

before(backend);

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) < tol, `${a} != ${b}`);

test('MoE routing: topK keeps the k most probable experts and renormalises their gates', () => {
  const probs = tf.tensor2d([
    [0.1, 0.5, 0.15, 0.25],
    [0.4, 0.3, 0.2, 0.1],
  ]);
  const r = route(tf.log(probs) as tf.Tensor2D, { router: 'topK', k: 2 }, false, 0);
  assert.deepEqual(r.mask.arraySync(), [
    [0, 1, 0, 1],
    [1, 1, 0, 0],
  ]);
  const g = r.gates.arraySync();
  close(g[0]![1]!, 0.5 / 0.75);
  close(g[0]![3]!, 0.25 / 0.75);
  close(g[1]![0]!, 0.4 / 0.7);
  assert.equal(g[0]![0], 0);
  assert.deepEqual(r.share.arraySync(), [0.25, 0.5, 0, 0.25]);
});

test('MoE routing: selects on the host (sparse dispatch) exactly as topKMask does on the device, ties included', () => {
  // Quantised scores make ties common; k = 1..4 of 4 experts.
  const logits = tf.tensor2d(
    Array.from({ length: 64 * 4 }, (_, i) => Math.round(Math.sin(i * 7.3) * 2) / 2),
    [64, 4],
  );
  for (const k of [1, 2, 3, 4]) {
    const host = route(logits, { router: 'topK', k }, false, 0, true);
    const device = route(logits, { router: 'topK', k }, false, 0, false);
    assert.deepEqual(host.mask.arraySync(), device.mask.arraySync(), `k=${k}`);
    assert.deepEqual(host.gates.arraySync(), device.gates.arraySync(), `k=${k}`);
    const mask = device.mask.arraySync();
    for (let e = 0; e < 4; e++) {
      const listed = mask.flatMap((row, t) => (row[e] === 1 ? [t] : []));
      assert.deepEqual(host.tokens![e], listed, `k=${k}, expert ${e}`);
    }
  }
});

test('MoE routing: topKMask breaks ties by the lowest index, like a stable sort', () => {
  assert.deepEqual(topKMask(tf.tensor2d([[0.25, 0.25, 0.25, 0.25]]), 2).arraySync(), [[1, 1, 0, 0]]);
});

test('MoE routing: sampleTop1 takes the argmax at eval and samples by the router distribution in training', () => {
  const logits = tf.tensor2d(Array.from({ length: 400 }, () => [Math.log(0.7), Math.log(0.3)]));
  const evalMask = route(logits, { router: 'sampleTop1', k: 1 }, false, 1).mask;
  close((tf.mean(evalMask, 0) as tf.Tensor1D).arraySync()[0]!, 1);
  const trainShare = route(logits, { router: 'sampleTop1', k: 1 }, true, 1).share.arraySync();
  assert.ok(Math.abs(trainShare[0]! - 0.7) < 0.08, `share ${trainShare[0]}`);
  // Forward gate is 1 (straight-through); switch scales by the probability instead.
  close(tf.sum(route(logits, { router: 'sampleTop1', k: 1 }, true, 1).gates).arraySync() as number, 400);
  close(route(logits, { router: 'switch', k: 1 }, false, 0).gates.arraySync()[0]![0]!, 0.7);
});

test('load-balancing loss: matches a hand-computed case (HF load_balancing_loss_func)', () => {
  // k = 1. Routed: e0, e0, e1 -> f = [2/3, 1/3, 0]; P = mean probs = [0.5, 1/3, 1/6].
  // loss = E * sum f_i P_i = 3 * (2/3 * 1/2 + 1/3 * 1/3) = 4/3.
  const probs = tf.tensor2d([
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.2, 0.5, 0.3],
  ]);
  const r = route(tf.log(probs) as tf.Tensor2D, { router: 'topK', k: 1 }, false, 0);
  close(loadBalancingLoss([r]).arraySync() as number, 4 / 3);
});

test('load-balancing loss: concatenates layers before averaging, as HF does, and is k for uniform routing', () => {
  const a = { probs: tf.tensor2d([[1, 0]]), mask: tf.tensor2d([[1, 0]]) };
  const b = { probs: tf.tensor2d([[0, 1]]), mask: tf.tensor2d([[0, 1]]) };
  // f = [0.5, 0.5], P = [0.5, 0.5] over both layers -> 2 * 0.5 = 1 (per-layer products would give 2).
  close(loadBalancingLoss([a, b]).arraySync() as number, 1);
  const uniform = {
    probs: tf.fill([4, 4], 0.25) as tf.Tensor2D,
    mask: tf.tensor2d([
      [1, 1, 0, 0],
      [0, 0, 1, 1],
      [1, 0, 1, 0],
      [0, 1, 0, 1],
    ]),
  };
  close(loadBalancingLoss([uniform]).arraySync() as number, 2);
});

for (const router of ['topK', 'switch', 'soft', 'sampleTop1'] as const) {
  test(`router gradients: reach every layer's router from the language-model loss alone (${router})`, () => {
    const d = modelDims(tinyMixtral(3, router));
    const params = initParams(d, 3);
    const routers = [...params].filter(([n]) => n.endsWith('block_sparse_moe.gate.weight')).map(([, v]) => v);
    const ids = tf.tensor2d(
      Array.from({ length: 2 * 9 }, (_, i) => (i * 37) % 259),
      [2, 9],
      'int32',
    );
    const { value, grads } = tf.variableGrads(
      () => batchLoss(params, d, ids, { training: true, noiseSeed: 5, auxLossCoef: 0 }).total,
      routers,
    );
    for (const v of routers) {
      const norm = tf.norm(grads[v.name]!).arraySync() as number;
      assert.ok(norm > 1e-7, `router grad norm ${norm}`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    disposeParams(params);
  });
}
