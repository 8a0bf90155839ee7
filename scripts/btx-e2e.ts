// Branch-Train-MiX end to end on the sample corpora, in one process, printing a table like the
// paper's (held-out loss/perplexity per model and domain) and the BTX model's routing:
//   seed (all domains) -> 3 experts (one domain each) -> mix (+ seed as generalist) -> finetune -> eval,
//   plus a dense baseline: the seed trained on all domains for the same number of extra steps.
//
// Usage: node --import tsx scripts/btx-e2e.ts [--seed-steps N] [--expert-steps N] [--finetune-steps N]
//        [--out DIR] [--router topK] [--no-generalist]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/trainer/backend.js';
import { runEval } from '../src/trainer/evaluate.js';
import type { RouterType } from '../src/trainer/hfConfig.js';
import { mixExperts } from '../src/trainer/mix/mixExperts.js';
import { runTrainStage } from '../src/trainer/trainStage.js';
import type { TrainStageSettings } from '../src/trainer/trainStage.js';

const { values: args } = parseArgs({
  options: {
    'seed-steps': { type: 'string', default: '150' },
    'expert-steps': { type: 'string', default: '100' },
    'finetune-steps': { type: 'string', default: '100' },
    'eval-batches': { type: 'string', default: '6' },
    'expert-lr': { type: 'string', default: '1e-3' },
    'finetune-lr': { type: 'string', default: '2e-3' },
    router: { type: 'string', default: 'topK' },
    'no-generalist': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const seedSteps = Number(args['seed-steps']);
const expertSteps = Number(args['expert-steps']);
const finetuneSteps = Number(args['finetune-steps']);
const root = join(import.meta.dirname, '..', 'data', 'samples');
const work = args.out ?? mkdtempSync(join(tmpdir(), 'btx-e2e-'));
const DOMAINS = ['math', 'code', 'prose'].map((name) => ({ name, path: join(root, name) }));
const SPEC = { vocabSize: 259, dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 };

function stage(
  over: Partial<TrainStageSettings> & Pick<TrainStageSettings, 'stage' | 'out' | 'steps'>,
): TrainStageSettings {
  return {
    data: DOMAINS,
    batchSize: 8,
    learningRate: 2e-3,
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
  };
}

const timings: [string, number][] = [];
async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await f();
  timings.push([name, (performance.now() - t0) / 1000]);
  return result;
}

const backend = await initBackend();
const seed = await timed('seed', () =>
  runTrainStage(
    stage({ stage: 'seed', out: join(work, 'seed'), steps: seedSteps, spec: SPEC, learningRate: 3e-3 }),
  ),
);
const experts: { name: string; dir: string }[] = [];
for (const d of DOMAINS) {
  const r = await timed(`expert ${d.name}`, () =>
    runTrainStage(
      stage({
        stage: 'expert',
        data: [d],
        input: seed.checkpoint!,
        out: join(work, 'experts', d.name),
        steps: expertSteps,
        seed: 2,
      }),
    ),
  );
  experts.push({ name: d.name, dir: r.checkpoint! });
}
const mixedDir = join(work, 'mixed');
await timed('mix', () =>
  mixExperts({
    experts,
    ...(args['no-generalist'] ? {} : { generalist: { dir: seed.checkpoint!, name: 'generalist' } }),
    out: mixedDir,
    router: args.router as RouterType,
    topK: 2,
  }),
);
const btx = await timed('finetune', () =>
  runTrainStage(
    stage({
      stage: 'finetune',
      input: mixedDir,
      out: join(work, 'finetuned'),
      steps: finetuneSteps,
      learningRate: 1e-3,
      seed: 3,
    }),
  ),
);
// Dense baseline: the same total training steps as seed + experts + finetune, all on the mixture.
const dense = await timed('dense baseline', () =>
  runTrainStage(
    stage({
      stage: 'expert',
      input: seed.checkpoint!,
      out: join(work, 'dense'),
      steps: 3 * expertSteps + finetuneSteps,
      seed: 4,
    }),
  ),
);
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
    batches: Number(args['eval-batches']),
    batchSize: 8,
  }),
);

const models = [...new Set(report.results.map((r) => r.model))];
const cell = (m: string, d: string) => report.results.find((r) => r.model === m && r.domain === d)!;
const lines = [
  `BTX end to end (backend ${backend}, ${work}): seed ${seedSteps} steps, experts ${expertSteps} each, finetune ${finetuneSteps}, dense baseline ${3 * expertSteps + finetuneSteps}`,
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
