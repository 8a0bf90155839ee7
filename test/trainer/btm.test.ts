// Branch-Train-Merge's ensemble (src/trainer/btm.ts): the posterior weighting against a two-expert case
// worked out by hand, and the eval stage scoring it on real checkpoints.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { btmEnsemble, btmMeanLoss } from '../../src/trainer/btm.js';
import { runEval } from '../../src/trainer/evaluate.js';
import { backend, saveRandomCheckpoint, tempDir, tinyLlama, writeCorpus } from './trainerFixtures.js';

const tmp = tempDir('btm');
before(backend);
after(tmp.cleanup);

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

// Expert A gives the two tokens of a window probabilities 1/2 then 1/4; expert B 1/4 then 1/2.
const nll = [
  [-Math.log(0.5), -Math.log(0.25)],
  [-Math.log(0.25), -Math.log(0.5)],
];

test('btm: uniform prior, two experts, by hand', () => {
  const { losses, weights } = btmEnsemble(nll);
  // Position 0: nothing seen, the prior: 1/2 x 1/2 + 1/2 x 1/4 = 3/8.
  close(weights[0]![0]!, 0.5, 'w_A(0)');
  close(losses[0]!, -Math.log(3 / 8), 'loss(0)');
  // Position 1: posterior ∝ prior x p(first token): A 1/2 x 1/2 = 1/4, B 1/2 x 1/4 = 1/8 -> 2/3, 1/3;
  // p = 2/3 x 1/4 + 1/3 x 1/2 = 1/3.
  close(weights[1]![0]!, 2 / 3, 'w_A(1)');
  close(weights[1]![1]!, 1 / 3, 'w_B(1)');
  close(losses[1]!, Math.log(3), 'loss(1)');
  close(btmMeanLoss([nll]), (-Math.log(3 / 8) + Math.log(3)) / 2, 'mean');
});

test('btm: a token-count prior 3:1, by hand', () => {
  const { losses, weights } = btmEnsemble(nll, [300, 100]);
  // Position 0: 3/4 x 1/2 + 1/4 x 1/4 = 7/16.
  close(losses[0]!, -Math.log(7 / 16), 'loss(0)');
  // Position 1: 3/4 x 1/2 = 3/8 and 1/4 x 1/4 = 1/16 -> 6/7, 1/7; p = 6/7 x 1/4 + 1/7 x 1/2 = 2/7.
  close(weights[1]![0]!, 6 / 7, 'w_A(1)');
  close(losses[1]!, -Math.log(2 / 7), 'loss(1)');
});

test('btm: the posterior follows the expert that explains the context, and survives long windows', () => {
  // 2000 tokens where A is right (p = 0.9) and B is not (p = 0.1): prefix likelihoods underflow in
  // linear space long before the end; in log space the weight of A goes to 1 and the loss to -ln 0.9.
  const a = new Float64Array(2000).fill(-Math.log(0.9));
  const b = new Float64Array(2000).fill(-Math.log(0.1));
  const { losses, weights } = btmEnsemble([a, b]);
  assert.ok(losses.every(Number.isFinite));
  close(weights[1999]![0]!, 1, 'w_A at the end');
  close(losses[1999]!, -Math.log(0.9), 'loss at the end');
});

test('btm: bad input is refused with a reason', () => {
  assert.throws(() => btmEnsemble([]), /no experts/);
  assert.throws(() => btmEnsemble([[1, 2], [1]]), /same tokens/);
  assert.throws(() => btmEnsemble(nll, [1]), /prior needs 2 weights/);
  assert.throws(() => btmEnsemble(nll, [0, 0]), /not all 0/);
});

test('eval: BTM of two copies of one model scores exactly that model; means cover every model', async () => {
  const dir = await saveRandomCheckpoint(join(tmp.dir, 'm'), tinyLlama(), { randomSeed: 3, stage: 'test' });
  const other = await saveRandomCheckpoint(join(tmp.dir, 'o'), tinyLlama(), { randomSeed: 4, stage: 'test' });
  const data = [
    { name: 'a', path: writeCorpus(tmp.dir, 'a') },
    { name: 'b', path: writeCorpus(tmp.dir, 'b') },
  ];
  const report = await runEval({
    checkpoints: [{ name: 'm', dir }],
    btm: {
      experts: [
        { name: 'x', dir },
        { name: 'y', dir },
      ],
    },
    data,
    batches: 2,
    batchSize: 2,
    tokens: join(tmp.dir, 'tokens'),
  });
  for (const domain of ['a', 'b']) {
    const m = report.results.find((r) => r.model === 'm' && r.domain === domain)!;
    const btm = report.results.find((r) => r.model === 'btm' && r.domain === domain)!;
    assert.ok(
      Math.abs(m.loss - btm.loss) < 1e-4,
      `${domain}: model ${m.loss}, btm of two copies ${btm.loss}`,
    );
  }
  assert.deepEqual(
    report.means.map((x) => [x.model, x.domains]),
    [
      ['m', 2],
      ['btm', 2],
    ],
  );
  // Two different models: a Bayesian mixture's loss over a window is at most the best member's plus
  // ln(1/prior) = ln 2, so per token at most ln 2 / seqLen above the better model.
  const mixed = await runEval({
    checkpoints: [
      { name: 'm', dir },
      { name: 'o', dir: other },
    ],
    btm: {
      experts: [
        { name: 'm', dir },
        { name: 'o', dir: other },
      ],
    },
    data,
    batches: 2,
    batchSize: 2,
    tokens: join(tmp.dir, 'tokens'),
  });
  for (const domain of ['a', 'b']) {
    const loss = (model: string) => mixed.results.find((r) => r.model === model && r.domain === domain)!.loss;
    const bound = Math.min(loss('m'), loss('o')) + Math.LN2 / mixed.seqLen;
    assert.ok(loss('btm') <= bound + 1e-5, `${domain}: btm ${loss('btm')} above ${bound}`);
  }
});
