// `btx train <stage>` flags/env -> TrainStageSettings.
import { ENV } from '../api/stageContract.js';
import type { ModelSpec } from '../api/stageContract.js';
import type { DType } from './checkpoint.js';
import { parseNamedList } from './data.js';
import type { RouterType } from './hfConfig.js';
import { ROUTER_TYPES } from './moe.js';
import type { Flags } from './options.js';
import type { TrainStage, TrainStageSettings } from './trainStage.js';

const DTYPES: Record<string, DType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

function parseSpec(raw: string): ModelSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`--model-config is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const spec = parsed as Partial<ModelSpec> | null;
  for (const key of ['dModel', 'layers', 'heads', 'ffnHidden', 'seqLen'] as const) {
    const v = spec?.[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new Error(`--model-config: ${key} must be a positive integer`);
    }
  }
  return { vocabSize: 0, ...spec } as ModelSpec;
}

export function trainSettingsFromFlags(stage: TrainStage, f: Flags): TrainStageSettings {
  const steps = f.number('steps', 200, { integer: true, min: 1 });
  const dataRaw = f.required('data', ENV.data);
  const data =
    stage === 'finetune'
      ? parseNamedList(dataRaw).map((d) => ({ name: d.name, path: d.value }))
      : [{ name: f.string('domain') ?? (stage === 'seed' ? 'general' : 'domain'), path: dataRaw }];
  let weights: number[] | undefined;
  const weightsRaw = f.string('data-weights');
  if (weightsRaw) {
    const byName = new Map(parseNamedList(weightsRaw).map((w) => [w.name, Number(w.value)]));
    weights = data.map((d) => {
      const w = byName.get(d.name) ?? 1;
      if (!Number.isFinite(w) || w < 0) throw new Error(`--data-weights: bad weight for ${d.name}`);
      return w;
    });
  }
  const router = f.string('router');
  if (router !== undefined && !ROUTER_TYPES.includes(router as RouterType)) {
    throw new Error(`--router must be one of ${ROUTER_TYPES.join(', ')}, got '${router}'`);
  }
  const dtypeRaw = (f.string('dtype') ?? 'f32').toLowerCase();
  const dtype = DTYPES[dtypeRaw];
  if (!dtype) throw new Error(`--dtype must be f32, f16 or bf16, got '${dtypeRaw}'`);
  const specRaw = f.string('model-config');
  const input = f.string('input');
  return {
    stage,
    data,
    ...(weights ? { weights } : {}),
    ...(input ? { input } : {}),
    out: f.required('out', ENV.output),
    steps,
    batchSize: f.number('batch-size', 8, { integer: true, min: 1 }),
    learningRate: f.number('learning-rate', stage === 'seed' ? 3e-3 : 1e-3, { min: 0 }),
    warmupSteps: f.number('warmup-steps', Math.max(1, Math.round(steps / 10)), { integer: true, min: 0 }),
    minLrRatio: f.number('min-lr-ratio', 0.1, { min: 0 }),
    weightDecay: f.number('weight-decay', 0.1, { min: 0 }),
    gradClip: f.number('grad-clip', 1, { min: 0 }),
    checkpointEvery: f.number('checkpoint-every', 50, { integer: true, min: 0 }),
    seed: f.number('seed', 1, { integer: true }),
    ...(specRaw ? { spec: parseSpec(specRaw) } : {}),
    ...(f.has('seq-len') ? { seqLen: f.number('seq-len', 0, { integer: true, min: 1 }) } : {}),
    ...(router ? { router: router as RouterType } : {}),
    ...(f.has('k') ? { k: f.number('k', 2, { integer: true, min: 1 }) } : {}),
    ...(f.has('load-balancing-coef')
      ? { loadBalancingCoef: f.number('load-balancing-coef', 0.01, { min: 0 }) }
      : {}),
    freezeExperts: f.boolean('freeze-experts', false),
    dtype,
    logEvery: f.number('log-every', 1, { integer: true, min: 1 }),
  };
}
