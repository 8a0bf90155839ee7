// `btx generate`: sample a continuation of a prompt from any checkpoint (dense or mixed), to see
// what a model does. Text goes to stdout (prompt + continuation); a summary line goes to stderr.
import { initBackend } from '../trainer/backend.js';
import {
  disposeLanguageModel,
  generateText,
  loadLanguageModel,
  type SamplingOptions,
} from '../trainer/generate.js';
import { hostPath } from '../util/containerPaths.js';
import { checkpointTokenizer } from './checkpointTokenizer.js';
import { type CommandSpec, type Flags, UsageError } from './flags.js';
import { BACKEND_FLAG } from './sharedFlags.js';

export const command: CommandSpec = {
  name: 'btx generate',
  usage:
    'btx generate --checkpoint DIR --prompt TEXT [--max-tokens N] [--temperature T] [--top-p P] [--seed S]',
  about: `Samples a continuation of TEXT from a checkpoint (dense Llama or mixed Mixtral), decoded with the
checkpoint's tokenizer, and prints the prompt and the continuation.`,
  flags: [
    {
      name: 'checkpoint',
      value: 'DIR',
      help: 'a checkpoint folder, or a training output folder (its newest complete step-N)',
    },
    {
      name: 'prompt',
      value: 'TEXT',
      help: 'the text to continue (cropped to its last max_position_embeddings tokens)',
    },
    {
      name: 'max-tokens',
      value: 'N',
      help: "tokens to generate at most (default 64); the tokenizer's end-of-sequence stops earlier",
    },
    {
      name: 'temperature',
      value: 'T',
      help: 'softmax temperature, >= 0 (default 0.8); 0 is greedy (argmax; the seed is unused)',
    },
    {
      name: 'top-p',
      value: 'P',
      help: 'nucleus sampling: keep the most likely tokens up to probability P, in (0, 1] (default 0.95)',
    },
    {
      name: 'seed',
      value: 'S',
      help: 'seed of the random draws, an integer (default 1): same seed, same text',
    },
    {
      name: 'bos',
      help: "put the tokenizer's beginning-of-sequence token before the prompt (pretrained models\nthat expect it; the byte-level models trained here never saw it)",
    },
    BACKEND_FLAG,
  ],
};

export interface GenerateOptions extends SamplingOptions {
  checkpoint: string;
  prompt: string;
  bos: boolean;
  backend?: string;
}

/** The flags as sampling options; a bad value is a UsageError naming its flag. */
export function generateOptions(f: Flags): GenerateOptions {
  const prompt = f.required('prompt');
  const bos = f.boolean('bos', false);
  const topP = f.number('top-p', 0.95, { min: 0, max: 1 });
  if (topP === 0) throw new UsageError("--top-p must be above 0 (0 keeps no token), got '0'");
  const backend = f.string('backend');
  return {
    checkpoint: f.required('checkpoint'),
    prompt,
    maxTokens: f.number('max-tokens', 64, { integer: true, min: 1 }),
    temperature: f.number('temperature', 0.8, { min: 0 }),
    topP,
    seed: f.number('seed', 1, { integer: true }),
    bos,
    ...(backend !== undefined ? { backend } : {}),
  };
}

export async function run(f: Flags): Promise<number> {
  const opts = generateOptions(f);
  await initBackend(opts.backend);
  const model = await loadLanguageModel(hostPath(opts.checkpoint));
  try {
    const tokenizer = await checkpointTokenizer(model);
    const started = performance.now();
    const result = await generateText(model, tokenizer, opts.prompt, opts);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`${opts.prompt}${result.text}\n`);
    process.stderr.write(
      `btx generate: ${result.ids.length} tokens (${result.stop === 'eos' ? 'stopped at end-of-sequence' : 'max tokens'}) in ${seconds.toFixed(2)} s, ${(result.ids.length / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s, from ${model.dir}\n`,
    );
  } finally {
    disposeLanguageModel(model);
  }
  return 0;
}
