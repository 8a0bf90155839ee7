// The one flag parser of every `btx` subcommand, on node:util parseArgs. A command declares its flags
// once (name, value placeholder, BTX_* variable, help); from that come the parsing, the environment
// fallback (a flag wins over its variable; a stage pod sets only the variables, see the stage
// contract) and the `--help` text, laid out the same for every command. Every mistake of the user's
// is a UsageError: `btx` prints it as one plain line and exits 2 (main.ts), with no log line or stack.
import { parseArgs } from 'node:util';

/** Something the user typed (or set in the environment) is wrong: one line, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  /** The long name without dashes: `steps` for `--steps`. */
  name: string;
  /** The value's placeholder in the help (`N`, `DIR`); a flag without one is a switch. */
  value?: string;
  /** One-letter alias (`-f`). */
  short?: string;
  /** The environment variable that fills the flag in when it is not given. */
  env?: string;
  /** May be given several times; its variable holds a comma-separated list. */
  repeatable?: boolean;
  /** One line (or several, joined by \n) for the help. */
  help: string;
}

export interface CommandSpec {
  /** `btx train` */
  name: string;
  /** What follows `usage: ` in the help's first line. */
  usage: string;
  /** Paragraph(s) between the usage line and the flags. */
  about?: string;
  flags: readonly FlagSpec[];
  /** Text after the flags (exit statuses, files written). */
  footer?: string;
  /** Takes positional arguments (only `btx train`'s stage); the command checks them. */
  positionals?: boolean;
}

const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', help: 'this help' };

/** The help text, the same layout for every command: usage, about, one row per flag, footer. */
export function helpText(command: CommandSpec): string {
  const specs = [...command.flags, HELP_FLAG];
  const left = (s: FlagSpec) =>
    `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ` ${s.value}` : ''}${s.repeatable ? ' ...' : ''}`;
  const leftWidth = Math.max(...specs.map((s) => left(s).length));
  const withEnv = specs.some((s) => s.env);
  const envWidth = Math.max(0, ...specs.map((s) => s.env?.length ?? 0));
  const indent = 2 + leftWidth + 2 + (withEnv ? envWidth + 2 : 0);
  const rows = specs.map((s) => {
    const env = withEnv ? `${(s.env ?? '').padEnd(envWidth)}  ` : '';
    const help = s.help.split('\n').join(`\n${' '.repeat(indent)}`);
    return `  ${left(s).padEnd(leftWidth)}  ${env}${help}`.trimEnd();
  });
  const parts = [`usage: ${command.usage}`];
  if (command.about) parts.push(command.about.trimEnd());
  parts.push(
    `${withEnv ? 'flags (a flag wins over its environment variable):' : 'flags:'}\n${rows.join('\n')}`,
  );
  if (command.footer) parts.push(command.footer.trimEnd());
  return `${parts.join('\n\n')}\n`;
}

/** parseArgs' messages are written for programmers; these name the flag the way the help does. */
function usageMessage(err: unknown, command: CommandSpec): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /'(-[^' ]+)/.exec(message)?.[1];
  const see = `(see ${command.name} --help)`;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag '${option}' ${see}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument '${/'([^']*)'/.exec(message)?.[1]}' ${see}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `${option} takes no value ${see}`;
      return `${option} needs a value ${see}`;
    default:
      return message;
  }
}

/**
 * Flags from argv, then each flag's variable from `env` for what argv left out (empty variables
 * count as unset). 'help' when -h/--help was given. Throws UsageError.
 */
export function parseFlags(
  command: CommandSpec,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Flags | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const s of [...command.flags, HELP_FLAG]) {
    options[s.name] = {
      type: s.value ? 'string' : 'boolean',
      ...(s.short ? { short: s.short } : {}),
      ...(s.repeatable ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: command.positionals ?? false,
    });
  } catch (err) {
    throw new UsageError(usageMessage(err, command));
  }
  if (parsed.values.help) return 'help';
  const values = new Map<string, string[]>();
  for (const s of command.flags) {
    const given = parsed.values[s.name];
    if (given !== undefined) {
      const list = (Array.isArray(given) ? given : [given]).map(String);
      if (s.value && list.some((v) => v === '')) throw new UsageError(`--${s.name} needs a value`);
      values.set(s.name, list);
      continue;
    }
    const fromEnv = s.env === undefined ? undefined : env[s.env];
    if (fromEnv === undefined || fromEnv === '') continue;
    values.set(
      s.name,
      s.repeatable
        ? fromEnv
            .split(',')
            .map((v) => v.trim())
            .filter((v) => v !== '')
        : [fromEnv],
    );
  }
  return new Flags(command, values, parsed.positionals);
}

export interface NumberRule {
  integer?: boolean;
  min?: number;
  max?: number;
}

/** Typed reads of parsed flags; every bad value is a UsageError naming the flag. */
export class Flags {
  constructor(
    private readonly command: CommandSpec,
    private readonly values: Map<string, string[]>,
    readonly positionals: string[] = [],
  ) {}

  private spec(name: string): FlagSpec {
    const spec = this.command.flags.find((s) => s.name === name);
    if (!spec) throw new Error(`${this.command.name} declares no flag --${name}`);
    return spec;
  }

  has(name: string): boolean {
    this.spec(name);
    return this.values.has(name);
  }

  string(name: string): string | undefined {
    this.spec(name);
    return this.values.get(name)?.[0];
  }

  list(name: string): string[] {
    this.spec(name);
    return this.values.get(name) ?? [];
  }

  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) {
      const env = this.spec(name).env;
      throw new UsageError(`--${name}${env ? ` (or ${env})` : ''} is required`);
    }
    return v;
  }

  /** A repeatable flag given at least once (or its variable set). */
  requiredList(name: string): string[] {
    if (this.list(name).length === 0) this.required(name);
    return this.list(name);
  }

  /** The flag as a number, or undefined when neither it nor its variable is set. */
  optionalNumber(name: string, rule: NumberRule = {}): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    const bad =
      raw.trim() === '' ||
      !Number.isFinite(v) ||
      (rule.integer && !Number.isInteger(v)) ||
      v < (rule.min ?? -Infinity) ||
      v > (rule.max ?? Infinity);
    if (bad) {
      const bounds = [
        rule.min !== undefined ? `>= ${rule.min}` : '',
        rule.max !== undefined ? `<= ${rule.max}` : '',
      ].filter(Boolean);
      throw new UsageError(
        `--${name} must be ${rule.integer ? 'an integer' : 'a number'}${bounds.length ? ` ${bounds.join(' and ')}` : ''}, got '${raw}'`,
      );
    }
    return v;
  }

  number(name: string, fallback: number, rule: NumberRule = {}): number {
    return this.optionalNumber(name, rule) ?? fallback;
  }

  /** A switch (`--x`), or its variable as true|false|1|0|yes|no. */
  boolean(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if (['true', '1', 'yes'].includes(raw.toLowerCase())) return true;
    if (['false', '0', 'no'].includes(raw.toLowerCase())) return false;
    throw new UsageError(`--${name} must be true or false, got '${raw}'`);
  }

  /** One of `allowed` (matched without regard to case, returned as spelled in `allowed`). */
  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const match = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
    if (match === undefined)
      throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
    return match;
  }

  /** NAME=VALUE items of a repeatable flag (e.g. `--data math=/btx/data/math`). */
  named(name: string): { name: string; value: string }[] {
    return this.requiredList(name).map((item) => {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new UsageError(`--${name} '${item}' must be NAME=VALUE`);
      return { name: item.slice(0, eq), value: item.slice(eq + 1) };
    });
  }
}
