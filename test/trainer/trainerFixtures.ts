// Tiny model configs and corpora for the trainer tests (sizes chosen to run in well under a second).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../../src/trainer/backend.js';
import { saveCheckpoint } from '../../src/trainer/checkpoint.js';
import type { LlamaConfig, MixtralConfig, ModelConfig, RouterType } from '../../src/trainer/hfConfig.js';
import { disposeParams, initParams, modelDims, paramsToTensors } from '../../src/trainer/model.js';
import { BYTE_VOCAB_SIZE, llamaConfigFromSpec } from '../../src/trainer/hfConfig.js';
import { loadDomain, type Domain } from '../../src/trainer/tokenize.js';
import { byteTokenizer } from '../../src/trainer/tokenizer.js';
import { hashString } from '../../src/trainer/prng.js';
import { log } from '../../src/util/log.js';

// Step-by-step training logs would bury the test report; BTX_LOG_LEVEL=info brings them back.
log.level = process.env.BTX_LOG_LEVEL ?? 'warn';

export async function backend(): Promise<void> {
  await initBackend(process.env.BTX_BACKEND ?? 'wasm');
}

export function tinyLlama(overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    ...llamaConfigFromSpec({
      vocabSize: BYTE_VOCAB_SIZE,
      dModel: 32,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      ffnHidden: 64,
      seqLen: 16,
    }),
    ...overrides,
  };
}

export function tinyMixtral(experts = 3, router: RouterType = 'topK', k = 2): MixtralConfig {
  const { model_type: _type, ...rest } = tinyLlama();
  return {
    ...rest,
    model_type: 'mixtral',
    num_local_experts: experts,
    num_experts_per_tok: k,
    router_aux_loss_coef: 0.01,
    btx_router: router,
  };
}

export const REPO_SAMPLES = join(import.meta.dirname, '..', '..', 'data', 'samples');

/** A temp folder removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `btx-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A small text domain: repeated sentences with numbers, enough for windows of 16+1 tokens. */
export function writeCorpus(dir: string, name: string, paragraphs = 60): string {
  const text = Array.from(
    { length: paragraphs },
    (_, i) => `Paragraph ${i}: the ${name} corpus counts ${(i * 7) % 13} apples and ${i % 5} pears.`,
  ).join('\n\n');
  const file = join(dir, `${name}.txt`);
  writeFileSync(file, text);
  return file;
}

// Token shards of the tests' domains live in one temp folder, removed when the process exits.
const TOKENS = mkdtempSync(join(tmpdir(), 'btx-tokens-'));
process.on('exit', () => rmSync(TOKENS, { recursive: true, force: true }));

/** A domain of `path` tokenized with the byte tokenizer (into a temp folder per path; reused there). */
export async function byteDomain(name: string, path: string): Promise<Domain> {
  return loadDomain(name, path, path, join(TOKENS, String(hashString(path))), byteTokenizer());
}

/**
 * A freshly initialised checkpoint at `dir` (weights from `randomSeed`, the byte tokenizer), as a
 * seed or mix stage would leave it: what the stage tests start from.
 */
export async function saveRandomCheckpoint(
  dir: string,
  config: ModelConfig,
  { randomSeed, stage = 'seed', step = 0 }: { randomSeed: number; stage?: string; step?: number },
): Promise<string> {
  const params = initParams(modelDims(config), randomSeed);
  try {
    const state = { stage, step, totalSteps: step, loss: null, dataPosition: step, randomSeed };
    await saveCheckpoint(
      dir,
      await paramsToTensors(params),
      config,
      { ...state, time: new Date().toISOString() },
      {
        files: byteTokenizer().files,
      },
    );
  } finally {
    disposeParams(params);
  }
  return dir;
}
