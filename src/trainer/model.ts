// A Llama-style decoder (and its Mixtral MoE variant) in one file, nanoGPT style:
// the config it reads, the parameters it holds (named and shaped exactly as Hugging Face's),
// and the forward pass. Real HF Llama/Mixtral weights loaded here compute the same function.
//
//   x = embed_tokens[ids]                                   [B, T, hidden]
//   per layer: x += attn(rms_norm(x)); x += ffn(rms_norm(x))  (ffn: SwiGLU or the MoE block)
//   logits = rms_norm(x) @ lm_head^T                          [B*T, vocab]
import * as tf from './tfjs.js';
import type { NamedTensor } from './checkpoint.js';
import type { LlamaConfig, ModelConfig } from './hfConfig.js';
import { hashInts, hashString } from './prng.js';
import { causalAttention } from './attentionKernel.js';
import { cachedConstant } from './stepConstants.js';
import { linear, loadBalancingLoss, moeFeedForward, swiglu } from './moe.js';
import { rmsNorm } from './rmsNorm.js';
import { fusedKernelsHere } from './wasmHeap.js';
import { rotaryFused } from './rotaryKernel.js';
import { crossEntropyFused } from './crossEntropyKernel.js';
import { ropeInverseFrequencies } from './rope.js';
import type { Routing, RoutingOptions } from './moe.js';

/** The numbers the forward pass needs, read from an HF config.json. */
export interface ModelDims {
  vocab: number;
  hidden: number;
  ffn: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ropeTheta: number;
  /** Rotary inverse frequencies [headDim / 2], rope_scaling applied. */
  ropeInvFreq: number[];
  eps: number;
  tied: boolean;
  /** 0 for a dense Llama, num_local_experts for Mixtral. */
  experts: number;
  routing: RoutingOptions;
  auxLossCoef: number;
}

export function modelDims(config: ModelConfig): ModelDims {
  // MixtralConfig shares LlamaConfig's fields (its type spells them through an index signature).
  const c = config as unknown as LlamaConfig;
  const headDim = typeof c.head_dim === 'number' ? c.head_dim : c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new Error(`head dimension ${headDim} must be an even integer (rotary embeddings)`);
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new Error('num_attention_heads must be a multiple of num_key_value_heads');
  }
  for (const key of ['attention_bias', 'mlp_bias'] as const) {
    if (c[key] === true) throw new Error(`${key}: true is not supported (no bias tensors are loaded)`);
  }
  const moe = config.model_type === 'mixtral' ? config : undefined;
  return {
    vocab: c.vocab_size,
    hidden: c.hidden_size,
    ffn: c.intermediate_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads,
    headDim,
    ropeTheta: c.rope_theta,
    ropeInvFreq: ropeInverseFrequencies(headDim, c.rope_theta, c.rope_scaling),
    eps: c.rms_norm_eps,
    tied: c.tie_word_embeddings,
    experts: moe ? moe.num_local_experts : 0,
    routing: { router: moe?.btx_router ?? 'topK', k: moe ? moe.num_experts_per_tok : 1 },
    auxLossCoef: moe ? moe.router_aux_loss_coef : 0,
  };
}

