// `btx train seed|expert` take what finetune takes (issue 11 item 5): a DOMAIN=PATH list weighted by
// --data-weights, besides one file or folder named by --domain, so a dense baseline built by hand no
// longer weights domains by file size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFlags, UsageError } from '../../src/cli/flags.js';
import { TRAIN_COMMAND, trainSettingsFromFlags } from '../../src/cli/trainArgs.js';
import type { TrainStage } from '../../src/trainer/trainStage.js';

function settings(stage: TrainStage, argv: string[]) {
  const flags = parseFlags(TRAIN_COMMAND, [...argv, '--out', '/tmp/out'], {});
  assert.ok(flags !== 'help');
  return trainSettingsFromFlags(stage, flags);
}

for (const stage of ['seed', 'expert'] as const) {
  test(`train ${stage}: a DOMAIN=PATH list with --data-weights, unnamed domains weigh 1`, () => {
    const s = settings(stage, [
      '--data',
      'math=/d/math,code=/d/code.txt,prose=/d/p',
      '--data-weights',
      'math=3,code=0.5',
    ]);
    assert.deepEqual(s.data, [
      { name: 'math', path: '/d/math' },
      { name: 'code', path: '/d/code.txt' },
      { name: 'prose', path: '/d/p' },
    ]);
    assert.deepEqual(s.weights, [3, 0.5, 1]);
  });

  test(`train ${stage}: one path stays one domain, named by --domain (an = inside a path is no name)`, () => {
    assert.deepEqual(settings(stage, ['--data', '/d/a=b/math', '--domain', 'math']).data, [
      { name: 'math', path: '/d/a=b/math' },
    ]);
    assert.equal(
      settings(stage, ['--data', './corpus']).data[0]?.name,
      stage === 'seed' ? 'general' : 'domain',
    );
  });
}

test('train: --data-weights naming no domain of --data, or a domain listed twice, is a usage error', () => {
  assert.throws(
    () => settings('expert', ['--data', 'a=/a,b=/b', '--data-weights', 'c=1']),
    (e: unknown) =>
      e instanceof UsageError && /--data-weights: c is not a domain of --data \(a, b\)/.test(e.message),
  );
  assert.throws(
    () => settings('finetune', ['--data', 'a=/a,a=/b']),
    (e: unknown) => e instanceof UsageError && /domain a is listed twice/.test(e.message),
  );
});
