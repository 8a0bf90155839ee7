// Branch-Train-MiX end to end on the sample corpora, in one process, printing a table like the
// paper's (held-out loss/perplexity per model and domain) and the BTX model's routing:
//   seed (all domains) -> 3 experts (one domain each) -> mix (+ seed as generalist) -> finetune -> eval,
//   plus a dense baseline: the seed trained on all domains for the steps that match BTX's FLOPs.
//
// Usage: node --import tsx scripts/btx-e2e.ts [--seed-steps N] [--expert-steps N] [--finetune-steps N]
//        [--eval-batches N] [--expert-lr X] [--finetune-lr X] [--out DIR] [--router topK] [--no-generalist]
// The seed trains at 3e-3, the experts and the dense baseline (a continuation of the seed, as an
// expert is) at --expert-lr, the mixed model at --finetune-lr.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { baselineSteps } from '../src/api/compute.js';
import { applyDefaults } from '../src/api/defaults.js';
import { initBackend } from '../src/trainer/backend.js';
import { runEval } from '../src/trainer/evaluate.js';
import type { RouterType } from '../src/trainer/hfConfig.js';
import { mixExperts } from '../src/trainer/mix/mixExperts.js';
import { runTrainStage } from '../src/trainer/trainStage.js';
import type { TrainStageSettings } from '../src/trainer/trainStage.js';

export interface E2eOptions {
  seedSteps: number;
  expertSteps: number;
  finetuneSteps: number;
  evalBatches: number;
  expertLr: number;
  finetuneLr: number;
  router: RouterType;
  generalist: boolean;
  out?: string;
}

