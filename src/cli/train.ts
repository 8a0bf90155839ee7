// `btx train seed|expert|finetune`: one training stage, from flags or the stage's BTX_* env.
import { initBackend } from '../trainer/backend.js';
import { Flags, helpText, parseFlags, TRAIN_FLAGS } from '../trainer/options.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';
import { trainSettingsFromFlags } from '../trainer/trainSettings.js';
import type { TrainStage } from '../trainer/trainStage.js';
import { runTrainStage } from '../trainer/trainStage.js';

const STAGES: TrainStage[] = ['seed', 'expert', 'finetune'];
const USAGE = `usage: btx train seed|expert|finetune [flags]

  seed      pretrain a dense Llama-style model from random init on general data
  expert    branch from the seed checkpoint (--input) and train on one domain
  finetune  train the mixed MoE checkpoint (--input) on all domains`;

export async function run(argv: string[]): Promise<number> {
  const [stage, ...rest] = argv;
  if (stage === undefined || stage === '--help' || stage === '-h') {
    process.stdout.write(helpText(USAGE, TRAIN_FLAGS));
    return stage === undefined ? 2 : 0;
  }
  if (!STAGES.includes(stage as TrainStage)) {
    process.stderr.write(`btx train: unknown stage '${stage}' (seed, expert or finetune)\n`);
    return 2;
  }
  const parsed = parseFlags(rest, TRAIN_FLAGS, `btx train ${stage}`);
  if (parsed === 'help') {
    process.stdout.write(helpText(USAGE, TRAIN_FLAGS));
    return 0;
  }
  const flags = new Flags(parsed, `btx train ${stage}`);
  const settings = trainSettingsFromFlags(stage as TrainStage, flags);
  await initBackend(flags.string('backend'));
  const message = await runTrainStage(settings);
  if (runningAsStage()) await writeTerminationMessage(message);
  process.stdout.write(`${JSON.stringify(message)}\n`);
  return 0;
}
