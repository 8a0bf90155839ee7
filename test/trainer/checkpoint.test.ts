import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  CheckpointError,
  checkpointDirName,
  findLatestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
  type NamedTensor,
  type TrainerStateFields,
} from '../../src/trainer/checkpoint.js';
import { llamaConfigFromSpec } from '../../src/trainer/hfConfig.js';
import { INDEX_FILE, readShardIndex } from '../../src/trainer/shardedCheckpoint.js';

const root = await mkdtemp(join(tmpdir(), 'btx-checkpoint-'));
after(() => rm(root, { recursive: true, force: true }));

const config = llamaConfigFromSpec({
  vocabSize: 11,
  dModel: 4,
  layers: 1,
  heads: 2,
  ffnHidden: 6,
  seqLen: 8,
});

function tensors(seed: number): NamedTensor[] {
  let s = seed;
  const rnd = (n: number) =>
    Float32Array.from({ length: n }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 2 ** 32 - 0.5;
    });
  return [
    { name: 'model.embed_tokens.weight', shape: [11, 4], data: rnd(44) },
    { name: 'model.layers.0.mlp.gate_proj.weight', shape: [6, 4], data: rnd(24) },
    { name: 'model.norm.weight', shape: [4], data: rnd(4) },
  ];
}

function state(step: number): TrainerStateFields {
  return {
    stage: 'expert',
    step,
    totalSteps: 100,
    loss: 1.5,
    dataPosition: step * 2,
    randomSeed: 42,
    time: new Date(0).toISOString(),
  };
}

test('save -> load is bit-exact for F32, with state, sha256s and optimizer tensors', async () => {
  const dir = join(root, 'a', checkpointDirName(10));
  const t = tensors(1);
  const opt = [{ name: 'm.model.norm.weight', shape: [4], data: new Float32Array([1, 2, 3, 4]) }];
  const withOptimizer = {
    ...state(10),
    optimizer: { file: 'optimizer.safetensors', kind: 'adamw', step: 10 },
  };
  await assert.rejects(saveCheckpoint(dir, t, config, withOptimizer), /not among the extraTensorFiles/);
  await saveCheckpoint(dir, t, config, withOptimizer, { extraTensorFiles: { 'optimizer.safetensors': opt } });
  const loaded = await loadCheckpoint(dir);
  for (const x of t) {
    const y = loaded.tensors.get(x.name)!;
    assert.deepEqual(y.shape, x.shape);
    assert.deepEqual(new Uint32Array(y.data.buffer), new Uint32Array(x.data.buffer), x.name);
  }
  assert.equal(loaded.state!.step, 10);
  assert.equal(loaded.state!.dataPosition, 20);
  assert.deepEqual(Object.keys(loaded.state!.files).sort(), [
    'config.json',
    'model.safetensors',
    'optimizer.safetensors',
  ]);
  assert.deepEqual(
    [...loaded.extra['optimizer.safetensors']!.get('m.model.norm.weight')!.data],
    [1, 2, 3, 4],
  );
  assert.equal(loaded.config.hidden_size, 4);
  assert.equal(loaded.config.torch_dtype, 'float32');
  assert.deepEqual(await readdir(join(root, 'a')), ['step-10'], 'no temp folder left behind');
});

test('sharded save writes HF shard names and an index, and loads back', async () => {
  const dir = join(root, 'sharded', 'step-1');
  const t = tensors(2);
  await saveCheckpoint(dir, t, config, state(1), { shardSize: 50, dtype: 'BF16' });
  const files = (await readdir(dir)).sort();
  assert.deepEqual(files, [
    'config.json',
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors',
    INDEX_FILE,
    'trainer_state.json',
  ]);
  const index = await readShardIndex(dir);
  assert.equal(index.metadata.total_size, (44 + 24 + 4) * 2);
  assert.equal(index.weight_map['model.norm.weight'], 'model-00003-of-00003.safetensors');
  const loaded = await loadCheckpoint(dir);
  assert.equal(loaded.config.torch_dtype, 'bfloat16');
  const norm = loaded.tensors.get('model.norm.weight')!.data;
  assert.ok(Math.abs(norm[0]! - t[2]!.data[0]!) < 1e-2);
});

test('a flipped byte in model.safetensors is detected and findLatestCheckpoint falls back to the previous step', async () => {
  const parent = join(root, 'corrupt');
  await saveCheckpoint(join(parent, checkpointDirName(5)), tensors(5), config, state(5));
  await saveCheckpoint(join(parent, checkpointDirName(10)), tensors(10), config, state(10));
  const file = join(parent, 'step-10', 'model.safetensors');
  const bytes = await readFile(file);
  bytes[bytes.length - 3]! ^= 0x01;
  await writeFile(file, bytes);
  await assert.rejects(loadCheckpoint(join(parent, 'step-10')), (err: unknown) => {
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.file, 'model.safetensors');
    assert.match(err.message, /step-10\/model\.safetensors: sha256 .* does not match/);
    return true;
  });
  const latest = await findLatestCheckpoint(parent);
  assert.equal(latest?.state?.step, 5);
});

test('unfinished .tmp folders (a crash mid-write) never show as checkpoints; steps sort numerically', async () => {
  const parent = join(root, 'list');
  await saveCheckpoint(join(parent, checkpointDirName(9)), tensors(9), config, state(9));
  await saveCheckpoint(join(parent, checkpointDirName(100)), tensors(100), config, state(100));
  // What a crash while writing step 200 leaves behind: a temp folder with part of the files.
  const crashed = join(parent, 'step-200.tmp-deadbeef');
  await mkdir(crashed);
  await writeFile(join(crashed, 'model.safetensors'), Buffer.alloc(10));
  assert.deepEqual(
    (await listCheckpoints(parent)).map((c) => c.step),
    [100, 9],
  );
  assert.equal((await findLatestCheckpoint(parent))?.state?.step, 100);
  assert.equal(await findLatestCheckpoint(join(root, 'nothing-here')), null);
});

test('saving the same step again replaces the folder atomically', async () => {
  const dir = join(root, 'again', 'step-3');
  await saveCheckpoint(dir, tensors(1), config, state(3));
  const second = tensors(2);
  await saveCheckpoint(dir, second, config, { ...state(3), loss: 0.5 });
  const loaded = await loadCheckpoint(dir);
  assert.equal(loaded.state!.loss, 0.5);
  assert.deepEqual(loaded.tensors.get('model.norm.weight')!.data, second[2]!.data);
  assert.deepEqual(await readdir(join(root, 'again')), ['step-3']);
});