/** Every parameter's HF name and shape, in a stable order. */
export function parameterShapes(d: ModelDims): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [d.vocab, d.hidden]]];
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [d.hidden]],
      [`${p}.self_attn.q_proj.weight`, [q, d.hidden]],
      [`${p}.self_attn.k_proj.weight`, [kv, d.hidden]],
      [`${p}.self_attn.v_proj.weight`, [kv, d.hidden]],
      [`${p}.self_attn.o_proj.weight`, [d.hidden, q]],
      [`${p}.post_attention_layernorm.weight`, [d.hidden]],
    );
    if (d.experts === 0) {
      out.push(
        [`${p}.mlp.gate_proj.weight`, [d.ffn, d.hidden]],
        [`${p}.mlp.up_proj.weight`, [d.ffn, d.hidden]],
        [`${p}.mlp.down_proj.weight`, [d.hidden, d.ffn]],
      );
    } else {
      out.push([`${p}.block_sparse_moe.gate.weight`, [d.experts, d.hidden]]);
      for (let e = 0; e < d.experts; e++) {
        const x = `${p}.block_sparse_moe.experts.${e}`;
        out.push(
          [`${x}.w1.weight`, [d.ffn, d.hidden]],
          [`${x}.w3.weight`, [d.ffn, d.hidden]],
          [`${x}.w2.weight`, [d.hidden, d.ffn]],
        );
      }
    }
  }
  out.push(['model.norm.weight', [d.hidden]]);
  if (!d.tied) out.push(['lm_head.weight', [d.vocab, d.hidden]]);
  return out;
}

/** True for the weights of MoE experts (frozen by freezeExperts). */
export function isExpertWeight(name: string): boolean {
  return name.includes('.block_sparse_moe.experts.');
}

export type Params = Map<string, tf.Variable>;

/** Fresh parameters as HF initialises Llama: N(0, 0.02) matrices, ones for norms; seeded per name. */
export function initParams(d: ModelDims, seed: number): Params {
  const params: Params = new Map();
  for (const [name, shape] of parameterShapes(d)) {
    const init = () =>
      shape.length === 1
        ? tf.ones(shape)
        : tf.randomNormal(shape, 0, 0.02, 'float32', hashInts(seed, hashString(name)));
    params.set(
      name,
      tf.tidy(() => tf.variable(init(), true)),
    );
  }
  return params;
}