/** The script's flags; a bad value throws an error naming its flag. */
export function parseE2eArgs(argv: string[]): E2eOptions {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      'seed-steps': { type: 'string', default: '150' },
      'expert-steps': { type: 'string', default: '100' },
      'finetune-steps': { type: 'string', default: '100' },
      'eval-batches': { type: 'string', default: '6' },
      // The learning rates docs/trainer.md's "End-to-end quality" table was measured with.
      'expert-lr': { type: 'string', default: '2e-3' },
      'finetune-lr': { type: 'string', default: '1e-3' },
      router: { type: 'string', default: 'topK' },
      'no-generalist': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const count = (flag: 'seed-steps' | 'expert-steps' | 'finetune-steps' | 'eval-batches') => {
    const n = Number(args[flag]);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--${flag} must be an integer >= 1, got '${args[flag]}'`);
    return n;
  };
  const rate = (flag: 'expert-lr' | 'finetune-lr') => {
    const n = Number(args[flag]);
    if (args[flag].trim() === '' || !Number.isFinite(n) || n <= 0)
      throw new Error(`--${flag} must be a number > 0, got '${args[flag]}'`);
    return n;
  };
  const routers: RouterType[] = ['topK', 'switch', 'soft', 'sampleTop1'];
  if (!routers.includes(args.router as RouterType))
    throw new Error(`--router must be one of ${routers.join(', ')}, got '${args.router}'`);
  return {
    seedSteps: count('seed-steps'),
    expertSteps: count('expert-steps'),
    finetuneSteps: count('finetune-steps'),
    evalBatches: count('eval-batches'),
    expertLr: rate('expert-lr'),
    finetuneLr: rate('finetune-lr'),
    router: args.router as RouterType,
    generalist: !args['no-generalist'],
    ...(args.out !== undefined ? { out: args.out } : {}),
  };
}

const ROOT = join(import.meta.dirname, '..', 'data', 'samples');
export const DOMAINS = ['math', 'code', 'prose'].map((name) => ({ name, path: join(ROOT, name) }));
const SPEC = { vocabSize: 259, dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 };

/**
 * Every training stage's settings. `seedCheckpoint` and `mixedDir` are only known once the seed
 * has trained and the experts are mixed; the paths are placeholders until then.
 */
export function e2eStages(
  o: E2eOptions,
  work: string,
  inputs: { seedCheckpoint: string; mixedDir: string },
): {
  seed: TrainStageSettings;
  experts: TrainStageSettings[];
  finetune: TrainStageSettings;
  dense: TrainStageSettings;
} {
  const stage = (
    over: Partial<TrainStageSettings> & Pick<TrainStageSettings, 'stage' | 'out' | 'steps' | 'learningRate'>,
  ): TrainStageSettings => ({
    data: DOMAINS,
    tokens: join(work, 'tokens'),
    batchSize: 8,
    warmupSteps: Math.max(1, Math.round(over.steps / 10)),
    minLrRatio: 0.1,
    weightDecay: 0.1,
    gradClip: 1,
    checkpointEvery: 0,
    seed: 1,
    freezeExperts: false,
    dtype: 'F32',
    logEvery: 50,
    ...over,
  });
  return {
    seed: stage({
      stage: 'seed',
      out: join(work, 'seed'),
      steps: o.seedSteps,
      spec: SPEC,
      learningRate: 3e-3,
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
      seed: 3,
    }),
    // Dense baseline: the seed trained further on every domain for the steps that spend the FLOPs of
    // the experts + finetune, as the operator's spec.baselines dense does (src/api/compute.ts).
    dense: stage({
      stage: 'expert',
      input: inputs.seedCheckpoint,
      out: join(work, 'dense'),
      steps: denseSteps(o),
      learningRate: o.expertLr,
      seed: 4,
    }),
  };
}

/** The dense baseline's steps: the operator's budget for this script's run, as a BTXRun spec would say it. */
export function denseSteps(o: E2eOptions): number {
  const spec = applyDefaults({
    storage: { persistentVolumeClaim: { claimName: 'unused' } },
    model: SPEC,
    seed: { checkpoint: '/btx/seed' },
    domains: DOMAINS.map((d) => ({ name: d.name, data: `/btx/${d.name}` })),
    expert: { steps: o.expertSteps, batchSize: 8 },
    mix: { includeSeedAsExpert: o.generalist, router: { type: o.router, k: 2 } },
    finetune: { steps: o.finetuneSteps, batchSize: 8 },
    baselines: ['dense'],
  });
  const steps = baselineSteps(spec, 'dense');
  if (steps === undefined) throw new Error('no dense budget');
  return steps;
}

const timings: [string, number][] = [];
async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await f();
  timings.push([name, (performance.now() - t0) / 1000]);
  return result;
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
  const backend = await initBackend();
  const seed = await timed('seed', () =>
    runTrainStage(e2eStages(o, work, { seedCheckpoint: '', mixedDir }).seed),
  );
  const stages = e2eStages(o, work, { seedCheckpoint: seed.checkpoint!, mixedDir });
  const experts: { name: string; dir: string }[] = [];
  for (const [i, d] of DOMAINS.entries()) {
    const r = await timed(`expert ${d.name}`, () => runTrainStage(stages.experts[i]!));
    experts.push({ name: d.name, dir: r.checkpoint! });
  }
  await timed('mix', () =>
    mixExperts({
      experts,
      ...(o.generalist ? { generalist: { dir: seed.checkpoint!, name: 'generalist' } } : {}),
      out: mixedDir,
      router: o.router,
      topK: 2,
    }),
  );
  const btx = await timed('finetune', () => runTrainStage(stages.finetune));
  const dense = await timed('dense baseline', () => runTrainStage(stages.dense));
  const report = await timed('eval', () =>
    runEval({
      checkpoints: [
        { name: 'seed', dir: seed.checkpoint! },
        ...experts.map((e) => ({ name: `expert:${e.name}`, dir: e.dir })),
        { name: 'dense baseline', dir: dense.checkpoint! },
        { name: 'mixed (no ft)', dir: mixedDir },
        { name: 'BTX', dir: btx.checkpoint! },
      ],
      data: DOMAINS,
      tokens: join(work, 'tokens'),
      batches: o.evalBatches,
      batchSize: 8,
    }),
  );

  const models = [...new Set(report.results.map((r) => r.model))];
  const cell = (m: string, d: string) => report.results.find((r) => r.model === m && r.domain === d)!;
  const lines = [
    `BTX end to end (backend ${backend}, ${work}): seed ${o.seedSteps} steps, experts ${o.expertSteps} each at LR ${o.expertLr}, finetune ${o.finetuneSteps} at LR ${o.finetuneLr}, dense baseline ${stages.dense.steps} at LR ${o.expertLr}`,
    `held-out loss (perplexity), ${report.tokensPerDomain} tokens per domain`,
    `${'model'.padEnd(16)}${DOMAINS.map((d) => d.name.padStart(18)).join('')}${'mean'.padStart(10)}`,
    ...models.map(
      (m) =>
        `${m.padEnd(16)}${DOMAINS.map((d) => `${cell(m, d.name).loss.toFixed(3)} (${cell(m, d.name).perplexity.toFixed(2)})`.padStart(18)).join('')}${(DOMAINS.reduce((a, d) => a + cell(m, d.name).loss, 0) / DOMAINS.length).toFixed(3).padStart(10)}`,
    ),
    '',
    "BTX routing: share of each domain's token slots per expert (mean over layers)",
    ...report.routing
      .filter((r) => r.model === 'BTX' && r.layer === -1)
      .map(
        (r) =>
          `  ${r.domain.padEnd(8)} ${r.experts.map((e, i) => `${e} ${r.shares[i]!.toFixed(2)}`).join('  ')}`,
      ),
    '',
    'checks:',
    ...DOMAINS.map((d) => {
      const b = cell('BTX', d.name).loss;
      const s = cell('seed', d.name).loss;
      const e = cell(`expert:${d.name}`, d.name).loss;
      return `  ${d.name}: BTX ${b < s ? 'beats' : 'DOES NOT beat'} seed (${b.toFixed(3)} vs ${s.toFixed(3)}); BTX - expert on own domain = ${(b - e).toFixed(3)}`;
    }),
    '',
    `seconds: ${timings.map(([n, s]) => `${n} ${s.toFixed(1)}`).join(', ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
