// spec.mix.combine reaches the mix Job as the stage contract says: the rule, the seed checkpoint
// for `seed`, and for `weighted` one weight per mixed expert (tokens trained: steps x batch size).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BTXRunSpec } from '../../src/api/types.js';
import { env, makeRun, makeSpec, World } from './fixtures.js';

function mixEnv(overrides: Partial<BTXRunSpec>): Record<string, string> {
  const w = new World(makeRun(overrides));
  w.throughExperts();
  return env(w.job('demo-mix'));
}

const mix = (m: Partial<BTXRunSpec['mix']>) => ({ mix: { ...makeSpec().mix, ...m } });

test('combine average (the default) sets only the rule', () => {
  const e = mixEnv({});
  assert.equal(e.BTX_MIX_COMBINE, 'average');
  assert.equal(e.BTX_MIX_WEIGHTS, undefined);
  assert.equal(e.BTX_SEED_CHECKPOINT, undefined);
});

test('combine seed passes the seed checkpoint, with or without the seed as generalist', () => {
  const e = mixEnv(mix({ combine: 'seed' }));
  assert.equal(e.BTX_MIX_COMBINE, 'seed');
  assert.equal(e.BTX_SEED_CHECKPOINT, '/btx/runs/ml/demo/seed/step-4');
  assert.equal(e.BTX_GENERALIST, undefined);
  const g = mixEnv(mix({ combine: 'seed', includeSeedAsExpert: true }));
  assert.equal(g.BTX_SEED_CHECKPOINT, '/btx/runs/ml/demo/seed/step-4');
  assert.equal(g.BTX_GENERALIST, '/btx/runs/ml/demo/seed/step-4');
});

test('combine weighted: weights are the tokens each expert trained on, in expert order, the seed last', () => {
  // Domains code, math (steps 12), prose; expert.steps 6, batch 2: 12, 24, 12.
  const domains = makeSpec().domains.map((d) => (d.name === 'math' ? { ...d, steps: 12 } : d));
  const e = mixEnv({ ...mix({ combine: 'weighted' }), domains });
  assert.equal(e.BTX_MIX_COMBINE, 'weighted');
  assert.equal(e.BTX_MIX_WEIGHTS, '12,24,12');
  // The trained seed: seed.train.steps 4 x batch 3.
  const seeded = mixEnv({
    ...mix({ combine: 'weighted', includeSeedAsExpert: true }),
    domains,
    seed: { train: { data: '/btx/data/seed.txt', steps: 4, batchSize: 3 } },
  });
  assert.equal(seeded.BTX_MIX_WEIGHTS, '12,24,12,12');
  // A given seed checkpoint has no known token count: the experts' mean, (12 + 24 + 12) / 3.
  const w = new World(
    makeRun({
      ...mix({ combine: 'weighted', includeSeedAsExpert: true }),
      domains,
      seed: { checkpoint: '/btx/models/seed' },
    }),
  );
  w.throughTokenize();
  w.step();
  for (const d of domains) {
    w.setPod(`demo-expert-${d.name}-1`, {
      phase: 'Succeeded',
      exitCode: 0,
      message: JSON.stringify({ checkpoint: `/ck/${d.name}`, step: 6, loss: 2 }),
    });
  }
  w.step();
  assert.equal(env(w.job('demo-mix')).BTX_MIX_WEIGHTS, '12,24,12,16');
});
