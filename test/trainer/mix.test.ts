import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runBtx } from '../../src/cli/commands.js';
import { parseMixArgs } from '../../src/cli/mix.js';
import {
  loadCheckpoint,
  readTrainerState,
  saveCheckpoint,
  verifyCheckpointFiles,
} from '../../src/trainer/checkpoint.js';
import { mixExperts, type MixOptions } from '../../src/trainer/mix/mixExperts.js';
import { encodeFloats, type FloatDType } from '../../src/trainer/safetensors.js';
import { INDEX_FILE, readShardIndex, ShardedReader } from '../../src/trainer/shardedCheckpoint.js';
import { byteTokenizer, loadTokenizer } from '../../src/trainer/tokenizer.js';
import { log } from '../../src/util/log.js';
import { llama3TokenizerDir } from '../../scripts/llama3TokenizerDir.js';
import { writeLlamaCheckpoint, type LlamaShape } from './mixFixtures.js';

log.level = 'warn';

const root = await mkdtemp(join(tmpdir(), 'btx-mix-'));
after(() => rm(root, { recursive: true, force: true }));

// Every expert carries Llama 3's real tokenizer files (the mix checks they agree and copies them).
const tokenizer = llama3TokenizerDir();
const shape: LlamaShape = { vocab: 32, hidden: 8, intermediate: 12, layers: 2, heads: 2, kvHeads: 1 };
const experts: string[] = [];
let generalist = '';

before(async () => {
  // Three BF16/F16 experts with different shard layouts, and an F32 generalist.
  experts.push(
    await writeLlamaCheckpoint(join(root, 'in', 'math'), shape, { dtype: 'BF16', seed: 1, tokenizer }),
    await writeLlamaCheckpoint(join(root, 'in', 'code'), shape, {
      dtype: 'BF16',
      seed: 2,
      shardSize: 600,
      tokenizer,
    }),
    await writeLlamaCheckpoint(join(root, 'in', 'prose'), shape, {
      dtype: 'F16',
      seed: 3,
      shardSize: 1500,
      tokenizer,
    }),
  );
  generalist = await writeLlamaCheckpoint(join(root, 'in', 'seed'), shape, {
    dtype: 'F32',
    seed: 4,
    tokenizer,
  });
});

/** Every input's tensors as float32 (the exact values their dtype holds). */
async function readAll(dir: string): Promise<Map<string, Float32Array>> {
  const reader = await ShardedReader.open(dir);
  try {
    const out = new Map<string, Float32Array>();
    for (const t of reader.tensors) out.set(t.name, await reader.readFloat32(t.name));
    return out;
  } finally {
    await reader.close();
  }
}

