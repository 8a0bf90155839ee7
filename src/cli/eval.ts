// `btx eval --checkpoint NAME=DIR [...] --data DOMAIN=PATH [...] --out results.json`.
import { initBackend } from '../trainer/backend.js';
import { evalTerminationMessage, runEval, writeResults } from '../trainer/evaluate.js';
import { EVAL_FLAGS, Flags, helpText, parseFlags } from '../trainer/options.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';

const USAGE = `usage: btx eval --checkpoint NAME=DIR [...] --data DOMAIN=PATH [...] --out results.json [--batches N]

Held-out loss and perplexity of each checkpoint on each domain (the same windows for every model),
and for MoE checkpoints the share of each domain's tokens routed to each expert.`;

/** NAME=VALUE items (flags repeat; the variables are comma-separated). */
function named(list: string[], what: string): { name: string; value: string }[] {
  return list.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`btx eval: ${what} '${item}' must be NAME=PATH`);
    return { name: item.slice(0, eq), value: item.slice(eq + 1) };
  });
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, EVAL_FLAGS, 'btx eval');
  if (parsed === 'help') {
    process.stdout.write(helpText(USAGE, EVAL_FLAGS));
    return 0;
  }
  const f = new Flags(parsed, 'btx eval');
  const settings = {
    checkpoints: named(f.list('checkpoint'), '--checkpoint').map((c) => ({ name: c.name, dir: c.value })),
    data: named(f.list('data'), '--data').map((d) => ({ name: d.name, path: d.value })),
    out: f.required('out', 'BTX_OUTPUT'),
    batches: f.number('batches', 4, { integer: true, min: 1 }),
    batchSize: f.number('batch-size', 8, { integer: true, min: 1 }),
    ...(f.has('seq-len') ? { seqLen: f.number('seq-len', 0, { integer: true, min: 1 }) } : {}),
  };
  await initBackend(f.string('backend'));
  const report = await runEval(settings);
  const file = await writeResults(settings.out, report);
  const message = evalTerminationMessage(report, file);
  if (runningAsStage()) await writeTerminationMessage(message);
  for (const r of report.results) {
    process.stdout.write(
      `${r.model.padEnd(16)} ${r.domain.padEnd(12)} loss ${r.loss.toFixed(4)}  ppl ${r.perplexity.toFixed(3)}\n`,
    );
  }
  process.stdout.write(`results: ${file}\n`);
  return 0;
}
