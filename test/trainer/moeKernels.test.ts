import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { fusedBalanceLoss, fusedExperts, fusedRoute } from '../../src/trainer/moeKernels.js';
import { fusedKernelsHere } from '../../src/trainer/wasmHeap.js';
import { loadBalancingLossOps, topKMask } from '../../src/trainer/moe.js';
import { batchLoss, disposeParams, initParams, modelDims } from '../../src/trainer/model.js';
import type { RouterType } from '../../src/trainer/hfConfig.js';
import { initBackend } from '../../src/trainer/backend.js';
import { tinyMixtral } from './trainerFixtures.js';

// The kernels under test are the wasm backend's, whatever BTX_BACKEND says.
before(() => initBackend('wasm'));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

test('fused MoE kernels: serve the wasm backend the tests run on', () => {
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(fusedKernelsHere());
});

/** Routing from plain tf ops: softmax, topKMask, renormalised (topK) or not (switch). */
function plainRoute(logits: tf.Tensor2D, k: number, renormalise: boolean) {
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const mask = topKMask(probs, k);
  const kept = tf.mul(probs, mask);
  const gates = (renormalise ? tf.div(kept, tf.sum(kept, 1, true)) : kept) as tf.Tensor2D;
  return { probs, gates, mask };
}

for (const [k, renormalise] of [
  [1, true],
  [2, true],
  [3, true],
  [1, false],
] as const) {
  test(`fusedRoute: equals softmax + topKMask + gates from tf ops, values and logits gradient (k=${k}, renormalise ${renormalise})`, () => {
    // Row 0 ties every expert, row 1 ties two (ties go to the lowest index, as topKMask).
    const random = tf.randomNormal([9, 5], 0, 2, 'float32', 3);
    const logits = tf.concat([tf.zeros([1, 5]), tf.tensor2d([[1, 3, 0, 3, -1]]), random]) as tf.Tensor2D;
    const ours = fusedRoute(logits, k, renormalise);
    const plain = plainRoute(logits, k, renormalise);
    assert.deepEqual(ours.mask.arraySync(), plain.mask.arraySync());
    assert.ok(maxAbsDiff(ours.probs, plain.probs) < 1e-7, 'probs');
    assert.ok(maxAbsDiff(ours.gates, plain.gates) < 1e-6, 'gates');
    const plainShare = tf.div(tf.mean(plain.mask, 0), k);
    assert.deepEqual(ours.share.arraySync(), plainShare.arraySync(), 'share');
    plainShare.dispose();
    const wp = tf.randomNormal([11, 5], 0, 1, 'float32', 4);
    const wg = tf.randomNormal([11, 5], 0, 1, 'float32', 5);
    const loss = (route: typeof plainRoute) => (l: tf.Tensor) => {
      const r = route(l as tf.Tensor2D, k, renormalise);
      return tf.add(tf.sum(tf.mul(r.probs, wp)), tf.sum(tf.mul(r.gates, wg))) as tf.Scalar;
    };
    const gOurs = tf.grad(loss(fusedRoute))(logits);
    const gPlain = tf.grad(loss(plainRoute))(logits);
    assert.ok(maxAbsDiff(gOurs, gPlain) < 1e-6, `logits gradient differs by ${maxAbsDiff(gOurs, gPlain)}`);
    assert.ok((tf.norm(gPlain).arraySync() as number) > 0.1, 'the reference gradient is not trivial');
    tf.dispose([random, logits, wp, wg, gOurs, gPlain, ...Object.values(ours), ...Object.values(plain)]);
  });
}