async function readRaw(dir: string): Promise<{ reader: ShardedReader; raw: Map<string, Uint8Array> }> {
  const reader = await ShardedReader.open(dir);
  const raw = new Map<string, Uint8Array>();
  for (const t of reader.tensors) raw.set(t.name, await reader.readBytes(t.name));
  await reader.close();
  return { reader, raw };
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.byteLength, b.byteLength, `${what}: length`);
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${what}: bytes differ`);
}

/** The float32 mean as the spec defines it: sum in expert order with float32 rounding, then divide. */
function float32Mean(inputs: Float32Array[]): Float32Array {
  const sum = Float32Array.from(inputs[0]!);
  for (const x of inputs.slice(1)) for (let i = 0; i < sum.length; i++) sum[i] = Math.fround(sum[i]! + x[i]!);
  for (let i = 0; i < sum.length; i++) sum[i] = Math.fround(sum[i]! / inputs.length);
  return sum;
}

async function checkMixed(out: string, inputs: string[], dtype: FloatDType): Promise<void> {
  const values = await Promise.all(inputs.map(readAll));
  const { reader, raw } = await readRaw(out);
  const proj = { w1: 'gate_proj', w3: 'up_proj', w2: 'down_proj' } as const;
  let stacked = 0;
  let averaged = 0;
  for (const t of reader.tensors) {
    assert.equal(t.dtype, dtype, t.name);
    const m = /^model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$/.exec(t.name);
    if (m) {
      const input = values[Number(m[2])]!.get(`model.layers.${m[1]}.mlp.${proj[m[3] as 'w1']}.weight`)!;
      sameBytes(raw.get(t.name)!, encodeFloats(input, dtype), t.name);
      stacked++;
    } else if (t.name.endsWith('block_sparse_moe.gate.weight')) {
      assert.deepEqual(t.shape, [inputs.length, shape.hidden]);
    } else {
      const mean = float32Mean(values.map((v) => v.get(t.name)!));
      sameBytes(raw.get(t.name)!, encodeFloats(mean, dtype), t.name);
      averaged++;
    }
  }
  assert.equal(stacked, shape.layers * 3 * inputs.length);
  assert.equal(averaged, 3 + shape.layers * 6);
}

test('mixing 3 sharded BF16/F16 experts: stacked experts equal the inputs bit-exactly, the rest are float32 means', async () => {
  const out = join(root, 'out', 'mixed');
  const summary = await mixExperts({ experts: experts.map((dir) => ({ dir })), out, shardSize: 2000 });
  assert.equal(summary.dtype, 'BF16', 'default output dtype: the first expert');
  assert.equal(summary.tensorsStacked, 18);
  assert.equal(summary.tensorsAveraged, 15);
  assert.equal(summary.routersCreated, 2);
  assert.ok(summary.bytesRead > 0 && summary.bytesWritten > summary.bytesRead / 2);
  await checkMixed(out, experts, 'BF16');
  assert.deepEqual(
    (await readdir(join(root, 'out'))).filter((f) => f.includes('.tmp-')),
    [],
    'no temp folder left behind',
  );

  // Config: Mixtral keys, expert names, and every dense key copied.
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.model_type, 'mixtral');
  assert.deepEqual(config.architectures, ['MixtralForCausalLM']);
  assert.equal(config.num_local_experts, 3);
  assert.equal(config.num_experts_per_tok, 2);
  assert.equal(config.router_aux_loss_coef, 0.01);
  assert.equal(config.btx_router, 'topK');
  assert.deepEqual(config.btx_experts, ['math', 'code', 'prose']);
  assert.equal(config.torch_dtype, 'bfloat16');
  assert.equal(config.rope_theta, 500000);
  assert.deepEqual(config.rope_scaling, { rope_type: 'llama3', factor: 8 });
  assert.deepEqual(config.eos_token_id, [2, 3]);
  assert.equal(config.rms_norm_eps, 1e-5);
  assert.equal(config.num_key_value_heads, 1);
  assert.equal(config.intermediate_size, 12);

  // Index: every tensor in the shard it names; total_size is the data bytes; shards within size.
  const index = await readShardIndex(out);
  const reader = await ShardedReader.open(out);
  try {
    assert.equal(Object.keys(index.weight_map).length, 15 + 18 + 2);
    assert.equal(index.metadata.total_size, reader.totalSize);
    const perShard = new Map<string, number>();
    for (const t of reader.tensors) perShard.set(t.file, (perShard.get(t.file) ?? 0) + t.end - t.begin);
    assert.ok(perShard.size > 1);
    for (const [file, bytes] of perShard) {
      assert.match(file, /^model-0000\d-of-0000\d\.safetensors$/);
      assert.ok(bytes <= 2000, `${file} holds ${bytes} bytes`);
    }
  } finally {
    await reader.close();
  }

  // Tokenizer files from the first expert, byte for byte; they load as Llama 3's; trainer_state.json verifies.
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    assert.ok((await readFile(join(out, f))).equals(await readFile(join(tokenizer, f))), f);
  assert.equal((await loadTokenizer(out)).vocabSize, 128256);
  const state = await readTrainerState(out);
  assert.equal(state?.stage, 'mix');
  assert.equal(state?.step, 0);
  assert.ok(INDEX_FILE in state!.files && 'tokenizer.json' in state!.files && 'config.json' in state!.files);
  await verifyCheckpointFiles(out, state!);
  // The finetune stage loads it through the checkpoint API (sha256s verified, Mixtral config parsed).
  const loaded = await loadCheckpoint(out);
  assert.equal(loaded.config.model_type, 'mixtral');
  assert.equal(loaded.tensors.size, 35);
});

test('a generalist joins as the last expert; F32 output and soft routing; small slices stream the same result', async () => {
  const out = join(root, 'out', 'with-generalist');
  const summary = await mixExperts({
    experts: experts.map((dir) => ({ dir })),
    generalist: { dir: generalist },
    out,
    dtype: 'F32',
    router: 'soft',
    routerInit: 'zeros',
    sliceElements: 7,
  });
  assert.equal(summary.shards, 1);
  await checkMixed(out, [...experts, generalist], 'F32');
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.num_local_experts, 4);
  assert.equal(config.num_experts_per_tok, 4);
  assert.deepEqual(config.btx_experts, ['math', 'code', 'prose', 'generalist']);
  assert.deepEqual(await readdir(out).then((f) => f.filter((x) => x.endsWith('.safetensors'))), [
    'model.safetensors',
  ]);
  const values = await readAll(out);
  assert.ok(values.get('model.layers.1.block_sparse_moe.gate.weight')!.every((v) => v === 0));
});

test('normal router init is seeded, std ~0.02, and the same for the same seed', async () => {
  const mix = async (name: string, seed: number) => {
    const out = join(root, 'out', name);
    await mixExperts({
      experts: experts.slice(0, 2).map((dir) => ({ dir })),
      out,
      randomSeed: seed,
      router: 'switch',
    });
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.num_experts_per_tok, 1);
    return (await readAll(out)).get('model.layers.0.block_sparse_moe.gate.weight')!;
  };
  const a = await mix('seed-a', 7);
  const b = await mix('seed-b', 7);
  const c = await mix('seed-c', 8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(std > 0.008 && std < 0.04, `std ${std}`);
});

test('an expert given as a training output folder uses its newest step-N that verifies', async () => {
  const parent = join(root, 'trained', 'law');
  const math = await loadCheckpoint(experts[0]!);
  const state = {
    stage: 'expert',
    totalSteps: 2,
    loss: 1,
    dataPosition: 0,
    randomSeed: 1,
    time: new Date(0).toISOString(),
  };
  const tensors = [...math.tensors.values()];
  const { files } = await loadTokenizer(tokenizer);
  await saveCheckpoint(
    join(parent, 'step-1'),
    tensors,
    math.config,
    { ...state, step: 1 },
    { dtype: 'BF16', files },
  );
  await saveCheckpoint(
    join(parent, 'step-2'),
    tensors,
    math.config,
    { ...state, step: 2 },
    { dtype: 'BF16', files },
  );
  const file = join(parent, 'step-2', 'config.json');
  await writeFile(file, (await readFile(file, 'utf8')).replace('"vocab_size": 32', '"vocab_size": 33'));
  const summary = await mixExperts({
    experts: [{ dir: parent }, { dir: experts[1]! }],
    out: join(root, 'out', 'from-parent'),
  });
  assert.deepEqual(summary.experts[0], { name: 'law', dir: join(parent, 'step-1') });
});

test('mismatched experts are refused with the folder and the reason', async () => {
  const bad = join(root, 'bad');
  const cases: [string, () => Promise<string>, RegExp][] = [
    [
      'tokenizer',
      async () => {
        const dir = await writeLlamaCheckpoint(join(bad, 'bytes'), shape, { dtype: 'BF16', seed: 5 });
        for (const [name, bytes] of byteTokenizer().files) await writeFile(join(dir, name), bytes);
        return dir;
      },
      /expert .*bad\/bytes: its tokenizer.json \(sha256 [0-9a-f]{16}\.\.\.\) differs from the one in .*in\/math \(sha256 [0-9a-f]{16}\.\.\.\); experts must share one tokenizer/,
    ],
    [
      'hidden size',
      () => writeLlamaCheckpoint(join(bad, 'hidden'), { ...shape, hidden: 16 }, { dtype: 'BF16', seed: 5 }),
      /expert .*bad\/hidden: hidden_size 16 differs from 8 in .*in\/math/,
    ],
    [
      'vocab',
      () => writeLlamaCheckpoint(join(bad, 'vocab'), { ...shape, vocab: 40 }, { dtype: 'BF16', seed: 5 }),
      /expert .*bad\/vocab: vocab_size 40 differs from 32/,
    ],
    [
      'layers',
      () => writeLlamaCheckpoint(join(bad, 'layers'), { ...shape, layers: 3 }, { dtype: 'BF16', seed: 5 }),
      /expert .*bad\/layers: num_hidden_layers 3 differs from 2/,
    ],
    [
      'architecture',
      () =>
        writeLlamaCheckpoint(join(bad, 'arch'), shape, {
          dtype: 'BF16',
          seed: 5,
          config: { architectures: ['MistralForCausalLM'] },
        }),
      /expert .*bad\/arch: architectures \["MistralForCausalLM"\] differs from \["LlamaForCausalLM"\]/,
    ],
    [
      'model type',
      () =>
        writeLlamaCheckpoint(join(bad, 'gpt2'), shape, {
          dtype: 'BF16',
          seed: 5,
          config: { model_type: 'gpt2' },
        }),
      /expert .*bad\/gpt2: model_type "gpt2" is not supported/,
    ],
    [
      'already mixtral',
      () =>
        writeLlamaCheckpoint(join(bad, 'mixtral'), shape, {
          dtype: 'BF16',
          seed: 5,
          config: { model_type: 'mixtral' },
        }),
      /expert .*bad\/mixtral: is already a Mixture-of-Experts \(model_type mixtral\)/,
    ],
    [
      'tensor names',
      () =>
        writeLlamaCheckpoint(join(bad, 'names'), shape, {
          dtype: 'BF16',
          seed: 5,
          editSpecs: (s) => s.filter((t) => t.name !== 'lm_head.weight'),
        }),
      /expert .*bad\/names: tensor names differ from .*in\/math: missing lm_head\.weight/,
    ],
    [
      'shape',
      () =>
        writeLlamaCheckpoint(join(bad, 'shape'), shape, {
          dtype: 'BF16',
          seed: 5,
          editSpecs: (s) =>
            s.map((t) => (t.name === 'model.layers.1.self_attn.k_proj.weight' ? { ...t, shape: [8, 8] } : t)),
        }),
      /expert .*bad\/shape: tensor model\.layers\.1\.self_attn\.k_proj\.weight has shape \[8,8\] but \[4,8\]/,
    ],
  ];
  for (const [what, make, pattern] of cases) {
    const dir = await make();
    await assert.rejects(
      mixExperts({ experts: [{ dir: experts[0]! }, { dir }], out: join(bad, 'out') }),
      pattern,
      what,
    );
  }
  // Missing FFN weights in every expert (so the name sets agree): the layer's tensor is named.
  const noUp = (seed: number) =>
    writeLlamaCheckpoint(join(bad, `noup${seed}`), shape, {
      dtype: 'BF16',
      seed,
      editSpecs: (s) => s.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'),
    });
  await assert.rejects(
    mixExperts({ experts: [{ dir: await noUp(1) }, { dir: await noUp(2) }], out: join(bad, 'out') }),
    /expert .*bad\/noup1: missing feed-forward tensor model\.layers\.1\.mlp\.up_proj\.weight/,
  );
  await assert.rejects(
    mixExperts({ experts: [{ dir: experts[0]! }, { dir: experts[1]! }], out: join(bad, 'out'), topK: 3 }),
    /--k 3 must be an integer between 1 and the number of experts \(2\)/,
  );
  await assert.rejects(
    mixExperts({ experts: [{ dir: experts[0]! }, { dir: experts[1]! }], out: join(root, 'in') }),
    /--out .*\/in would replace the input .*\/in\/math/,
  );
  assert.deepEqual(
    (await readdir(bad)).filter((f) => f.startsWith('out')),
    [],
    'nothing written for refused mixes',
  );
});

test('btx mix reads the stage environment, flags win, and as the mix stage writes the termination message', async () => {
  const env = {
    BTX_EXPERTS: ` ${experts[0]},${experts[1]} `,
    BTX_OUTPUT: '/btx/ignored',
    BTX_ROUTER: 'switch',
    BTX_TOP_K: '1',
    BTX_DTYPE: 'f16',
    BTX_ROUTER_INIT: 'zeros',
    BTX_LOAD_BALANCING_COEF: '0.02',
    BTX_RANDOM_SEED: '3',
  };
  const parsed = parseMixArgs(
    ['--out', '/btx/mixed', '--router', 'topK', '--shard-size', '1MB'],
    env,
  ) as MixOptions;
  assert.deepEqual(parsed.experts, [{ dir: experts[0] }, { dir: experts[1] }]);
  assert.equal(parsed.out, '/btx/mixed');
  assert.equal(parsed.router, 'topK');
  assert.equal(parsed.topK, 1);
  assert.equal(parsed.dtype, 'F16');
  assert.equal(parsed.routerInit, 'zeros');
  assert.equal(parsed.auxLossCoef, 0.02);
  assert.equal(parsed.randomSeed, 3);
  assert.equal(parsed.shardSize, 1_000_000);
  assert.throws(() => parseMixArgs(['--out', 'x'], {}), /--expert \(or BTX_EXPERTS\) is required/);
  assert.throws(
    () => parseMixArgs(['--expert', 'a', '--out', 'x', '--router', 'top2'], {}),
    /--router must be one of topK, switch, soft, sampleTop1, got 'top2'/,
  );
  assert.throws(
    () => parseMixArgs(['--expert', 'a', '--out', 'x', '--dtype', 'fp8'], {}),
    /--dtype must be one of f32, f16, bf16, got 'fp8'/,
  );
  assert.throws(
    () => parseMixArgs(['--expert', 'a', '--out', 'x', '--shard-size', 'big'], {}),
    /--shard-size must be a size .*got 'big'/,
  );
  assert.equal(parseMixArgs(['--help'], {}), 'help');

  // The real entry point, as the embedded kubelet runs it: container paths mapped by BTX_LOCAL_PATHS.
  const volume = join(root, 'volume');
  const termination = join(root, 'termination-log');
  await writeFile(termination, '');
  const saved = { ...process.env };
  Object.assign(process.env, {
    BTX_STAGE: 'mix',
    BTX_LOCAL_PATHS: JSON.stringify({
      '/btx': volume,
      '/dev/termination-log': termination,
      '/in': join(root, 'in'),
    }),
    BTX_EXPERTS: '/in/math/,/in/code',
    BTX_GENERALIST: '/in/seed',
    BTX_OUTPUT: '/btx/runs/ns/r/mixed',
    BTX_LOG_LEVEL: 'error',
  });
  const write = process.stdout.write.bind(process.stdout);
  let printed = '';
  let helpText = '';
  process.stdout.write = ((chunk: string) => {
    printed += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    assert.equal(await runBtx(['mix', '--help']), 0);
    helpText = printed;
    printed = '';
    assert.equal(await runBtx(['mix', '--expert-name', 'm', '--expert-name', 'c', '--expert-name', 'g']), 0);
  } finally {
    process.stdout.write = write;
    process.env = saved;
  }
  for (const v of ['BTX_EXPERTS', 'BTX_GENERALIST', 'BTX_OUTPUT', 'BTX_ROUTER', 'BTX_TOP_K', 'BTX_DTYPE']) {
    assert.ok(helpText.includes(v), `--help names ${v}`);
  }
  for (const v of [
    'BTX_ROUTER_INIT',
    'BTX_LOAD_BALANCING_COEF',
    'BTX_RANDOM_SEED',
    '--shard-size',
    '--expert-name',
  ]) {
    assert.ok(helpText.includes(v), `--help names ${v}`);
  }
  assert.deepEqual(JSON.parse(await readFile(termination, 'utf8')), {
    checkpoint: '/btx/runs/ns/r/mixed',
    step: 0,
    loss: null,
  });
  assert.match(printed, /mixed 3 experts into \/btx\/runs\/ns\/r\/mixed/);
  assert.match(printed, /tensors: 18 stacked, 15 averaged, 2 routers/);
  const config = JSON.parse(await readFile(join(volume, 'runs/ns/r/mixed/config.json'), 'utf8')) as {
    btx_experts: string[];
  };
  assert.deepEqual(config.btx_experts, ['m', 'c', 'g']);
  const out = join(volume, 'runs/ns/r/mixed');
  await verifyCheckpointFiles(out, (await readTrainerState(out))!);
});
