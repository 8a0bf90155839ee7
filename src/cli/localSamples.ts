// What `btx local` shows after the results table: one short sample from the seed, each expert and
// the BTX model, all continuing the same prompt with the same seed, so the rows differ only by the
// model (and a re-run prints the same text). The prompt is a document boundary (the trainer joins
// documents with a blank line), so each model writes the start of the kind of document it learned.
// TensorFlow is imported only when sampling, so `btx local` does not load it before the run ends.
import type { BTXRun } from '../api/types.js';

export const SAMPLE_PROMPT = '\n\n';
export const SAMPLE_SETTINGS = { maxTokens: 40, temperature: 0.8, topP: 0.95, seed: 1 } as const;

export interface SampleTarget {
  model: string;
  /** Host path of the checkpoint folder. */
  dir: string;
}

export interface ModelSample {
  model: string;
  text?: string;
  /** Why this model could not be sampled. */
  error?: string;
}

/** The models of the results table (seed, experts in domain order, btx, baselines) that have a checkpoint. */
export function sampleTargets(run: BTXRun, toHost: (containerPath: string) => string): SampleTarget[] {
  const s = run.status ?? {};
  const byName = new Map((s.experts ?? []).map((e) => [e.name, e.checkpoint]));
  const entries: [string, string | undefined][] = [
    ['seed', s.seed?.checkpoint ?? run.spec.seed?.checkpoint],
    ...(run.spec.domains ?? []).map((d): [string, string | undefined] => [d.name, byName.get(d.name)]),
    // The evaluated BTX model: the finetuned one, or the mixed one when finetuning is skipped.
    ['btx', s.finetune?.checkpoint ?? s.mix?.checkpoint],
    // The trained baselines (spec.baselines), when the run has them; btm is an ensemble, not a checkpoint.
    ['dense', s.dense?.checkpoint],
    ['sparseUpcycling', s.sparseUpcycling?.checkpoint],
  ];
  return entries
    .filter((e): e is [string, string] => typeof e[1] === 'string')
    .map(([model, dir]) => ({ model, dir: toHost(dir) }));
}

/** One sample per target, with SAMPLE_SETTINGS; a model that fails gets its reason instead. */
export async function sampleModels(targets: SampleTarget[]): Promise<ModelSample[]> {
  const [{ initBackend }, generation, { checkpointTokenizer }] = await Promise.all([
    import('../trainer/backend.js'),
    import('../trainer/generate.js'),
    import('./checkpointTokenizer.js'),
  ]);
  try {
    await initBackend();
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    return targets.map(({ model }) => ({ model, error }));
  }
  const samples: ModelSample[] = [];
  for (const { model, dir } of targets) {
    try {
      const lm = await generation.loadLanguageModel(dir);
      try {
        const tokenizer = await checkpointTokenizer(lm);
        const { text } = await generation.generateText(lm, tokenizer, SAMPLE_PROMPT, SAMPLE_SETTINGS);
        samples.push({ model, text });
      } finally {
        generation.disposeLanguageModel(lm);
      }
    } catch (err) {
      samples.push({ model, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return samples;
}

/** A heading and one line per model: the sample as a quoted string (newlines shown as \n). */
export function renderSamples(samples: ModelSample[]): string[] {
  if (samples.length === 0) return [];
  const s = SAMPLE_SETTINGS;
  const width = Math.max(...samples.map((x) => x.model.length));
  return [
    `Samples (up to ${s.maxTokens} tokens after ${JSON.stringify(SAMPLE_PROMPT)}, temperature ${s.temperature}, top-p ${s.topP}, seed ${s.seed}):`,
    ...samples.map(
      (x) =>
        `  ${x.model.padEnd(width)}  ${x.text !== undefined ? JSON.stringify(x.text) : `(no sample: ${x.error})`}`,
    ),
  ];
}