test('fusedBalanceLoss: equals the load-balancing loss from tf ops over several layers, value and the probs gradient of every layer', () => {
  // Layers of different row counts, so that a per-layer mean (instead of one over all rows) shows.
  const layers = [7, 12, 5].map((n, l) => {
    const logits = tf.randomNormal([n, 4], 0, 2, 'float32', 20 + l) as tf.Tensor2D;
    return { logits, mask: topKMask(tf.softmax(logits) as tf.Tensor2D, 2) };
  });
  const loss =
    (f: typeof fusedBalanceLoss) =>
    (...logits: tf.Tensor[]) =>
      f(layers.map((l, i) => ({ probs: tf.softmax(logits[i]!) as tf.Tensor2D, mask: l.mask })));
  const logits = layers.map((l) => l.logits);
  const [ours, plain] = [loss(fusedBalanceLoss)(...logits), loss(loadBalancingLossOps)(...logits)];
  assert.ok(
    Math.abs(ours.arraySync() - plain.arraySync()) < 1e-6,
    `${ours.arraySync()} != ${plain.arraySync()}`,
  );
  const gOurs = tf.grads(loss(fusedBalanceLoss))(logits);
  const gPlain = tf.grads(loss(loadBalancingLossOps))(logits);
  gPlain.forEach((g, i) => {
    assert.ok(maxAbsDiff(gOurs[i]!, g) < 1e-7, `layer ${i}: gradient differs by ${maxAbsDiff(gOurs[i]!, g)}`);
    assert.ok((tf.max(tf.abs(g)).arraySync() as number) > 1e-3, `layer ${i}: trivial reference`);
  });
  tf.dispose([ours, plain, ...gOurs, ...gPlain, ...layers.flatMap((l) => [l.logits, l.mask])]);
});

/** The experts from tf ops: every expert on every token, weighted by gates * mask, HF [out, in] weights. */
function plainExperts(
  x: tf.Tensor2D,
  gates: tf.Tensor2D,
  mask: tf.Tensor2D,
  w: tf.Tensor2D[][],
): tf.Tensor2D {
  const [w1, w3, w2] = w as [tf.Tensor2D[], tf.Tensor2D[], tf.Tensor2D[]];
  const kept = tf.mul(gates, mask);
  const outs = w1.map((_, e) => {
    const h1 = tf.matMul(x, w1[e]!, false, true);
    const act = tf.mul(tf.mul(h1, tf.sigmoid(h1)), tf.matMul(x, w3[e]!, false, true));
    return tf.mul(tf.matMul(act, w2[e]!, false, true), tf.slice(kept, [0, e], [-1, 1]));
  });
  return tf.addN(outs) as tf.Tensor2D;
}

test('fusedExperts: equals every expert on its tokens from tf ops, value and the gradients of x, gates and each weight; an expert without tokens gets exact zeros', () => {
  // Odd sizes, so a wrong offset or stride cannot go unnoticed; expert 2 of 4 gets no token.
  const [n, hidden, ffn, experts] = [13, 7, 5, 4];
  const x = tf.randomNormal([n, hidden], 0, 1, 'float32', 1) as tf.Tensor2D;
  const logits = tf.randomNormal([n, experts], 0, 1, 'float32', 2);
  const noTwo = tf.tensor1d([0, 0, 1, 0]).mul(-1e9);
  const mask = topKMask(tf.add(logits, noTwo) as tf.Tensor2D, 2);
  const gates = tf.mul(tf.softmax(logits), mask) as tf.Tensor2D;
  const shapes: [number, number][] = [
    [ffn, hidden],
    [ffn, hidden],
    [hidden, ffn],
  ];
  const weights = shapes.map((shape, i) =>
    Array.from(
      { length: experts },
      (_, e) => tf.randomNormal(shape, 0, 0.5, 'float32', 10 * i + e) as tf.Tensor2D,
    ),
  );
  const dy = tf.randomNormal([n, hidden], 0, 1, 'float32', 7);
  const split = (t: tf.Tensor[]) =>
    [
      t.slice(2, 2 + experts),
      t.slice(2 + experts, 2 + 2 * experts),
      t.slice(2 + 2 * experts),
    ] as tf.Tensor2D[][];
  const loss =
    (f: (x: tf.Tensor2D, g: tf.Tensor2D, m: tf.Tensor2D, w: tf.Tensor2D[][]) => tf.Tensor2D) =>
    (...t: tf.Tensor[]) =>
      tf.sum(tf.mul(f(t[0] as tf.Tensor2D, t[1] as tf.Tensor2D, mask, split(t)), dy)) as tf.Scalar;
  const ours = (x: tf.Tensor2D, g: tf.Tensor2D, m: tf.Tensor2D, w: tf.Tensor2D[][]) =>
    fusedExperts(x, g, m, { w1: w[0]!, w3: w[1]!, w2: w[2]! });
  const inputs = [x, gates, ...weights.flat()];
  const yOurs = ours(x, gates, mask, weights);
  const yPlain = plainExperts(x, gates, mask, weights);
  assert.ok(maxAbsDiff(yOurs, yPlain) < 1e-5, `y differs by ${maxAbsDiff(yOurs, yPlain)}`);
  const gOurs = tf.grads(loss(ours))(inputs);
  const gPlain = tf.grads(loss(plainExperts))(inputs);
  const names = [
    'x',
    'gates',
    ...['w1', 'w3', 'w2'].flatMap((w) => Array.from({ length: experts }, (_, e) => `${w}[${e}]`)),
  ];
  names.forEach((name, i) => {
    const diff = maxAbsDiff(gOurs[i]!, gPlain[i]!);
    assert.ok(diff < 1e-5, `gradient of ${name} differs by ${diff}`);
    if (name.endsWith('[2]'))
      assert.equal(tf.max(tf.abs(gOurs[i]!)).arraySync(), 0, `${name} is not exactly zero`);
    else assert.ok((tf.max(tf.abs(gPlain[i]!)).arraySync() as number) > 1e-3, `${name}: trivial reference`);
  });
  tf.dispose([x, logits, noTwo, mask, gates, dy, yOurs, yPlain, ...weights.flat(), ...gOurs, ...gPlain]);
});

