// The dense checkpoints going into a mix, opened lazily (headers only) and checked against each
// other before a byte of tensor data is read: same architecture, sizes, tensor names and shapes,
// and the three SwiGLU feed-forward weights in every layer.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CONFIG_FILE, listCheckpoints, readTrainerState, verifyCheckpointFiles } from '../checkpoint.js';
import { parseModelConfig, type LlamaConfig } from '../hfConfig.js';
import { isFloatDType } from '../safetensors.js';
import { ShardedReader } from '../shardedCheckpoint.js';
import { sha256Hex, TOKENIZER_FILE } from '../tokenizer.js';

export class MixError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MixError';
  }
}

export interface ExpertSource {
  dir: string;
  /** Defaults to the folder's name (its parent's for a step-N folder). */
  name?: string;
}

export interface OpenExpert {
  name: string;
  /** The checkpoint folder actually read (the newest step-N when given a training output folder). */
  dir: string;
  /** Parsed, with HF's Llama defaults filled in; unknown keys kept. */
  config: LlamaConfig;
  reader: ShardedReader;
  /** sha256 of its tokenizer.json, null when it has none: experts must speak the same ids. */
  tokenizerSha256: string | null;
}

/** The feed-forward projections that become each layer's experts, with Mixtral's names for them. */
export const FFN_TO_EXPERT = { gate_proj: 'w1', up_proj: 'w3', down_proj: 'w2' } as const;
const FFN_NAME = /^model\.layers\.(\d+)\.mlp\.(.+)$/;

/** For `model.layers.{i}.mlp.{proj}.weight`: the layer and projection; else undefined. */
export function parseFfnName(name: string): { layer: number; proj: keyof typeof FFN_TO_EXPERT } | undefined {
  const m = FFN_NAME.exec(name);
  if (!m) return undefined;
  const proj = m[2]!.replace(/\.weight$/, '');
  if (!m[2]!.endsWith('.weight') || !(proj in FFN_TO_EXPERT)) return undefined;
  return { layer: Number(m[1]), proj: proj as keyof typeof FFN_TO_EXPERT };
}

/** Keys that must agree between experts for their tensors to be mixable. */
const SAME_KEYS = [
  'architectures',
  'vocab_size',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'head_dim',
  'tie_word_embeddings',
  'hidden_act',
] as const;

function defaultName(dir: string): string {
  const base = basename(dir);
  return /^step-\d+$/.test(base) ? basename(dirname(dir)) : base;
}

/** A checkpoint folder, or a training output folder whose newest verified step-N is used. */
async function resolveCheckpointDir(dir: string, verify: boolean): Promise<string> {
  try {
    await readFile(join(dir, CONFIG_FILE));
    return dir;
  } catch {
    const steps = await listCheckpoints(dir).catch(() => []);
    for (const { dir: stepDir } of steps) {
      const state = await readTrainerState(stepDir).catch(() => null);
      if (!state) continue;
      if (verify) {
        try {
          await verifyCheckpointFiles(stepDir, state);
        } catch {
          continue;
        }
      }
      return stepDir;
    }
    throw new MixError(`expert ${dir}: no ${CONFIG_FILE} and no complete step-N checkpoint inside`);
  }
}

