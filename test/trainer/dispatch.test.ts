import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { AdamW } from '../../src/trainer/adamw.js';
import { batchLoss, disposeParams, forward, initParams, modelDims } from '../../src/trainer/model.js';
import type { Params } from '../../src/trainer/model.js';
import { DISPATCH_ENV, defaultDispatch } from '../../src/trainer/moe.js';
import type { Dispatch, RoutingOptions } from '../../src/trainer/moe.js';
import type { RouterType } from '../../src/trainer/hfConfig.js';
import { trainLoop } from '../../src/trainer/train.js';
import { backend, tempDir, tinyMixtral, writeCorpus, byteDomain } from './trainerFixtures.js';

before(backend);

const ids = tf.tensor2d(
  Array.from({ length: 3 * 9 }, (_, i) => (i * 37 + 11) % 259),
  [3, 9],
  'int32',
);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).arraySync() as number);
}

/** Logits and every parameter's gradient of one training loss with the given dispatch. */
function run(params: Params, routing: RoutingOptions, dispatch: Dispatch, router: RouterType, k: number) {
  const d = modelDims(tinyMixtral(4, router, k));
  const opts = { training: true, noiseSeed: 9, routing: { ...routing, dispatch } };
  const logits = tf.tidy(() => forward(params, d, tf.slice(ids, [0, 0], [3, 8]) as tf.Tensor2D, opts).logits);
  const { value, grads } = tf.variableGrads(
    () => batchLoss(params, d, ids, opts).total,
    [...params.values()],
  );
  return { logits, value, grads };
}

const cases: [RouterType, number][] = [
  ['topK', 1],
  ['topK', 2],
  ['switch', 1],
  ['sampleTop1', 1],
];
for (const [router, k] of cases) {
  test(`MoE dispatch: sparse and dense dispatch give the same logits and gradients (${router}, k=${k})`, () => {
    const d = modelDims(tinyMixtral(4, router, k));
    const params = initParams(d, 4);
    const routing = { router, k };
    const dense = run(params, routing, 'dense', router, k);
    const sparse = run(params, routing, 'sparse', router, k);
    assert.ok(
      maxAbsDiff(dense.logits, sparse.logits) < 1e-5,
      `logits ${maxAbsDiff(dense.logits, sparse.logits)}`,
    );
    assert.ok(maxAbsDiff(dense.value, sparse.value) < 1e-5);
    assert.equal(Object.keys(sparse.grads).length, params.size);
    for (const [name, v] of params) {
      const diff = maxAbsDiff(dense.grads[v.name]!, sparse.grads[v.name]!);
      assert.ok(diff < 1e-5, `${name}: gradients differ by ${diff}`);
    }
    const routerGrad = tf
      .norm(sparse.grads[params.get('model.layers.0.block_sparse_moe.gate.weight')!.name]!)
      .arraySync() as number;
    assert.ok(routerGrad > 1e-7, `router grad norm ${routerGrad}`);
    tf.dispose([dense.logits, dense.value, sparse.logits, sparse.value]);
    tf.dispose([...Object.values(dense.grads), ...Object.values(sparse.grads)]);
    disposeParams(params);
  });
}

test('MoE dispatch: defaults to sparse below E experts per token, dense for soft routing; the override wins', () => {
  const saved = process.env[DISPATCH_ENV];
  try {
    delete process.env[DISPATCH_ENV];
    assert.equal(defaultDispatch({ router: 'topK', k: 2 }, 4), 'sparse');
    assert.equal(defaultDispatch({ router: 'topK', k: 4 }, 4), 'dense');
    assert.equal(defaultDispatch({ router: 'switch', k: 2 }, 4), 'sparse');
    assert.equal(defaultDispatch({ router: 'soft', k: 2, dispatch: 'sparse' }, 4), 'dense');
    process.env[DISPATCH_ENV] = 'dense';
    assert.equal(defaultDispatch({ router: 'topK', k: 2 }, 4), 'dense');
    assert.equal(defaultDispatch({ router: 'topK', k: 2, dispatch: 'sparse' }, 4), 'sparse');
    process.env[DISPATCH_ENV] = 'bogus';
    assert.throws(() => defaultDispatch({ router: 'topK', k: 2 }, 4), /BTX_MOE_DISPATCH/);
  } finally {
    if (saved === undefined) delete process.env[DISPATCH_ENV];
    else process.env[DISPATCH_ENV] = saved;
  }
});