/** Parameters from checkpoint tensors; every expected name must be present with its shape. */
export function paramsFromTensors(d: ModelDims, tensors: Map<string, NamedTensor>): Params {
  const params: Params = new Map();
  for (const [name, shape] of parameterShapes(d)) {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint has no tensor ${name}`);
    if (t.shape.join(',') !== shape.join(',')) {
      throw new Error(`tensor ${name} has shape [${t.shape}], the config needs [${shape}]`);
    }
    params.set(
      name,
      tf.tidy(() => tf.variable(tf.tensor(t.data, shape, 'float32'), true)),
    );
  }
  return params;
}

export async function paramsToTensors(params: Params): Promise<NamedTensor[]> {
  const out: NamedTensor[] = [];
  for (const [name, v] of params) {
    out.push({ name, shape: [...v.shape], data: (await v.data()) as Float32Array });
  }
  return out;
}

export function disposeParams(params: Params): void {
  for (const v of params.values()) v.dispose();
}

function p2(params: Params, name: string): tf.Tensor2D {
  const v = params.get(name);
  if (!v) throw new Error(`missing parameter ${name}`);
  return v as unknown as tf.Tensor2D;
}

/** Embedding lookup whose gradient is a scatter-add (the wasm backend lacks UnsortedSegmentSum). */
const embed = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [table, ids, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([ids]);
  return {
    value: tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      tf.scatterND(tf.expandDims(saved[0]!, 1), dy, table.shape),
      tf.zerosLike(saved[0]!),
    ],
  };
}) as (table: tf.Tensor, ids: tf.Tensor) => tf.Tensor2D;

/**
 * rotate_half(x) = [-x2, x1] on each head of x [rows, headDim], written as x @ R: on the wasm backend a
 * 2-D matmul runs in XNNPACK, while reverse, slice + concat and gather are scalar loops (measured side
 * by side on [8, 256, 256]: reverse 226 ms, gather 310 ms, slice + concat 115 ms, matmul 52 ms, one
 * elementwise mul 22 ms, on the busy shared machine). R^T = -R, so the gradient is dy @ -R.
 */
const rotateHalf = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor2D;
  const hd = x.shape[1];
  const rotation = (sign: number) =>
    cachedConstant(`rotate_half ${hd} ${sign}`, () => {
      const r = new Float32Array(hd * hd);
      for (let j = 0; j < hd / 2; j++) {
        r[(j + hd / 2) * hd + j] = -sign; // out[j] = -x[j + half]
        r[j * hd + j + hd / 2] = sign; // out[j + half] = x[j]
      }
      return tf.tensor2d(r, [hd, hd]);
    });
  return {
    value: tf.matMul(x, rotation(1)),
    gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, rotation(-1)),
  };
}) as (x: tf.Tensor2D) => tf.Tensor2D;

/**
 * Rotary embedding of x [..., T, heads * headDim] (positions 0..T-1, heads side by side) in HF's
 * rotate_half convention, x * cos + rotate_half(x) * sin, times `scale` (folded into the tables).
 * invFreq from ropeInverseFrequencies (rope.ts). On the wasm backend one kernel each way (rotaryKernel.ts).
 */
export function applyRotary(x: tf.Tensor, invFreq: readonly number[], heads = 1, scale = 1): tf.Tensor {
  return fusedKernelsHere() ? rotaryFused(x, invFreq, scale) : applyRotaryOps(x, invFreq, heads, scale);
}

/** applyRotary as tf ops (every backend but wasm, and the reference for rotaryKernel.ts' kernel). */
export function applyRotaryOps(x: tf.Tensor, invFreq: readonly number[], heads = 1, scale = 1): tf.Tensor {
  const headDim = 2 * invFreq.length;
  const seqLen = x.shape[x.shape.length - 2]!;
  const width = heads * headDim;
  const table = (fn: 'cos' | 'sin') =>
    cachedConstant(`rotary ${fn} ${seqLen} ${heads} ${scale} ${invFreq.join(',')}`, () => {
      const values = new Float32Array(seqLen * width);
      for (let t = 0; t < seqLen; t++) {
        for (let i = 0; i < headDim; i++) {
          const angle = Math.fround(t * invFreq[i % invFreq.length]!);
          const v = scale * (fn === 'cos' ? Math.cos(angle) : Math.sin(angle));
          for (let h = 0; h < heads; h++) values[t * width + h * headDim + i] = v;
        }
      }
      return tf.tensor2d(values, [seqLen, width]);
    });
  const rotated = tf.reshape(rotateHalf(tf.reshape(x, [-1, headDim])), x.shape);
  return tf.add(tf.mul(x, table('cos')), tf.mul(rotated, table('sin')));
}

/**
 * Causal self-attention with grouped key/value heads; x [B*T, hidden]. Rotary runs on the projections
 * before they are split into heads, with q's 1/sqrt(headDim) folded into its tables (one pass over
 * [B*T, H*hd] instead of one over the [B*H, T, T] scores); attentionKernel.ts does the rest.
 */
function attention(
  x: tf.Tensor2D,
  params: Params,
  prefix: string,
  d: ModelDims,
  batch: number,
  seqLen: number,
): tf.Tensor2D {
  const hd = d.headDim;
  const project = (name: string, heads: number, scale: number) =>
    tf.reshape(
      applyRotary(
        tf.reshape(linear(x, p2(params, `${prefix}.${name}.weight`)), [batch, seqLen, heads * hd]),
        d.ropeInvFreq,
        heads,
        scale,
      ),
      [batch * seqLen, heads * hd],
    ) as tf.Tensor2D;
  const q = project('q_proj', d.heads, 1 / Math.sqrt(hd));
  const k = project('k_proj', d.kvHeads, 1);
  const v = linear(x, p2(params, `${prefix}.v_proj.weight`));
  const shape = { batch, seqLen, heads: d.heads, kvHeads: d.kvHeads, headDim: hd };
  return linear(causalAttention(q, k, v, shape), p2(params, `${prefix}.o_proj.weight`));
}

export interface ForwardOptions {
  training: boolean;
  /** Overrides the config's routing (finetune flags). */
  routing?: RoutingOptions;
  /** Seed of this step's random routing draws (sampleTop1). */
  noiseSeed?: number;
}

export interface ForwardResult {
  /** [B*T, vocab] */
  logits: tf.Tensor2D;
  /** MoE only: per layer routing. */
  routing: Routing[];
}

/** The decoder on token ids [B, T] (int32). */
export function forward(params: Params, d: ModelDims, ids: tf.Tensor2D, opts: ForwardOptions): ForwardResult {
  const [batch, seqLen] = ids.shape;
  let x = embed(p2(params, 'model.embed_tokens.weight'), tf.reshape(ids, [batch * seqLen]));
  const routing: Routing[] = [];
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}`;
    const h = rmsNorm(x, p2(params, `${p}.input_layernorm.weight`), d.eps);
    x = tf.add(x, attention(h, params, `${p}.self_attn`, d, batch, seqLen));
    const g = rmsNorm(x, p2(params, `${p}.post_attention_layernorm.weight`), d.eps);
    if (d.experts === 0) {
      const m = `${p}.mlp`;
      x = tf.add(
        x,
        swiglu(
          g,
          p2(params, `${m}.gate_proj.weight`),
          p2(params, `${m}.up_proj.weight`),
          p2(params, `${m}.down_proj.weight`),
        ),
      );
    } else {
      const m = `${p}.block_sparse_moe`;
      const experts = Array.from({ length: d.experts }, (_, e) => ({
        w1: p2(params, `${m}.experts.${e}.w1.weight`),
        w2: p2(params, `${m}.experts.${e}.w2.weight`),
        w3: p2(params, `${m}.experts.${e}.w3.weight`),
      }));
      const out = moeFeedForward(
        g,
        p2(params, `${m}.gate.weight`),
        experts,
        opts.routing ?? d.routing,
        opts.training,
        hashInts(opts.noiseSeed ?? 0, i),
      );
      x = tf.add(x, out.y);
      routing.push(out.routing);
    }
  }
  x = rmsNorm(x, p2(params, 'model.norm.weight'), d.eps);
  const head = p2(params, d.tied ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return { logits: linear(x, head), routing };
}

/**
 * Mean next-token cross-entropy of logits [N, vocab] against targets [N] (int32); on the wasm backend
 * one kernel (crossEntropyKernel.ts).
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  return fusedKernelsHere() ? crossEntropyFused(logits, targets) : crossEntropyOps(logits, targets);
}

/** crossEntropy as tf ops (every backend but wasm, and the reference for the kernel). */
export function crossEntropyOps(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(targets, logits.shape[1]), 'float32')), 1);
  return tf.neg(tf.mean(picked)) as tf.Scalar;
}

export interface LossParts {
  /** What is minimised: language-model loss + alpha * load-balancing loss. */
  total: tf.Scalar;
  lm: tf.Scalar;
  aux: tf.Scalar | null;
  routing: Routing[];
}

/** Loss on a batch of windows [B, T+1]: predict tokens 1..T from tokens 0..T-1. */
export function batchLoss(
  params: Params,
  d: ModelDims,
  windows: tf.Tensor2D,
  opts: ForwardOptions & { auxLossCoef?: number },
): LossParts {
  const [batch, width] = windows.shape;
  const inputs = tf.slice(windows, [0, 0], [batch, width - 1]);
  const targets = tf.reshape(tf.slice(windows, [0, 1], [batch, width - 1]), [batch * (width - 1)]);
  const { logits, routing } = forward(params, d, inputs, opts);
  const lm = crossEntropy(logits, targets as tf.Tensor1D);
  if (routing.length === 0) return { total: lm, lm, aux: null, routing };
  const aux = loadBalancingLoss(routing);
  const coef = opts.auxLossCoef ?? d.auxLossCoef;
  return { total: coef > 0 ? tf.add(lm, tf.mul(aux, coef)) : lm, lm, aux, routing };
}
