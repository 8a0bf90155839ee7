// The combine rule of `btx mix` (issue 11 item 3): how non-feed-forward tensors are made
// (average, seed, weighted), checked against values computed by hand. Each input holds c * m_i
// in every non-FFN tensor (c per checkpoint, m_i = 1, 2, 3, 1, 2, 3...), so every result is exact.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseMixArgs } from '../../src/cli/mix.js';
import { readTrainerState } from '../../src/trainer/checkpoint.js';
import { MixError } from '../../src/trainer/mix/expertSet.js';
import { mixExperts, type MixOptions } from '../../src/trainer/mix/mixExperts.js';
import type { FloatDType } from '../../src/trainer/safetensors.js';
import { ShardedReader, ShardedWriter } from '../../src/trainer/shardedCheckpoint.js';
import { log } from '../../src/util/log.js';
import { llamaConfig, llamaTensorSpecs, type LlamaShape } from './mixFixtures.js';

log.level = 'warn';

const root = await mkdtemp(join(tmpdir(), 'btx-mix-combine-'));
after(() => rm(root, { recursive: true, force: true }));

const shape: LlamaShape = { vocab: 16, hidden: 8, intermediate: 12, layers: 2, heads: 2 };
const FFN = /\.mlp\./;
const pattern = (i: number) => 1 + (i % 3);

/** A checkpoint whose non-FFN tensors hold c * m_i and whose FFN tensors hold 100 * c * m_i. */
async function constantCheckpoint(name: string, c: number, dtype: FloatDType): Promise<string> {
  const dir = join(root, 'in', name);
  const specs = llamaTensorSpecs(shape, dtype);
  await mkdir(dir, { recursive: true });
  const writer = await ShardedWriter.create(dir, specs, { shardSize: 700 });
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const scale = FFN.test(s.name) ? 100 * c : c;
    await writer.writeFloat32(
      s.name,
      Float32Array.from({ length: n }, (_, i) => scale * pattern(i)),
    );
  }
  await writer.close();
  await writeFile(join(dir, 'config.json'), JSON.stringify(llamaConfig(shape)));
  return dir;
}

let experts: { dir: string }[] = [];
let seed = '';
let otherShape = '';

before(async () => {
  // Three experts (F32, BF16, F16: 1, 3 and 8 are exact in each) and an F32 seed of -2.
  experts = [
    { dir: await constantCheckpoint('a', 1, 'F32') },
    { dir: await constantCheckpoint('b', 3, 'BF16') },
    { dir: await constantCheckpoint('c', 8, 'F16') },
  ];
  seed = await constantCheckpoint('seed', -2, 'F32');
  const wide: LlamaShape = { ...shape, vocab: 24 };
  otherShape = join(root, 'in', 'wide');
  const specs = llamaTensorSpecs(wide, 'F32');
  await mkdir(otherShape, { recursive: true });
  const w = await ShardedWriter.create(otherShape, specs);
  for (const s of specs) await w.writeFloat32(s.name, new Float32Array(s.shape.reduce((a, b) => a * b, 1)));
  await w.close();
  await writeFile(join(otherShape, 'config.json'), JSON.stringify(llamaConfig(wide)));
});

/** Every output tensor: non-FFN ones must be want * m_i, expert e's FFN ones 100 * c_e * m_i. */
async function check(out: string, want: number, expertScales: number[]): Promise<void> {
  const reader = await ShardedReader.open(out);
  try {
    let combined = 0;
    for (const t of reader.tensors) {
      if (t.name.endsWith('block_sparse_moe.gate.weight')) continue;
      const values = await reader.readFloat32(t.name);
      const m = /block_sparse_moe\.experts\.(\d+)\./.exec(t.name);
      const scale = m ? 100 * expertScales[Number(m[1])]! : want;
      if (!m) combined++;
      for (let i = 0; i < values.length; i++) {
        assert.equal(values[i], scale * pattern(i), `${t.name}[${i}]`);
      }
    }
    assert.equal(combined, 3 + shape.layers * 6, 'every non-FFN tensor checked');
  } finally {
    await reader.close();
  }
}

const mix = (name: string, opts: Partial<MixOptions>) =>
  mixExperts({ experts, out: join(root, 'out', name), dtype: 'F32', ...opts });

test('average (the default): the mean of all experts, (1 + 3 + 8) / 3 = 4; with the seed as generalist (1 + 3 + 8 - 2) / 4 = 2.5', async () => {
  const s = await mix('average', {});
  assert.equal(s.combine, 'average');
  await check(s.out, 4, [1, 3, 8]);
  const g = await mix('average-g', { generalist: { dir: seed } });
  await check(g.out, 2.5, [1, 3, 8, -2]);
  const state = await readTrainerState(g.out);
  assert.equal((state?.mix as { combine?: string }).combine, 'average');
});

