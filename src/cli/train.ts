// `btx train seed|expert|finetune`: one training stage, from flags or the stage's BTX_* env (trainArgs.ts).
import { initBackend } from '../trainer/backend.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';
import type { TrainStage } from '../trainer/trainStage.js';
import { runTrainStage } from '../trainer/trainStage.js';
import { type Flags, UsageError } from './flags.js';
import { TRAIN_STAGES, trainSettingsFromFlags } from './trainArgs.js';

export { TRAIN_COMMAND as command } from './trainArgs.js';

export async function run(flags: Flags): Promise<number> {
  const [stage, ...extra] = flags.positionals;
  if (stage === undefined || !TRAIN_STAGES.includes(stage as TrainStage)) {
    throw new UsageError(
      `${stage === undefined ? 'give a stage' : `unknown stage '${stage}'`}: seed, expert or finetune (see btx train --help)`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}' (see btx train --help)`);
  const settings = trainSettingsFromFlags(stage as TrainStage, flags);
  await initBackend(flags.string('backend'));
  const message = await runTrainStage(settings);
  if (runningAsStage()) await writeTerminationMessage(message);
  process.stdout.write(`${JSON.stringify(message)}\n`);
  return 0;
}
