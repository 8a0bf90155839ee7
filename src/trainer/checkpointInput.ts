// Where a stage's input checkpoint is: the folder itself (it has config.json: a mixed model,
// a Hugging Face download) or the newest complete step-N folder inside it (a seed's output).
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, CONFIG_FILE, listCheckpoints, loadCheckpoint } from './checkpoint.js';
import type { LoadedCheckpoint } from './checkpoint.js';
import { errorFields, log } from '../util/log.js';

/** Load the model of `dir` (a host path) without optimizer state. */
export async function loadModelCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const direct = await access(join(dir, CONFIG_FILE)).then(
    () => true,
    () => false,
  );
  if (direct) return loadCheckpoint(dir, { extraFiles: [] });
  for (const { dir: stepDir, step } of await listCheckpoints(dir)) {
    try {
      return await loadCheckpoint(stepDir, { extraFiles: [] });
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      log.warn('checkpoint corrupt, falling back to the previous one', {
        dir: stepDir,
        step,
        ...errorFields(err),
      });
    }
  }
  throw new Error(`no checkpoint in ${dir} (neither ${CONFIG_FILE} nor a complete step-N folder)`);
}
