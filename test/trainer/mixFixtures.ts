// Synthetic Llama-shaped checkpoints (random tensors, HF names, any dtype and shard layout) for the
// mix tests and bench/mix.ts.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FloatDType, TensorSpec } from '../../src/trainer/safetensors.js';
import { ShardedWriter } from '../../src/trainer/shardedCheckpoint.js';

export interface LlamaShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads?: number;
}

/** As HF writes it (eos_token_id may be a list, which LlamaConfig's type does not cover). */
export function llamaConfig(shape: LlamaShape, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: shape.vocab,
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads ?? shape.heads,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8 },
    tie_word_embeddings: false,
    hidden_act: 'silu',
    torch_dtype: 'bfloat16',
    bos_token_id: 1,
    eos_token_id: [2, 3],
    ...extra,
  };
}

/** HF Llama tensor names and shapes, in transformers' order. */
export function llamaTensorSpecs(shape: LlamaShape, dtype: FloatDType): TensorSpec[] {
  const { vocab: V, hidden: H, intermediate: I, layers } = shape;
  const kv = ((shape.kvHeads ?? shape.heads) * H) / shape.heads;
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', dtype, shape: [V, H] }];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    specs.push(
      { name: `${p}.self_attn.q_proj.weight`, dtype, shape: [H, H] },
      { name: `${p}.self_attn.k_proj.weight`, dtype, shape: [kv, H] },
      { name: `${p}.self_attn.v_proj.weight`, dtype, shape: [kv, H] },
      { name: `${p}.self_attn.o_proj.weight`, dtype, shape: [H, H] },
      { name: `${p}.mlp.gate_proj.weight`, dtype, shape: [I, H] },
      { name: `${p}.mlp.up_proj.weight`, dtype, shape: [I, H] },
      { name: `${p}.mlp.down_proj.weight`, dtype, shape: [H, I] },
      { name: `${p}.input_layernorm.weight`, dtype, shape: [H] },
      { name: `${p}.post_attention_layernorm.weight`, dtype, shape: [H] },
    );
  }
  specs.push(
    { name: 'model.norm.weight', dtype, shape: [H] },
    { name: 'lm_head.weight', dtype, shape: [V, H] },
  );
  return specs;
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 31 - 1) * 0.5;
  }
  return out;
}

export interface FixtureOptions {
  dtype: FloatDType;
  seed: number;
  /** Bytes per shard; undefined writes a single model.safetensors. */
  shardSize?: number;
  config?: Record<string, unknown>;
  /** Change the tensor list before writing (drop one, reshape one...). */
  editSpecs?: (specs: TensorSpec[]) => TensorSpec[];
  /** A folder whose tokenizer.json + tokenizer_config.json the checkpoint carries. */
  tokenizer?: string;
}

/** Write a random Llama checkpoint folder; returns its path. */
export async function writeLlamaCheckpoint(
  dir: string,
  shape: LlamaShape,
  opts: FixtureOptions,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  let specs = llamaTensorSpecs(shape, opts.dtype);
  if (opts.editSpecs) specs = opts.editSpecs(specs);
  const writer = await ShardedWriter.create(
    dir,
    specs,
    opts.shardSize === undefined ? {} : { shardSize: opts.shardSize },
  );
  let k = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    await writer.writeFloat32(s.name, randomValues(n, opts.seed * 1000 + ++k));
  }
  await writer.close();
  await writeFile(join(dir, 'config.json'), JSON.stringify(llamaConfig(shape, opts.config ?? {}), null, 2));
  if (opts.tokenizer) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(opts.tokenizer, f), join(dir, f));
    await writeFile(join(dir, 'generation_config.json'), '{"bos_token_id":1}');
  }
  return dir;
}
