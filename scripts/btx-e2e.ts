// Branch-Train-MiX against its compute-matched baselines on the sample corpora, in one process,
// printing a table like the paper's (held-out loss per model and domain, and the mean):
//   seed (all domains) -> one expert per domain -> mix (+ the seed as generalist) -> finetune = BTX;
//   dense: the seed trained on all domains for the same training FLOPs as BTX's experts + finetune;
//   sparse upcycling: the mix of seed copies (as many as BTX has experts) finetuned for those FLOPs;
//   oracle: each domain scored by its own expert (what perfect domain routing of the experts gives).
// The last rows, "own expert - dense" per domain, decide whether BTX can win: when a domain's own
// expert does not beat the dense model there, no routing of the experts can (docs/trainer.md,
// "What BTX buys at small scale").
//
// Usage: node --import tsx scripts/btx-e2e.ts [--seed-steps N] [--expert-steps N] [--finetune-steps N]
//        [--eval-batches N] [--seed-lr X] [--expert-lr X] [--finetune-lr X] [--combine average|seed]
//        [--balance X] [--d-model N] [--layers N] [--ffn N] [--heads N] [--train-seed N]
//        [--seed-from DIR] [--out DIR] [--router topK] [--no-generalist] [--no-baselines]
// FLOPs are the operator's (src/api/compute.ts): 6 x the parameters a token passes through in
// matmuls (the LM head included) per training token, so a top-2 MoE step costs more than a dense one.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { computeBudgets, type ComputeBudget, type ComputedModel } from '../src/api/compute.js';
import { applyDefaults, DEFAULT_VOCAB_SIZE } from '../src/api/defaults.js';
import type { ModelSpec } from '../src/api/stageContract.js';
import { initBackend } from '../src/trainer/backend.js';
import { runEval } from '../src/trainer/evaluate.js';
import type { RouterType } from '../src/trainer/hfConfig.js';
import { mixExperts, type CombineRule } from '../src/trainer/mix/mixExperts.js';
import { runTrainStage } from '../src/trainer/trainStage.js';
import type { TrainStageSettings } from '../src/trainer/trainStage.js';

export interface E2eOptions {
  seedSteps: number;
  expertSteps: number;
  finetuneSteps: number;
  evalBatches: number;
  seedLr: number;
  expertLr: number;
  finetuneLr: number;
  router: RouterType;
  combine: CombineRule;
  /** Load-balancing loss coefficient of the finetune (and of sparse upcycling's). */
  balance: number;
  generalist: boolean;
  baselines: boolean;
  model: ModelSpec;
  /** Offset of every stage's random seed: a second run with another value is a second split. */
  trainSeed: number;
  seedFrom?: string;
  out?: string;
}

