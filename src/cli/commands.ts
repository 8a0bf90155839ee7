// The `btx` subcommands and how one is run: each lives in its own file, loaded on demand so that
// `btx operator` never loads TensorFlow and `btx train` never loads the control plane. Each exports
// its flags (a CommandSpec) and a run(flags); parsing, --help and usage errors are done here, once:
// a UsageError from flags, environment or later checks (the manifest of `btx local`) becomes one
// plain line on stderr and exit status 2; anything else is the caller's to report (main.ts).
import { type CommandSpec, type Flags, helpText, parseFlags, UsageError } from './flags.js';

type Command = { command: CommandSpec; run(flags: Flags): Promise<number> };

/** Where help and usage errors go (a test passes its own). */
export interface CommandIO {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
  /** Words that must follow the command (`btx train seed`). */
  subcommands?: readonly string[];
}

export const COMMANDS: Record<string, CommandEntry> = {
  operator: { summary: 'run the BTXRun operator against a cluster', load: () => import('./operator.js') },
  cluster: {
    summary: 'run the embedded control plane (API server, kubelet, Job controller)',
    load: () => import('./cluster.js'),
  },
  local: {
    summary: 'run a whole BTX pipeline on this machine (control plane + operator + trainer)',
    load: () => import('./local.js'),
  },
  tokenize: {
    summary: "turn domains into token shards with a checkpoint's tokenizer (once; reused while current)",
    load: () => import('./tokenize.js'),
  },
  train: {
    summary: 'run a training stage: seed | expert | finetune',
    load: () => import('./train.js'),
    subcommands: ['seed', 'expert', 'finetune'],
  },
  mix: {
    summary: 'mix dense expert checkpoints into one Mixture-of-Experts checkpoint',
    load: () => import('./mix.js'),
  },
  eval: {
    summary: 'held-out loss, perplexity, bits per byte and routing of checkpoints per domain',
    load: () => import('./eval.js'),
  },
  generate: {
    summary: 'sample a continuation of a prompt from a checkpoint (dense or MoE)',
    load: () => import('./generate.js'),
  },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: btx <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'btx <command> --help' for a command's flags.\n`;
}

/** `btx ...argv` up to its exit status; errors other than UsageError are thrown. */
export async function runBtx(argv: string[], io: CommandIO = process): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr.write(`btx: unknown command '${name}' (see btx --help)\n`);
    return 2;
  }
  const { command, run } = await entry.load();
  try {
    const flags = parseFlags(command, rest);
    if (flags === 'help') {
      io.stdout.write(helpText(command));
      return 0;
    }
    return await run(flags);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`btx ${name}: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
    return 2;
  }
}
