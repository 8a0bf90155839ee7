// The mix ablations other than combine (mixCombine.test.ts): spec.mix.routerInit and
// spec.finetune.freezeExperts reach the stage Jobs' environment, and the trainer's own argument
// parsing reads them back from that environment (the stage contract, end to end, without a pod).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BTXRunSpec } from '../../src/api/types.js';
import { parseMixArgs } from '../../src/cli/mix.js';
import { parseFlags } from '../../src/cli/flags.js';
import { TRAIN_COMMAND, trainSettingsFromFlags } from '../../src/cli/trainArgs.js';
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
