// The training stages: seed (random init), expert (branch from the seed, one domain) and
// finetune (the mixed MoE on all domains). All three resume from the newest complete checkpoint
// in their output folder, so a replaced pod continues where the last one stopped, on the same
// data order (batches are a function of (seed, step)) and with the same optimizer moments.
import { join } from 'node:path';
import type { ModelSpec, Stage, TerminationMessage } from '../api/stageContract.js';
import { hostPath } from '../util/containerPaths.js';
import { log } from '../util/log.js';
import { AdamW, ADAMW_DEFAULTS, OPTIMIZER_KIND } from './adamw.js';
import { checkpointDirName, findLatestCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { DType, LoadedCheckpoint } from './checkpoint.js';
import { loadModelCheckpoint } from './checkpointInput.js';
import { closeDomain, loadDomain } from './tokenize.js';
import type { BatchSource } from './data.js';
import { BYTE_VOCAB_SIZE, llamaConfigFromSpec } from './hfConfig.js';
import type { ModelConfig, RouterType } from './hfConfig.js';
import {
  disposeParams,
  initParams,
  isExpertWeight,
  modelDims,
  paramsFromTensors,
  paramsToTensors,
} from './model.js';
import type { Params } from './model.js';
import { ProgressReporter } from './progress.js';
import { byteTokenizer, checkTokenizerFits, loadCheckpointTokenizer } from './tokenizer.js';
import type { TextTokenizer } from './tokenizer.js';
import { trainLoop } from './train.js';

export type TrainStage = Extract<Stage, 'seed' | 'expert' | 'finetune'>;
export const OPTIMIZER_FILE = 'optimizer.safetensors';
/** Longest window trained by default (a real Llama config says 4096; our CPU budget does not). */
export const DEFAULT_MAX_SEQ_LEN = 256;

export interface TrainStageSettings {
  stage: TrainStage;
  /** Container paths, mapped through hostPath() when opened. */
  data: { name: string; path: string }[];
  /** Token shards: `<tokens>/<domain>/` (container path; default `<out>/tokens`). */
  tokens?: string;
  /** The tokenize stage made the shards: read them, never tokenize (a missing or stale one fails). */
  tokenized?: boolean;
  /** Per data entry; default equal. */
  weights?: number[];
  input?: string;
  out: string;
  steps: number;
  batchSize: number;
  learningRate: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
  checkpointEvery: number;
  seed: number;
  /** seed only. */
  spec?: ModelSpec;
  seqLen?: number;
  router?: RouterType;
  k?: number;
  loadBalancingCoef?: number;
  freezeExperts: boolean;
  dtype: DType;
  logEvery: number;
  /** Tests: stop after this step as if killed (no final checkpoint, no message). */
  stopAtStep?: number;
}

/** Finetune overrides of the routing the mixed checkpoint was written with. */
function applyRoutingOverrides(config: ModelConfig, s: TrainStageSettings): ModelConfig {
  if (config.model_type !== 'mixtral') {
    if (s.stage === 'finetune') throw new Error('finetune needs a mixed (mixtral) checkpoint as input');
    return config;
  }
  return {
    ...config,
    ...(s.router ? { btx_router: s.router } : {}),
    ...(s.k !== undefined ? { num_experts_per_tok: s.k } : {}),
    ...(s.loadBalancingCoef !== undefined ? { router_aux_loss_coef: s.loadBalancingCoef } : {}),
  };
}

async function startingPoint(
  s: TrainStageSettings,
  resume: LoadedCheckpoint | null,
): Promise<{ config: ModelConfig; params: Params; from: string; tokenizer: TextTokenizer }> {
  if (resume) {
    // Flags win on a restart too (the router of a finetune may be changed between attempts).
    const config = applyRoutingOverrides(resume.config, s);
    const tokenizer = await loadCheckpointTokenizer(resume.dir, modelDims(config).vocab);
    return {
      config,
      params: paramsFromTensors(modelDims(config), resume.tensors),
      from: resume.dir,
      tokenizer,
    };
  }
  if (s.stage === 'seed') {
    if (!s.spec) throw new Error('seed needs --model-config (or BTX_MODEL_CONFIG)');
    const config = llamaConfigFromSpec({ ...s.spec, vocabSize: s.spec.vocabSize || BYTE_VOCAB_SIZE });
    // A model trained from scratch here speaks bytes; its checkpoints carry the byte tokenizer's files.
    const tokenizer = byteTokenizer();
    checkTokenizerFits(tokenizer, config.vocab_size, '--model-config');
    return { config, params: initParams(modelDims(config), s.seed), from: 'random init', tokenizer };
  }
  if (!s.input) throw new Error(`${s.stage} needs --input (or BTX_INPUT)`);
  const loaded = await loadModelCheckpoint(hostPath(s.input));
  const config = applyRoutingOverrides(loaded.config, s);
  const tokenizer = await loadCheckpointTokenizer(loaded.dir, modelDims(config).vocab);
  return { config, params: paramsFromTensors(modelDims(config), loaded.tensors), from: s.input, tokenizer };
}

export async function runTrainStage(s: TrainStageSettings): Promise<TerminationMessage> {
  if (s.data.length === 0) throw new Error(`${s.stage} needs --data (or BTX_DATA)`);
  const outHost = hostPath(s.out);
  const resume = await findLatestCheckpoint(outHost);
  const { config, params, from, tokenizer } = await startingPoint(s, resume);
  const dims = modelDims(config);
  const trainable: Params = new Map(
    [...params].filter(([name]) => !(s.freezeExperts && isExpertWeight(name))),
  );
  const optimizer = new AdamW(trainable, {
    ...ADAMW_DEFAULTS,
    weightDecay: s.weightDecay,
    gradClip: s.gradClip,
  });
  let startStep = 0;
  if (resume?.state) {
    const opt = resume.extra[OPTIMIZER_FILE];
    if (!opt || !resume.state.optimizer) throw new Error(`checkpoint ${resume.dir} has no optimizer state`);
    const fresh = optimizer.load(opt, resume.state.optimizer.step);
    if (fresh.length > 0) {
      log.warn('resumed without optimizer moments for some parameters; they start from zero', {
        parameters: fresh.length,
        first: fresh[0],
      });
    }
    startStep = resume.state.step;
    if (resume.state.totalSteps !== s.steps) {
      log.warn('resumed run has a different step count; the LR schedule changes', {
        was: resume.state.totalSteps,
        now: s.steps,
      });
    }
  }
  // Shards are made once per (sources, tokenizer) and reused by restarts and later stages.
  const tokensDir = hostPath(s.tokens ?? `${s.out.replace(/\/+$/, '')}/tokens`);
  const domains = [];
  for (const d of s.data)
    domains.push(await loadDomain(d.name, d.path, hostPath(d.path), tokensDir, tokenizer, s.tokenized));
  const source: BatchSource = { domains, ...(s.weights ? { weights: s.weights } : {}) };
  const seqLen = s.seqLen ?? Math.min(Number(config.max_position_embeddings), DEFAULT_MAX_SEQ_LEN);
  log.info('training stage starting', {
    stage: s.stage,
    from,
    resumedAtStep: resume ? startStep : null,
    steps: s.steps,
    modelType: config.model_type,
    parameters: [...params.values()].reduce((n, v) => n + v.size, 0),
    trainableParameters: [...trainable.values()].reduce((n, v) => n + v.size, 0),
    domains: domains.map((d) => ({
      name: d.name,
      trainTokens: d.train.length,
      heldOutTokens: d.heldOut.length,
    })),
    seqLen,
    batchSize: s.batchSize,
    ...(dims.experts > 0
      ? { router: dims.routing.router, k: dims.routing.k, auxLossCoef: dims.auxLossCoef }
      : {}),
  });

  const progress = new ProgressReporter(s.stage);
  let newest: string | undefined;
  let lastTokensPerSecond: number | null = null;
  const save = async (step: number, loss: number | null): Promise<void> => {
    const name = checkpointDirName(step);
    await saveCheckpoint(
      join(outHost, name),
      await paramsToTensors(params),
      config,
      {
        stage: s.stage,
        step,
        totalSteps: s.steps,
        loss,
        dataPosition: step,
        randomSeed: s.seed,
        optimizer: { file: OPTIMIZER_FILE, kind: OPTIMIZER_KIND, step: optimizer.step },
        time: new Date().toISOString(),
        // An expert of one domain says which; one trained on a list (the dense baseline) does not.
        ...(s.stage === 'expert' && s.data.length === 1 ? { domain: s.data[0]!.name } : {}),
      },
      {
        dtype: s.dtype,
        extraTensorFiles: { [OPTIMIZER_FILE]: await optimizer.toTensors() },
        files: tokenizer.files,
      },
    );
    newest = `${s.out.replace(/\/+$/, '')}/${name}`;
    progress.checkpointWritten(newest);
    // The operator learns of every checkpoint at once, not at the next throttle window.
    progress.report({ step, totalSteps: s.steps, loss, tokensPerSecond: lastTokensPerSecond }, true);
    log.info('checkpoint written', { stage: s.stage, step, checkpoint: newest });
  };

  try {
    const result = await trainLoop({
      params,
      dims,
      optimizer,
      source,
      seed: s.seed,
      batchSize: s.batchSize,
      seqLen,
      schedule: {
        peak: s.learningRate,
        warmupSteps: s.warmupSteps,
        totalSteps: s.steps,
        minRatio: s.minLrRatio,
      },
      startStep,
      ...(s.stopAtStep !== undefined ? { stopAtStep: s.stopAtStep } : {}),
      checkpointEvery: s.checkpointEvery,
      onCheckpoint: save,
      onStep: (r) => {
        lastTokensPerSecond = r.tokensPerSecond;
        if (r.step % s.logEvery === 0 || r.step === r.totalSteps || r.routing) {
          log.info('train step', { stage: s.stage, ...r });
        }
        progress.report(
          { step: r.step, totalSteps: r.totalSteps, loss: r.loss, tokensPerSecond: r.tokensPerSecond },
          r.step === r.totalSteps,
        );
      },
    });
    const killed = s.stopAtStep !== undefined && result.step < s.steps;
    const alreadySaved = resume !== null && startStep === result.step; // restarted after finishing
    if (alreadySaved) newest = `${s.out.replace(/\/+$/, '')}/${checkpointDirName(result.step)}`;
    else if (!killed && !result.checkpointed) await save(result.step, result.loss ?? null);
    const loss = result.loss ?? resume?.state?.loss ?? null;
    progress.report({ step: result.step, totalSteps: s.steps, loss, tokensPerSecond: null }, true);
    await progress.flush();
    log.info('training stage finished', { stage: s.stage, step: result.step, loss, checkpoint: newest });
    return { ...(newest ? { checkpoint: newest } : {}), step: result.step, loss };
  } finally {
    domains.forEach(closeDomain);
    optimizer.dispose();
    disposeParams(params);
  }
}