test('MoE dispatch: an expert with no tokens gets an exact zero gradient and the same AdamW step as dense', () => {
  // A zero router ties every expert; ties go to the lowest index, so top-1 sends every token to
  // expert 0 and experts 1-3 receive none.
  const d = modelDims(tinyMixtral(4, 'topK', 1));
  const after: Record<Dispatch, Params> = { dense: initParams(d, 6), sparse: initParams(d, 6) };
  for (const dispatch of ['dense', 'sparse'] as const) {
    const params = after[dispatch];
    for (const [name, v] of params) if (name.endsWith('.gate.weight')) v.assign(tf.zerosLike(v));
    const opt = new AdamW(params);
    const { value, grads } = tf.variableGrads(
      () => batchLoss(params, d, ids, { training: true, routing: { router: 'topK', k: 1, dispatch } }).total,
      opt.variables(),
    );
    for (const e of [1, 2, 3]) {
      for (const w of ['w1', 'w2', 'w3']) {
        const g = grads[params.get(`model.layers.1.block_sparse_moe.experts.${e}.${w}.weight`)!.name];
        assert.ok(g, `no gradient for expert ${e} ${w} (${dispatch})`);
        assert.equal(tf.max(tf.abs(g)).arraySync(), 0);
      }
    }
    tf.dispose([opt.apply(grads, 1e-2), value, ...Object.values(grads)]);
    opt.dispose();
  }
  for (const [name, v] of after.dense) {
    const diff = maxAbsDiff(v, after.sparse.get(name)!);
    assert.ok(diff < 1e-6, `${name} differs by ${diff} after one step`);
  }
  disposeParams(after.dense);
  disposeParams(after.sparse);
});

test('MoE dispatch: trains with sparse dispatch and experts that get no tokens, leaking no tensors', async () => {
  const tmp = tempDir('dispatch');
  try {
    const d = modelDims(tinyMixtral(4, 'topK', 1));
    const params = initParams(d, 2);
    for (const [name, v] of params) if (name.endsWith('.gate.weight')) v.assign(tf.zerosLike(v));
    const optimizer = new AdamW(params);
    const counts: number[] = [];
    const losses: number[] = [];
    await trainLoop({
      params,
      dims: d,
      optimizer,
      source: { domains: [await byteDomain('pears', writeCorpus(tmp.dir, 'pears'))] },
      seed: 1,
      batchSize: 2,
      seqLen: 16,
      schedule: { peak: 1e-3, warmupSteps: 1, totalSteps: 4, minRatio: 0.1 },
      startStep: 0,
      checkpointEvery: 0,
      routingEvery: 1,
      routing: { router: 'topK', k: 1, dispatch: 'sparse' },
      onStep: (r) => {
        counts.push(tf.memory().numTensors);
        losses.push(r.loss);
      },
    });
    assert.ok(losses.every(Number.isFinite), `losses ${losses.join(', ')}`);
    assert.equal(new Set(counts.slice(1)).size, 1, `numTensors per step: ${counts.join(', ')}`);
    optimizer.dispose();
    disposeParams(params);
  } finally {
    tmp.cleanup();
  }
});

test('MoE dispatch: sparse training is deterministic: 4 steps equal 2 steps and a resumed 2 bit-exactly (sampleTop1)', async () => {
  const tmp = tempDir('dispatch-resume');
  try {
    const d = modelDims(tinyMixtral(4, 'sampleTop1', 1));
    const source = { domains: [await byteDomain('plums', writeCorpus(tmp.dir, 'plums'))] };
    const train = async (params: Params, optimizer: AdamW, startStep: number, stopAtStep: number) =>
      trainLoop({
        params,
        dims: d,
        optimizer,
        source,
        seed: 3,
        batchSize: 2,
        seqLen: 16,
        schedule: { peak: 1e-2, warmupSteps: 1, totalSteps: 4, minRatio: 0.1 },
        startStep,
        stopAtStep,
        checkpointEvery: 0,
        routing: { router: 'sampleTop1', k: 1, dispatch: 'sparse' },
      });
    const whole = initParams(d, 8);
    const wholeOpt = new AdamW(whole);
    await train(whole, wholeOpt, 0, 4);
    const split = initParams(d, 8);
    const splitOpt = new AdamW(split);
    await train(split, splitOpt, 0, 2);
    await train(split, splitOpt, 2, 4);
    for (const [name, v] of whole) assert.equal(maxAbsDiff(v, split.get(name)!), 0, name);
    wholeOpt.dispose();
    splitOpt.dispose();
    disposeParams(whole);
    disposeParams(split);
  } finally {
    tmp.cleanup();
  }
});