/** The script's flags; a bad value throws an error naming its flag. */
export function parseE2eArgs(argv: string[]): E2eOptions {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      // The defaults are run B of docs/trainer.md's "What BTX buys at small scale" table.
      'seed-steps': { type: 'string', default: '600' },
      'expert-steps': { type: 'string', default: '100' },
      'finetune-steps': { type: 'string', default: '100' },
      'eval-batches': { type: 'string', default: '20' },
      'seed-lr': { type: 'string', default: '3e-3' },
      'expert-lr': { type: 'string', default: '1e-3' },
      'finetune-lr': { type: 'string', default: '1e-3' },
      router: { type: 'string', default: 'topK' },
      combine: { type: 'string', default: 'average' },
      balance: { type: 'string', default: '0.01' },
      'd-model': { type: 'string', default: '64' },
      layers: { type: 'string', default: '2' },
      ffn: { type: 'string', default: '192' },
      heads: { type: 'string', default: '4' },
      'train-seed': { type: 'string', default: '0' },
      'seed-from': { type: 'string' },
      'no-generalist': { type: 'boolean', default: false },
      'no-baselines': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  type CountFlag =
    | 'seed-steps'
    | 'expert-steps'
    | 'finetune-steps'
    | 'eval-batches'
    | 'd-model'
    | 'layers'
    | 'ffn'
    | 'heads';
  const count = (flag: CountFlag) => {
    const n = Number(args[flag]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--${flag} must be an integer >= 1, got '${args[flag]}'`);
    return n;
  };
  /** A number > 0, or >= 0 where zero means "off" (the load-balancing loss, the seed offset). */
  const number = (
    flag: 'seed-lr' | 'expert-lr' | 'finetune-lr' | 'balance' | 'train-seed',
    zeroAllowed = false,
  ) => {
    const n = Number(args[flag]);
    const ok = args[flag].trim() !== '' && Number.isFinite(n) && (zeroAllowed ? n >= 0 : n > 0);
    if (!ok)
      throw new Error(`--${flag} must be a number ${zeroAllowed ? '>= 0' : '> 0'}, got '${args[flag]}'`);
    return n;
  };
  const routers: RouterType[] = ['topK', 'switch', 'soft', 'sampleTop1'];
  if (!routers.includes(args.router as RouterType))
    throw new Error(`--router must be one of ${routers.join(', ')}, got '${args.router}'`);
  const combines: CombineRule[] = ['average', 'seed'];
  if (!combines.includes(args.combine as CombineRule))
    throw new Error(`--combine must be one of ${combines.join(', ')}, got '${args.combine}'`);
  return {
    seedSteps: count('seed-steps'),
    expertSteps: count('expert-steps'),
    finetuneSteps: count('finetune-steps'),
    evalBatches: count('eval-batches'),
    seedLr: number('seed-lr'),
    expertLr: number('expert-lr'),
    finetuneLr: number('finetune-lr'),
    router: args.router as RouterType,
    combine: args.combine as CombineRule,
    balance: number('balance', true),
    generalist: !args['no-generalist'],
    baselines: !args['no-baselines'],
    model: {
      vocabSize: DEFAULT_VOCAB_SIZE,
      dModel: count('d-model'),
      layers: count('layers'),
      heads: count('heads'),
      ffnHidden: count('ffn'),
      seqLen: 64,
    },
    trainSeed: number('train-seed', true),
    ...(args['seed-from'] !== undefined ? { seedFrom: args['seed-from'] } : {}),
    ...(args.out !== undefined ? { out: args.out } : {}),
  };
}

const ROOT = join(import.meta.dirname, '..', 'data', 'samples');
export const DOMAINS = ['math', 'code', 'prose'].map((name) => ({ name, path: join(ROOT, name) }));
const BATCH_SIZE = 8;

/**
 * BTX's training compute after the seed and the compute-matched baselines' steps, from the operator's
 * own accounting (src/api/compute.ts: 6 x active parameters x tokens) for this script's run written
 * as a BTXRun spec, so the script and spec.baselines budget alike.
 */
export function e2eBudgets(o: E2eOptions): Record<ComputedModel, ComputeBudget> {
  const spec = applyDefaults({
    storage: { persistentVolumeClaim: { claimName: 'unused' } },
    model: o.model,
    seed: { checkpoint: '/btx/seed' },
    domains: DOMAINS.map((d) => ({ name: d.name, data: `/btx/${d.name}` })),
    expert: { steps: o.expertSteps, batchSize: BATCH_SIZE },
    mix: { includeSeedAsExpert: o.generalist, router: { type: o.router, k: 2 } },
    finetune: { steps: o.finetuneSteps, batchSize: BATCH_SIZE },
    baselines: ['dense', 'sparseUpcycling'],
  });
  const budgets = computeBudgets(spec);
  const of = (model: ComputedModel) => {
    const b = budgets.find((x) => x.model === model);
    if (!b) throw new Error(`no ${model} budget`);
    return b;
  };
  return { btx: of('btx'), dense: of('dense'), sparseUpcycling: of('sparseUpcycling') };
}

export interface E2eStages {
  seed: TrainStageSettings;
  experts: TrainStageSettings[];
  finetune: TrainStageSettings;
  dense: TrainStageSettings;
  upcycled: TrainStageSettings;
  /** Training compute of BTX after the seed (experts + finetune) and of each baseline. */
  budgets: Record<ComputedModel, ComputeBudget>;
}

/**
 * Every training stage's settings. `seedCheckpoint`, `mixedDir` and `upcycledDir` are only known
 * once the seed has trained and the mixes are made; the paths are placeholders until then.
 */
export function e2eStages(
  o: E2eOptions,
  work: string,
  inputs: { seedCheckpoint: string; mixedDir: string; upcycledDir?: string },
): E2eStages {
  const budgets = e2eBudgets(o);
  const stage = (
    over: Partial<TrainStageSettings> & Pick<TrainStageSettings, 'stage' | 'out' | 'steps' | 'learningRate'>,
  ): TrainStageSettings => ({
    data: DOMAINS,
    tokens: join(work, 'tokens'),
    batchSize: BATCH_SIZE,
    warmupSteps: Math.max(1, Math.round(over.steps / 10)),
    minLrRatio: 0.1,
    weightDecay: 0.1,
    gradClip: 1,
    checkpointEvery: 0,
    freezeExperts: false,
    dtype: 'F32',
    logEvery: 50,
    ...over,
    seed: (over.seed ?? 1) + o.trainSeed,
  });
  return {
    seed: stage({
      stage: 'seed',
      out: join(work, 'seed'),
      steps: o.seedSteps,
      spec: o.model,
      learningRate: o.seedLr,
    }),
    experts: DOMAINS.map((d) =>
      stage({
        stage: 'expert',
        data: [d],
        input: inputs.seedCheckpoint,
        out: join(work, 'experts', d.name),
        steps: o.expertSteps,
        learningRate: o.expertLr,
        seed: 2,
      }),
    ),
    finetune: stage({
      stage: 'finetune',
      input: inputs.mixedDir,
      out: join(work, 'finetuned'),
      steps: o.finetuneSteps,
      learningRate: o.finetuneLr,
      loadBalancingCoef: o.balance,
      seed: 3,
    }),
    // Dense: a continuation of the seed on the mixture, at the experts' rate (it is what an expert
    // would be if it trained on everything).
    dense: stage({
      stage: 'expert',
      input: inputs.seedCheckpoint,
      out: join(work, 'dense'),
      steps: budgets.dense.steps,
      learningRate: o.expertLr,
      seed: 4,
    }),
    // Sparse upcycling: BTX's finetune recipe on an MoE of seed copies, for all of BTX's FLOPs.
    upcycled: stage({
      stage: 'finetune',
      input: inputs.upcycledDir ?? join(work, 'upcycled-mix'),
      out: join(work, 'upcycled'),
      steps: budgets.sparseUpcycling.steps,
      learningRate: o.finetuneLr,
      loadBalancingCoef: o.balance,
      seed: 5,
    }),
    budgets,
  };
}

const timings: [string, number][] = [];
async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await f();
  timings.push([name, (performance.now() - t0) / 1000]);
  return result;
}

type Cell = { loss: number; perplexity: number };

/** The report: one row per model, the oracle and the "own expert - dense" row. */
function table(
  o: E2eOptions,
  stages: E2eStages,
  cell: (model: string, domain: string) => Cell | undefined,
  models: string[],
): string[] {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const row = (name: string, losses: number[]) =>
    `| ${name} | ${losses.map((l) => l.toFixed(3)).join(' | ')} | ${mean(losses).toFixed(3)} |`;
  const lossOf = (m: string, d: string) => cell(m, d)?.loss ?? NaN;
  const lines = [
    `| model | ${DOMAINS.map((d) => d.name).join(' | ')} | mean |`,
    `| --- | ${DOMAINS.map(() => '---').join(' | ')} | --- |`,
    ...models.map((m) =>
      row(
        m,
        DOMAINS.map((d) => lossOf(m, d.name)),
      ),
    ),
    row(
      'oracle (own expert)',
      DOMAINS.map((d) => lossOf(`expert:${d.name}`, d.name)),
    ),
  ];
  if (o.baselines) {
    lines.push(
      row(
        'own expert - dense',
        DOMAINS.map((d) => lossOf(`expert:${d.name}`, d.name) - lossOf('dense', d.name)),
      ),
      row(
        'BTX - dense',
        DOMAINS.map((d) => lossOf('BTX', d.name) - lossOf('dense', d.name)),
      ),
    );
    const { btx, dense, sparseUpcycling } = stages.budgets;
    const pct = (b: ComputeBudget) => `${((b.relativeToBtx - 1) * 100).toFixed(2)}%`;
    lines.push(
      '',
      `training FLOPs after the seed: BTX ${btx.flops.toExponential(3)}, dense ${dense.steps} steps ` +
        `${dense.flops.toExponential(3)} (${pct(dense)}), sparse upcycling ${sparseUpcycling.steps} steps ` +
        `${sparseUpcycling.flops.toExponential(3)} (${pct(sparseUpcycling)})`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  let o: E2eOptions;
  try {
    o = parseE2eArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`btx-e2e: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const work = o.out ?? mkdtempSync(join(tmpdir(), 'btx-e2e-'));
  const mixedDir = join(work, 'mixed');
  const upcycledDir = join(work, 'upcycled-mix');
  const backend = await initBackend();
  const seedCheckpoint =
    o.seedFrom ??
    (await timed('seed', () => runTrainStage(e2eStages(o, work, { seedCheckpoint: '', mixedDir }).seed)))
      .checkpoint!;
  const stages = e2eStages(o, work, { seedCheckpoint, mixedDir, upcycledDir });
  const experts: { name: string; dir: string }[] = [];
  for (const [i, d] of DOMAINS.entries()) {
    const r = await timed(`expert ${d.name}`, () => runTrainStage(stages.experts[i]!));
    experts.push({ name: d.name, dir: r.checkpoint! });
  }
  const generalist = o.generalist ? { generalist: { dir: seedCheckpoint, name: 'generalist' } } : {};
  const mixOptions = { router: o.router, topK: 2, verifyInputs: false } as const;
  await timed('mix', () =>
    mixExperts({
      experts,
      ...generalist,
      out: mixedDir,
      ...mixOptions,
      combine: o.combine,
      ...(o.combine === 'seed' ? { seedCheckpoint: { dir: seedCheckpoint } } : {}),
    }),
  );
  const btx = await timed('finetune', () => runTrainStage(stages.finetune));
  const checkpoints = [
    { name: 'seed', dir: seedCheckpoint },
    ...experts.map((e) => ({ name: `expert:${e.name}`, dir: e.dir })),
  ];
  if (o.baselines) {
    const dense = await timed('dense', () => runTrainStage(stages.dense));
    await timed('upcycling mix', () =>
      mixExperts({
        experts: DOMAINS.map((d) => ({ dir: seedCheckpoint, name: `copy-${d.name}` })),
        ...generalist,
        out: upcycledDir,
        ...mixOptions,
      }),
    );
    const upcycled = await timed('sparse upcycling', () => runTrainStage(stages.upcycled));
    checkpoints.push(
      { name: 'dense', dir: dense.checkpoint! },
      { name: 'sparse upcycling', dir: upcycled.checkpoint! },
    );
  }
  checkpoints.push({ name: 'mixed (no ft)', dir: mixedDir }, { name: 'BTX', dir: btx.checkpoint! });
  const report = await timed('eval', () =>
    runEval({
      checkpoints,
      data: DOMAINS,
      tokens: join(work, 'tokens'),
      batches: o.evalBatches,
      batchSize: 8,
    }),
  );
  const cell = (m: string, d: string) => report.results.find((r) => r.model === m && r.domain === d);
  const m = o.model;
  const lines = [
    `BTX vs baselines (backend ${backend}, ${work}): model d${m.dModel} L${m.layers} ffn${m.ffnHidden} h${m.heads}, ` +
      `seed ${o.seedFrom ? `from ${o.seedFrom}` : `${o.seedSteps} steps at LR ${o.seedLr}`}, experts ${o.expertSteps} each at LR ${o.expertLr}, ` +
      `finetune ${o.finetuneSteps} at LR ${o.finetuneLr} (balance ${o.balance}), combine ${o.combine}, train seed +${o.trainSeed}`,
    `held-out loss, ${report.tokensPerDomain} tokens per domain`,
    ...table(o, stages, cell, [...new Set(report.results.map((r) => r.model))]),
    '',
    "BTX routing: share of each domain's token slots per expert (mean over layers)",
    ...report.routing
      .filter((r) => r.model === 'BTX' && r.layer === -1)
      .map(
        (r) =>
          `  ${r.domain.padEnd(8)} ${r.experts.map((e, i) => `${e} ${r.shares[i]!.toFixed(2)}`).join('  ')}`,
      ),
    '',
    `seconds: ${timings.map(([n, s]) => `${n} ${s.toFixed(1)}`).join(', ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
