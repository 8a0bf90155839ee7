// Training compute of a BTX run and of its compute-matched baselines (spec.baselines), the operator's
// one source for the baselines' step budgets and for status.compute. Pure arithmetic on the spec.
//
// Compute is counted as FLOPs = 6 x active parameters x training tokens (Kaplan et al. 2020: 2 per
// parameter and token forward, 4 backward), the rule the BTX paper's "same compute" comparison uses.
// Active parameters are the weights of the matrix multiplies one token passes through: per layer the
// attention projections (q, k, v, o), the feed-forward network of each expert the router sends the
// token to (top-k of them in an MoE) and the router itself, plus the output head. The input embedding
// (a lookup), norms and the attention scores (which grow with the window, not the parameters) are
// left out: at the sizes this project trains they are a few percent, the same share for every model.
// Tokens are steps x batch size x window, the window being the model's seqLen capped the way the
// training stages cap it (MAX_TRAIN_SEQ_LEN).
//
// BTX's compute is its experts' plus its finetune's (the seed is shared by every model, so it is left
// out of every side, as in the paper). A baseline gets the steps that spend the same FLOPs at its own
// active size, rounded to whole steps: within half a step, so within 2% from 25 steps on.
import { MAX_TRAIN_SEQ_LEN, type ModelSpec } from './stageContract.js';
import type { BTXRunSpec, RouterType } from './types.js';

/** The models whose training compute status.compute shows. */
export type ComputedModel = 'btx' | 'dense' | 'sparseUpcycling';

export interface ComputeBudget {
  model: ComputedModel;
  /** Optimizer steps: for btx every expert's plus the finetune's. */
  steps: number;
  /** Training tokens: steps x batch size x window. */
  tokens: number;
  /** 6 x active parameters x tokens. */
  flops: number;
  /** flops / BTX's flops (1 for btx itself). */
  relativeToBtx: number;
  /** btx only: the finetune's share of its flops (the rest is the experts'); the BTX paper spent 0.23. */
  finetuneShare?: number;
}

/** Parameters of one layer's attention projections. */
function attentionParameters(m: ModelSpec): number {
  const kvWidth = (m.kvHeads ?? m.heads) * (m.dModel / m.heads);
  return 2 * m.dModel * m.dModel + 2 * m.dModel * kvWidth;
}

/** Parameters one token passes through in the dense (seed-shaped) model. */
export function denseActiveParameters(m: ModelSpec): number {
  return m.layers * (attentionParameters(m) + 3 * m.dModel * m.ffnHidden) + m.dModel * m.vocabSize;
}

/** Experts a token is sent to by this router. */
export function activeExperts(router: { type: RouterType; k: number }, experts: number): number {
  if (router.type === 'soft') return experts;
  if (router.type === 'topK') return Math.min(router.k, experts);
  return 1; // switch, sampleTop1: one expert per token
}

/** Parameters one token passes through in an MoE of `experts` experts, `active` of them per token. */
export function moeActiveParameters(m: ModelSpec, experts: number, active: number): number {
  const layer = attentionParameters(m) + active * 3 * m.dModel * m.ffnHidden + m.dModel * experts;
  return m.layers * layer + m.dModel * m.vocabSize;
}

/** Tokens in one training window. */
export function trainWindow(m: ModelSpec): number {
  return Math.min(m.seqLen, MAX_TRAIN_SEQ_LEN);
}

/** The experts of the mixed model: one per domain, plus the seed as generalist when included. */
export function mixedExperts(spec: BTXRunSpec): number {
  return spec.domains.length + (spec.mix.includeSeedAsExpert ? 1 : 0);
}

function flopsOf(activeParameters: number, tokens: number): number {
  return 6 * activeParameters * tokens;
}

/** The experts' training: every domain's steps at expert.batchSize, in the dense (seed-shaped) model. */
function expertsCompute(spec: BTXRunSpec, m: ModelSpec): { steps: number; tokens: number; flops: number } {
  const steps = spec.domains.reduce((n, d) => n + (d.steps ?? spec.expert.steps), 0);
  const tokens = steps * spec.expert.batchSize * trainWindow(m);
  return { steps, tokens, flops: flopsOf(denseActiveParameters(m), tokens) };
}

