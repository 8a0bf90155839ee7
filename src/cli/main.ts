// The `btx` command: one subcommand per file in this folder, loaded on demand so that
// `btx operator` never loads TensorFlow and `btx train` never loads the control plane.
import { log, errorFields } from '../util/log.js';

type Command = { run(argv: string[]): Promise<number> };

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  operator: { summary: 'run the BTXRun operator against a cluster', load: () => import('./operator.js') },
  cluster: {
    summary: 'run the embedded control plane (API server, kubelet, Job controller)',
    load: () => import('./cluster.js'),
  },
  local: {
    summary: 'run a whole BTX pipeline on this machine (control plane + operator + trainer)',
    load: () => import('./local.js'),
  },
  train: { summary: 'run a training stage: seed | expert | finetune', load: () => import('./train.js') },
  mix: {
    summary: 'mix dense expert checkpoints into one Mixture-of-Experts checkpoint',
    load: () => import('./mix.js'),
  },
  eval: {
    summary: 'held-out loss, perplexity and routing of checkpoints per domain',
    load: () => import('./eval.js'),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: btx <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'btx <command> --help' for a command's flags.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`btx: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await command.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // A clear reason, never a stack trace, for the user; the log line keeps the details.
    log.error('command failed', errorFields(err));
    process.stderr.write(`btx: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