async function openOne(source: ExpertSource, verify: boolean): Promise<OpenExpert> {
  const dir = await resolveCheckpointDir(source.dir, verify);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, CONFIG_FILE), 'utf8'));
  } catch (err) {
    throw new MixError(`expert ${dir}: cannot read ${CONFIG_FILE} (${(err as Error).message})`, {
      cause: err,
    });
  }
  const modelType = (raw as { model_type?: unknown } | null)?.model_type;
  if (modelType === 'mixtral') {
    throw new MixError(
      `expert ${dir}: is already a Mixture-of-Experts (model_type mixtral); btx mix takes dense llama checkpoints`,
    );
  }
  if (modelType !== 'llama') {
    throw new MixError(
      `expert ${dir}: model_type ${JSON.stringify(modelType)} is not supported (btx mix takes llama)`,
    );
  }
  let config: LlamaConfig;
  try {
    config = parseModelConfig(raw, join(dir, CONFIG_FILE)) as LlamaConfig;
  } catch (err) {
    throw new MixError(`expert ${dir}: ${(err as Error).message}`, { cause: err });
  }
  if (verify) {
    const state = await readTrainerState(dir).catch((err: unknown) => {
      throw new MixError(`expert ${dir}: ${(err as Error).message}`, { cause: err });
    });
    // Only our own checkpoints carry hashes; a Hugging Face download has none to check.
    if (state) {
      try {
        await verifyCheckpointFiles(dir, state);
      } catch (err) {
        throw new MixError(`expert ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
  }
  let reader: ShardedReader;
  try {
    reader = await ShardedReader.open(dir);
  } catch (err) {
    throw new MixError(`expert ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const tokenizerJson = await readFile(join(dir, TOKENIZER_FILE)).catch(() => null);
  const tokenizerSha256 = tokenizerJson ? sha256Hex(tokenizerJson) : null;
  return { name: source.name ?? defaultName(source.dir), dir, config, reader, tokenizerSha256 };
}

function show(v: unknown): string {
  return v === undefined ? 'unset' : JSON.stringify(v);
}

function listSome(names: string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', ');
}

/** Check experts[1..] against experts[0]; throws MixError naming the folder and the reason. */
export function checkCompatible(experts: readonly OpenExpert[]): void {
  const [first, ...rest] = experts;
  if (!first) throw new MixError('btx mix needs at least one expert');
  for (const e of rest) {
    for (const key of SAME_KEYS) {
      const a = (first.config as Record<string, unknown>)[key];
      const b = (e.config as Record<string, unknown>)[key];
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        throw new MixError(`expert ${e.dir}: ${key} ${show(b)} differs from ${show(a)} in ${first.dir}`);
      }
    }
    const missing = first.reader.tensors.filter((t) => !e.reader.has(t.name)).map((t) => t.name);
    const extra = e.reader.tensors.filter((t) => !first.reader.has(t.name)).map((t) => t.name);
    if (missing.length > 0 || extra.length > 0) {
      const parts = [];
      if (missing.length > 0) parts.push(`missing ${listSome(missing)}`);
      if (extra.length > 0) parts.push(`extra ${listSome(extra)}`);
      throw new MixError(`expert ${e.dir}: tensor names differ from ${first.dir}: ${parts.join('; ')}`);
    }
    for (const t of first.reader.tensors) {
      const other = e.reader.info(t.name);
      if (JSON.stringify(other.shape) !== JSON.stringify(t.shape)) {
        throw new MixError(
          `expert ${e.dir}: tensor ${t.name} has shape ${JSON.stringify(other.shape)} but ${JSON.stringify(t.shape)} in ${first.dir}`,
        );
      }
    }
  }
  for (const e of experts) {
    for (const t of e.reader.tensors) {
      if (!isFloatDType(t.dtype)) {
        throw new MixError(
          `expert ${e.dir}: tensor ${t.name} is ${t.dtype}; only F32, F16 and BF16 can be mixed`,
        );
      }
      if (FFN_NAME.test(t.name) && !parseFfnName(t.name)) {
        throw new MixError(
          `expert ${e.dir}: feed-forward tensor ${t.name} has no Mixtral counterpart (only gate_proj, up_proj, down_proj weights)`,
        );
      }
    }
  }
  // Last, so a structural difference is reported first: experts must give ids the same meaning.
  for (const e of rest) {
    if (e.tokenizerSha256 !== first.tokenizerSha256) {
      const sha = (v: string | null) => (v ? `sha256 ${v.slice(0, 16)}...` : 'none');
      throw new MixError(
        `expert ${e.dir}: its ${TOKENIZER_FILE} (${sha(e.tokenizerSha256)}) differs from the one in ${first.dir} (${sha(first.tokenizerSha256)}); experts must share one tokenizer`,
      );
    }
  }
  const layers = first.config.num_hidden_layers;
  for (let i = 0; i < layers; i++) {
    for (const proj of Object.keys(FFN_TO_EXPERT)) {
      const name = `model.layers.${i}.mlp.${proj}.weight`;
      if (!first.reader.has(name))
        throw new MixError(`expert ${first.dir}: missing feed-forward tensor ${name}`);
    }
  }
}

/** Open every expert (headers only) and check they can be mixed; closes them all on failure. */
export async function openExperts(sources: readonly ExpertSource[], verify = true): Promise<OpenExpert[]> {
  const opened: OpenExpert[] = [];
  try {
    for (const s of sources) opened.push(await openOne(s, verify));
    checkCompatible(opened);
    const names = opened.map((e) => e.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new MixError(`two experts are named ${dup}; give --expert-name for each`);
    return opened;
  } catch (err) {
    await Promise.all(opened.map((e) => e.reader.close()));
    throw err;
  }
}