test('fused MoE kernels: leave no tensors behind, forward and backward', () => {
  const x = tf.randomNormal([6, 4]) as tf.Tensor2D;
  const logits = tf.randomNormal([6, 3]) as tf.Tensor2D;
  const w = { w1: [0, 1, 2].map(() => tf.randomNormal([5, 4]) as tf.Tensor2D) };
  const ws = {
    ...w,
    w3: [0, 1, 2].map(() => tf.randomNormal([5, 4]) as tf.Tensor2D),
    w2: [0, 1, 2].map(() => tf.randomNormal([4, 5]) as tf.Tensor2D),
  };
  const before = tf.memory().numTensors;
  const grads = tf.grads((a: tf.Tensor, l: tf.Tensor) => {
    const { probs, gates, mask } = fusedRoute(l as tf.Tensor2D, 2, true);
    const balance = fusedBalanceLoss([{ probs, mask }]);
    return tf.add(tf.sum(fusedExperts(a as tf.Tensor2D, gates, mask, ws)), balance) as tf.Scalar;
  })([x, logits]);
  assert.equal(tf.memory().numTensors, before + 2);
  tf.dispose([x, logits, ...grads, ...ws.w1, ...ws.w3, ...ws.w2]);
});

for (const [router, k] of [
  ['topK', 2],
  ['switch', 1],
] as [RouterType, number][]) {
  test(`sparse dispatch off wasm (tf ops on the cpu backend) equals dense dispatch, loss and every gradient (${router}, k=${k})`, async () => {
    await tf.setBackend('cpu');
    try {
      assert.ok(!fusedKernelsHere());
      const d = modelDims(tinyMixtral(4, router, k));
      const params = initParams(d, 4);
      const ids = tf.tensor2d(
        Array.from({ length: 27 }, (_, i) => (i * 37 + 11) % 259),
        [3, 9],
        'int32',
      );
      const run = (dispatch: 'dense' | 'sparse') =>
        tf.variableGrads(
          () => batchLoss(params, d, ids, { training: true, routing: { router, k, dispatch } }).total,
          [...params.values()],
        );
      const [dense, sparse] = [run('dense'), run('sparse')];
      assert.ok(maxAbsDiff(dense.value, sparse.value) < 1e-5);
      for (const [name, v] of params) {
        const diff = maxAbsDiff(dense.grads[v.name]!, sparse.grads[v.name]!);
        assert.ok(diff < 1e-5, `${name}: gradients differ by ${diff}`);
      }
      tf.dispose([
        ids,
        dense.value,
        sparse.value,
        ...Object.values(dense.grads),
        ...Object.values(sparse.grads),
      ]);
      disposeParams(params);
    } finally {
      await tf.setBackend('wasm');
    }
  });
}
