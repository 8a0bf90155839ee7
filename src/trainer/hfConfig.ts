// Hugging Face style config.json for the two architectures we read and write:
// `llama` (dense experts and seeds) and `mixtral` (the mixed MoE). Field names are HF's,
// so checkpoints move between this trainer and transformers unchanged.
import type { ModelSpec } from '../api/stageContract.js';

/** The routers the trainer implements (moe.ts); `btx train` and `btx mix` accept these words. */
export const ROUTER_TYPES = ['topK', 'switch', 'soft', 'sampleTop1'] as const;
export type RouterType = (typeof ROUTER_TYPES)[number];

export interface LlamaConfig {
  model_type: 'llama';
  architectures?: string[];
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  hidden_act: string;
  torch_dtype?: string;
  bos_token_id?: number;
  eos_token_id?: number;
  rope_scaling?: unknown;
  head_dim?: number;
  /** Other HF keys are kept as they are and copied through mix. */
  [key: string]: unknown;
}

export interface MixtralConfig extends Omit<LlamaConfig, 'model_type'> {
  model_type: 'mixtral';
  num_local_experts: number;
  num_experts_per_tok: number;
  router_aux_loss_coef: number;
  output_router_logits?: boolean;
  /** Ours (HF ignores unknown keys): routing rule beyond Mixtral's top-k, and expert names. */
  btx_router?: RouterType;
  btx_experts?: string[];
}

export type ModelConfig = LlamaConfig | MixtralConfig;

/** Byte-level tokenizer: 256 byte symbols + BOS, EOS, PAD. */
export const BYTE_VOCAB_SIZE = 259;

/** The special ids a config names; the default is the built-in byte tokenizer's BOS and EOS. */
export interface SpecialTokenIds {
  bosId: number | null;
  eosId: number | null;
}

export function llamaConfigFromSpec(
  spec: ModelSpec,
  special: SpecialTokenIds = { bosId: 256, eosId: 257 },
): LlamaConfig {
  return {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: spec.vocabSize,
    hidden_size: spec.dModel,
    intermediate_size: spec.ffnHidden,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads ?? spec.heads,
    max_position_embeddings: spec.seqLen,
    rms_norm_eps: spec.rmsNormEps ?? 1e-5,
    rope_theta: spec.ropeTheta ?? 10000,
    tie_word_embeddings: spec.tieEmbeddings ?? false,
    hidden_act: 'silu',
    torch_dtype: 'float32',
    bos_token_id: special.bosId ?? undefined,
    eos_token_id: special.eosId ?? undefined,
  };
}

const REQUIRED_NUMBERS = [
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
] as const;

/** Parse and check a config.json; fills HF's defaults for optional keys. */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null) throw new Error(`${source}: not a JSON object`);
  const raw = json as Record<string, unknown>;
  if (raw.model_type !== 'llama' && raw.model_type !== 'mixtral') {
    throw new Error(
      `${source}: model_type ${JSON.stringify(raw.model_type)} is not supported (llama or mixtral)`,
    );
  }
  for (const key of REQUIRED_NUMBERS) {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new Error(`${source}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  const base = {
    ...raw,
    num_key_value_heads:
      (raw.num_key_value_heads as number | undefined) ?? (raw.num_attention_heads as number),
    max_position_embeddings: (raw.max_position_embeddings as number | undefined) ?? 2048,
    rms_norm_eps: (raw.rms_norm_eps as number | undefined) ?? 1e-6,
    rope_theta: (raw.rope_theta as number | undefined) ?? 10000,
    tie_word_embeddings: (raw.tie_word_embeddings as boolean | undefined) ?? false,
    hidden_act: (raw.hidden_act as string | undefined) ?? 'silu',
  };
  if (raw.model_type === 'mixtral') {
    for (const key of ['num_local_experts', 'num_experts_per_tok'] as const) {
      const v = raw[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
        throw new Error(`${source}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
      }
    }
    return {
      ...base,
      router_aux_loss_coef: (raw.router_aux_loss_coef as number | undefined) ?? 0.01,
    } as unknown as MixtralConfig;
  }
  return base as unknown as LlamaConfig;
}