/** FLOPs of one finetune step: finetune.batchSize windows through the mixed MoE. */
function finetuneStepFlops(spec: BTXRunSpec, m: ModelSpec): number {
  const experts = mixedExperts(spec);
  const active = moeActiveParameters(m, experts, activeExperts(spec.mix.router, experts));
  return flopsOf(active, spec.finetune.batchSize * trainWindow(m));
}

/** What the BTX model's training spends: experts (dense, one domain each) + finetune (the MoE). */
export function btxCompute(spec: BTXRunSpec, m: ModelSpec): ComputeBudget {
  const experts = expertsCompute(spec, m);
  const finetuneTokens = spec.finetune.steps * spec.finetune.batchSize * trainWindow(m);
  const finetuneFlops = spec.finetune.steps * finetuneStepFlops(spec, m);
  const flops = experts.flops + finetuneFlops;
  return {
    model: 'btx',
    steps: experts.steps + spec.finetune.steps,
    tokens: experts.tokens + finetuneTokens,
    flops,
    relativeToBtx: 1,
    finetuneShare: flops > 0 ? finetuneFlops / flops : 0,
  };
}

/**
 * The finetune steps (at least 1) whose FLOPs are `share` of BTX's total, the experts' being fixed:
 * finetune = share / (1 - share) x experts, in whole steps of finetuneStepFlops. spec.finetune.computeShare
 * sets spec.finetune.steps with it (applyDefaults).
 */
export function finetuneStepsForShare(spec: BTXRunSpec, m: ModelSpec, share: number): number {
  const target = (share / (1 - share)) * expertsCompute(spec, m).flops;
  return Math.max(1, Math.round(target / finetuneStepFlops(spec, m)));
}

/** The whole steps of `batchSize` windows that spend `flops` at `activeParameters` (at least 1). */
function matchingSteps(flops: number, activeParameters: number, batchSize: number, window: number): number {
  return Math.max(1, Math.round(flops / flopsOf(activeParameters, batchSize * window)));
}

function budget(
  model: ComputedModel,
  steps: number,
  batchSize: number,
  window: number,
  active: number,
  btxFlops: number,
): ComputeBudget {
  const tokens = steps * batchSize * window;
  const flops = flopsOf(active, tokens);
  return { model, steps, tokens, flops, relativeToBtx: btxFlops > 0 ? flops / btxFlops : 0 };
}

/**
 * BTX's compute, then each trained baseline the spec asks for with the steps that match it:
 * dense trains the seed-shaped model at expert.batchSize, sparseUpcycling the MoE of seed copies (as
 * many experts as BTX mixes, the same router) at finetune.batchSize. Needs spec.model (validation
 * requires it with baselines); without it there is nothing to count and the list is empty.
 */
export function computeBudgets(spec: BTXRunSpec): ComputeBudget[] {
  const m = spec.model;
  if (!m) return [];
  const btx = btxCompute(spec, m);
  const window = trainWindow(m);
  const out = [btx];
  const wanted = new Set(spec.baselines ?? []);
  if (wanted.has('dense')) {
    const active = denseActiveParameters(m);
    const steps = matchingSteps(btx.flops, active, spec.expert.batchSize, window);
    out.push(budget('dense', steps, spec.expert.batchSize, window, active, btx.flops));
  }
  if (wanted.has('sparseUpcycling')) {
    const experts = mixedExperts(spec);
    const active = moeActiveParameters(m, experts, activeExperts(spec.mix.router, experts));
    const steps = matchingSteps(btx.flops, active, spec.finetune.batchSize, window);
    out.push(budget('sparseUpcycling', steps, spec.finetune.batchSize, window, active, btx.flops));
  }
  return out;
}

/** The steps a trained baseline runs for (what computeBudgets says), or undefined when not asked for. */
export function baselineSteps(spec: BTXRunSpec, model: 'dense' | 'sparseUpcycling'): number | undefined {
  return computeBudgets(spec).find((b) => b.model === model)?.steps;
}
