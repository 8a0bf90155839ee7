// The mix ablations other than combine (mixCombine.test.ts): spec.mix.routerInit and
// spec.finetune.freezeExperts reach the stage Jobs' environment, and the trainer's own argument
// parsing reads them back from that environment (the stage contract, end to end, without a pod);
// spec.finetune.computeShare sets the finetune Job's steps and status.compute reports the share.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BTXRunSpec } from '../../src/api/types.js';
import { parseMixArgs } from '../../src/cli/mix.js';
import { parseFlags } from '../../src/cli/flags.js';
import { TRAIN_COMMAND, trainSettingsFromFlags } from '../../src/cli/trainArgs.js';
import { applyDefaults } from '../../src/api/defaults.js';
import { env, makeRun, makeSpec, World } from './fixtures.js';

/** The world once the mix Job exists, and again once the finetune Job exists. */
function stageEnvs(overrides: Partial<BTXRunSpec>): {
  mix: Record<string, string>;
  finetune: Record<string, string>;
} {
  const w = new World(makeRun(overrides));
  w.throughExperts();
  const mix = env(w.job('demo-mix'));
  w.completeJob('demo-mix', { checkpoint: '/btx/runs/ml/demo/mixed' });
  w.step();
  return { mix, finetune: env(w.job('demo-finetune')) };
}

for (const routerInit of ['zeros', 'normal'] as const) {
  test(`mix.routerInit ${routerInit} reaches the mix Job and btx mix reads it from there`, () => {
    const { mix } = stageEnvs({ mix: { ...makeSpec().mix, routerInit } });
    assert.equal(mix.BTX_ROUTER_INIT, routerInit);
    const parsed = parseMixArgs([], mix);
    assert.ok(parsed !== 'help');
    assert.equal(parsed.routerInit, routerInit);
  });
}

for (const freezeExperts of [true, false]) {
  test(`finetune.freezeExperts ${freezeExperts} reaches the finetune Job and btx train finetune reads it from there`, () => {
    const { finetune } = stageEnvs({ finetune: { ...makeSpec().finetune, freezeExperts } });
    assert.equal(finetune.BTX_FREEZE_EXPERTS, String(freezeExperts));
    const flags = parseFlags(TRAIN_COMMAND, [], finetune);
    assert.ok(flags !== 'help');
    assert.equal(trainSettingsFromFlags('finetune', flags).freezeExperts, freezeExperts);
  });
}

test("finetune.computeShare sets the finetune Job's steps from the experts' compute, and status.compute shows the share", () => {
  // The fixture: dModel 16, 1 layer, ffn 32, seqLen 16, vocab 256; 3 experts x 6 steps x batch 2 (dense
  // 6656 active: 23003136 FLOPs); the MoE of 3, top 2: 8240 active, 1582080 FLOPs per finetune step of
  // batch 2. A share of 0.5 is the experts' FLOPs again: 23003136 / 1582080 = 14.54 -> 15 steps.
  const overrides = { finetune: { ...makeSpec().finetune, computeShare: 0.5 } };
  const w = new World({ ...makeRun(overrides), spec: applyDefaults(makeSpec(overrides)) });
  w.throughExperts();
  w.completeJob('demo-mix', { checkpoint: '/btx/runs/ml/demo/mixed' });
  const p = w.step();
  assert.equal(env(w.job('demo-finetune')).BTX_STEPS, '15');
  const btx = p.status.compute?.find((b) => b.model === 'btx');
  assert.equal(btx?.finetuneShare, (15 * 1582080) / (23003136 + 15 * 1582080));
  // Without it: no compute in status (as before), and the spec's finetune.steps (2).
  const plain = new World(makeRun());
  plain.throughExperts();
  plain.completeJob('demo-mix', { checkpoint: '/btx/runs/ml/demo/mixed' });
  assert.equal(plain.step().status.compute, undefined);
  assert.equal(env(plain.job('demo-finetune')).BTX_STEPS, '2');
});
