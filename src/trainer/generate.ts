// Sampling text from a checkpoint (dense Llama or mixed Mixtral): the next-token distribution of
// the model's own forward pass, shaped by temperature (greedy at 0) and top-p (nucleus), drawn with
// the trainer's seeded mulberry32, until max tokens or an end-of-sequence id.
//
// No KV cache: every new token runs the forward pass over the whole (cropped) context again. The
// models trained here have contexts of 64-256 tokens, where that is a few milliseconds per token,
// and reusing `forward` keeps generation computing exactly the function training and eval compute
// (a cache would need a second attention implementation beside model.ts's).
import * as tf from './tfjs.js';
import { loadModelCheckpoint } from './checkpointInput.js';
import type { ModelConfig } from './hfConfig.js';
import { disposeParams, forward, modelDims, paramsFromTensors } from './model.js';
import type { ModelDims, Params } from './model.js';
import { mulberry32 } from './prng.js';

/** A checkpoint loaded for inference. */
export interface LanguageModel {
  /** The checkpoint folder that was loaded (the newest step-N when a training output was given). */
  dir: string;
  config: ModelConfig;
  dims: ModelDims;
  params: Params;
  /** Most tokens the model attends to: the config's max_position_embeddings. */
  contextLength: number;
}

export interface SamplingOptions {
  /** Tokens to generate at most (the end-of-sequence id, when drawn, ends earlier). */
  maxTokens: number;
  /** Softmax temperature; 0 is greedy (argmax, no random draw). */
  temperature: number;
  /** Nucleus: keep the most likely tokens until their probability reaches topP; 1 keeps all. */
  topP: number;
  /** Seed of the one mulberry32 stream all draws come from. */
  seed: number;
  /** Ids that end generation (end-of-sequence); the id itself is not returned. */
  stopIds?: readonly number[];
}

export interface Generation {
  /** Generated ids, without the prompt and without the stop id. */
  ids: number[];
  stop: 'eos' | 'maxTokens';
}

/** Load a checkpoint folder (or a training output folder: its newest complete step-N) for sampling. */
export async function loadLanguageModel(dir: string): Promise<LanguageModel> {
  const ckpt = await loadModelCheckpoint(dir);
  const dims = modelDims(ckpt.config);
  return {
    dir: ckpt.dir,
    config: ckpt.config,
    dims,
    params: paramsFromTensors(dims, ckpt.tensors),
    contextLength: Number(ckpt.config.max_position_embeddings),
  };
}

export function disposeLanguageModel(model: LanguageModel): void {
  disposeParams(model.params);
}

/** The config's end-of-sequence ids (HF allows a number or a list, e.g. Llama 3 Instruct). */
export function configStopIds(config: ModelConfig): number[] {
  const eos: unknown = config.eos_token_id;
  const list = Array.isArray(eos) ? (eos as unknown[]) : [eos];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
}

/** Logits of the token after `context` (its last contextLength tokens), as float32 on the host. */
export function nextTokenLogits(model: LanguageModel, context: readonly number[]): Float32Array {
  if (context.length === 0) throw new Error('generation needs at least one context token');
  const window = context.slice(-model.contextLength);
  for (const id of window) {
    if (!Number.isInteger(id) || id < 0 || id >= model.dims.vocab) {
      throw new Error(`token id ${id} is outside the model's vocabulary of ${model.dims.vocab}`);
    }
  }
  const last = tf.tidy(() => {
    const ids = tf.tensor2d(Int32Array.from(window), [1, window.length], 'int32');
    const { logits } = forward(model.params, model.dims, ids, { training: false });
    return tf.slice(logits, [window.length - 1, 0], [1, model.dims.vocab]);
  });
  try {
    return last.dataSync() as Float32Array;
  } finally {
    last.dispose();
  }
}

