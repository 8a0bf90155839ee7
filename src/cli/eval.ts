// `btx eval --checkpoint NAME=DIR [...] --data DOMAIN=PATH [...] --out results.json` (flags: trainArgs.ts).
import { initBackend } from '../trainer/backend.js';
import { evalTerminationMessage, runEval, writeResults } from '../trainer/evaluate.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';
import type { Flags } from './flags.js';
import { evalSettingsFromFlags } from './trainArgs.js';

export { EVAL_COMMAND as command } from './trainArgs.js';

export async function run(f: Flags): Promise<number> {
  const settings = evalSettingsFromFlags(f);
  await initBackend(f.string('backend'));
  const report = await runEval(settings);
  const file = await writeResults(settings.out, report);
  const message = evalTerminationMessage(report, file);
  if (runningAsStage()) await writeTerminationMessage(message);
  for (const r of report.results) {
    process.stdout.write(
      `${r.model.padEnd(16)} ${r.domain.padEnd(12)} loss ${r.loss.toFixed(4)}  ppl ${r.perplexity.toFixed(3)}  bpb ${(r.bitsPerByte ?? NaN).toFixed(4)}\n`,
    );
  }
  process.stdout.write(`results: ${file}\n`);
  return 0;
}