test('seed: the seed checkpoint copied (-2), the experts still stacked; from --generalist when no --seed-checkpoint', async () => {
  const s = await mix('seed', { combine: 'seed', seedCheckpoint: { dir: seed } });
  assert.equal(s.combine, 'seed');
  assert.equal(s.experts.length, 3, 'the seed checkpoint is not an expert');
  await check(s.out, -2, [1, 3, 8]);
  const g = await mix('seed-g', { combine: 'seed', generalist: { dir: seed } });
  await check(g.out, -2, [1, 3, 8, -2]);
  const state = await readTrainerState(s.out);
  assert.equal((state?.mix as { seed?: string }).seed, seed);
});

test('weighted: weights 1, 1, 2 -> 0.25 * 1 + 0.25 * 3 + 0.5 * 8 = 5; with the generalist weighted 4 of 8: 1.5', async () => {
  const s = await mix('weighted', { combine: 'weighted', weights: [1, 1, 2] });
  assert.deepEqual(s.weights, [0.25, 0.25, 0.5]);
  await check(s.out, 5, [1, 3, 8]);
  const g = await mix('weighted-g', {
    combine: 'weighted',
    weights: [100, 100, 200, 400],
    generalist: { dir: seed },
  });
  await check(g.out, 1.5, [1, 3, 8, -2]);
  // Weights 1, 0, 0 give the first expert exactly.
  const first = await mix('weighted-first', { combine: 'weighted', weights: [1, 0, 0] });
  await check(first.out, 1, [1, 3, 8]);
});

test('a combine rule without what it needs is refused, naming the flag', async () => {
  await assert.rejects(mix('x1', { combine: 'weighted' }), /--combine weighted needs --weights/);
  await assert.rejects(
    mix('x2', { combine: 'weighted', weights: [1, 2] }),
    /--weights has 2 values for 3 experts/,
  );
  await assert.rejects(mix('x3', { combine: 'weighted', weights: [1, -1, 1] }), /must be a number >= 0/);
  await assert.rejects(mix('x4', { combine: 'weighted', weights: [0, 0, 0] }), /must not all be 0/);
  await assert.rejects(
    mix('x5', { combine: 'average', weights: [1, 1, 1] }),
    /only used with --combine weighted/,
  );
  await assert.rejects(mix('x6', { combine: 'seed' }), /--combine seed needs the seed/);
  await assert.rejects(mix('x7', { seedCheckpoint: { dir: seed } }), /only used with --combine seed/);
  await assert.rejects(
    mix('x8', { combine: 'seed', seedCheckpoint: { dir: otherShape } }),
    (err: unknown) => err instanceof MixError && /vocab_size 24 differs/.test(err.message),
  );
});

test('btx mix takes the rule from --combine/--weights/--seed-checkpoint or the stage environment; flags win', () => {
  const env = {
    BTX_EXPERTS: 'a,b',
    BTX_OUTPUT: '/btx/mixed',
    BTX_MIX_COMBINE: 'weighted',
    BTX_MIX_WEIGHTS: '3, 1',
  };
  const fromEnv = parseMixArgs([], env) as MixOptions;
  assert.equal(fromEnv.combine, 'weighted');
  assert.deepEqual(fromEnv.weights, [3, 1]);
  const flags = parseMixArgs(['--combine', 'seed', '--seed-checkpoint', '/btx/seed'], env) as MixOptions;
  assert.equal(flags.combine, 'seed');
  assert.deepEqual(flags.seedCheckpoint, { dir: '/btx/seed' });
  const seedEnv = parseMixArgs([], {
    ...env,
    BTX_MIX_COMBINE: 'seed',
    BTX_SEED_CHECKPOINT: '/btx/s',
  }) as MixOptions;
  assert.deepEqual(seedEnv.seedCheckpoint, { dir: '/btx/s' });
  assert.throws(
    () => parseMixArgs(['--combine', 'median'], env),
    /--combine must be one of average, seed, weighted, got 'median'/,
  );
  assert.throws(
    () => parseMixArgs(['--weights', '1,x'], env),
    /--weights must be numbers >= 0 separated by commas, got '1,x'/,
  );
  assert.throws(() => parseMixArgs(['--weights', '1,-2'], env), /--weights must be numbers >= 0/);
  assert.throws(
    () => parseMixArgs([], { ...env, BTX_MIX_WEIGHTS: '' }),
    /--combine weighted needs --weights/,
  );
  assert.throws(() => parseMixArgs(['--combine', 'seed'], env), /--combine seed needs --seed-checkpoint/);
});