/** Index of the largest value; ties go to the lowest index. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** softmax(logits / temperature) in float64; temperature > 0. */
export function softmaxWithTemperature(logits: ArrayLike<number>, temperature: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp((logits[i]! - max) / temperature);
    sum += out[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum;
  return out;
}

/**
 * Top-p (nucleus) filtering: the smallest set of most likely tokens whose probability reaches topP
 * (the token that crosses it is kept, as in Holtzman et al. and transformers' TopPLogitsWarper;
 * equal probabilities rank by lower id), renormalised; every other token gets 0. topP >= 1 keeps all.
 */
export function nucleus(probs: Float64Array, topP: number): Float64Array {
  if (topP >= 1) return probs;
  const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b);
  const out = new Float64Array(probs.length);
  let mass = 0;
  for (const i of order) {
    out[i] = probs[i]!;
    mass += probs[i]!;
    if (mass >= topP) break;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= mass;
  return out;
}

/** One token from `logits`: argmax at temperature 0, else a draw from the nucleus of softmax(logits/T). */
export function sampleToken(
  logits: ArrayLike<number>,
  opts: Pick<SamplingOptions, 'temperature' | 'topP'>,
  random: () => number,
): number {
  if (opts.temperature === 0) return argmax(logits);
  const probs = nucleus(softmaxWithTemperature(logits, opts.temperature), opts.topP);
  const r = random();
  let cumulative = 0;
  let lastKept = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i]!;
    lastKept = i;
    if (r < cumulative) return i;
  }
  return lastKept; // r within rounding of 1
}

/** Why a sampling option is unusable, naming it; null when all are fine. */
export function samplingOptionsError(opts: SamplingOptions): string | null {
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0)
    return `maxTokens must be an integer >= 0, got ${opts.maxTokens}`;
  if (!Number.isFinite(opts.temperature) || opts.temperature < 0)
    return `temperature must be a number >= 0, got ${opts.temperature}`;
  if (!Number.isFinite(opts.topP) || opts.topP <= 0 || opts.topP > 1)
    return `topP must be in (0, 1], got ${opts.topP}`;
  if (!Number.isInteger(opts.seed)) return `seed must be an integer, got ${opts.seed}`;
  return null;
}

/** Continue `prompt` (token ids) by sampling from the model. */
export function generate(model: LanguageModel, prompt: readonly number[], opts: SamplingOptions): Generation {
  const problem = samplingOptionsError(opts);
  if (problem) throw new Error(problem);
  if (prompt.length === 0) throw new Error('the prompt must have at least one token');
  const random = mulberry32(opts.seed);
  const stop = new Set(opts.stopIds ?? []);
  const context = [...prompt];
  const ids: number[] = [];
  while (ids.length < opts.maxTokens) {
    const next = sampleToken(nextTokenLogits(model, context), opts, random);
    if (stop.has(next)) return { ids, stop: 'eos' };
    ids.push(next);
    context.push(next);
  }
  return { ids, stop: 'maxTokens' };
}

/** The part of a tokenizer sampling needs (tokenizer.ts's TextTokenizer has it). */
export interface TextCodec {
  readonly bosId: number | null;
  readonly eosId: number | null;
  encode(text: string): Promise<number[]>;
  decode(ids: readonly number[]): string;
}

export interface TextGeneration extends Generation {
  /** The prompt's token ids (BOS included when asked). */
  promptIds: number[];
  /** The continuation's text, without the prompt. */
  text: string;
}

/**
 * Continue `prompt` as text: encoded with `tokenizer` (its BOS first when `bos`), stopped at the
 * tokenizer's EOS or the config's eos_token_id(s), decoded back. The continuation is what decoding
 * prompt + continuation adds to decoding the prompt, so tokenizers that merge or drop a leading space
 * at a token boundary still print the text the model meant.
 */
export async function generateText(
  model: LanguageModel,
  tokenizer: TextCodec,
  prompt: string,
  opts: SamplingOptions & { bos?: boolean },
): Promise<TextGeneration> {
  const promptIds = await tokenizer.encode(prompt);
  if (opts.bos) {
    if (tokenizer.bosId === null) throw new Error('the tokenizer has no beginning-of-sequence token');
    promptIds.unshift(tokenizer.bosId);
  }
  if (promptIds.length === 0) throw new Error('the prompt is empty (no tokens to continue)');
  const stopIds = [...(opts.stopIds ?? []), ...configStopIds(model.config)];
  if (tokenizer.eosId !== null) stopIds.push(tokenizer.eosId);
  const result = generate(model, promptIds, { ...opts, stopIds });
  const before = tokenizer.decode(promptIds);
  const all = tokenizer.decode([...promptIds, ...result.ids]);
  const text = all.startsWith(before) ? all.slice(before.length) : tokenizer.decode(result.ids);
  return { ...result, promptIds, text };
}
