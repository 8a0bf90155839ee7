// A small Dockerfile reader for the ship tests: instructions (continuations joined, comments dropped),
// global ARG defaults, and stages with their base image resolved.

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  /** The FROM argument with global ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (pending !== '' && line.trim().startsWith('#')) return; // comments inside a continuation
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m) instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
  });

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`unreadable FROM at line ${ins.line}: ${ins.args}`);
      const from = m[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_all, a?: string, b?: string) => {
        const key = (a ?? b)!;
        const value = globalArgs[key];
        if (value === undefined)
          throw new Error(`FROM at line ${ins.line} uses ARG ${key} without a default`);
        return value;
      });
      stages.push({ name: m[2] ?? String(stages.length), from, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`${ins.keyword} before the first FROM at line ${ins.line}`);
      const m = /^(\w+)(?:=(.*))?$/.exec(ins.args);
      if (m && m[2] !== undefined) globalArgs[m[1]!] = m[2].replace(/^"(.*)"$/, '$1');
    } else {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** A JSON-form (exec form) argument list, e.g. ENTRYPOINT ["node", "bin/btx.js"]. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) {
    throw new Error(`not an exec-form list: ${args}`);
  }
  return parsed;
}

/** COPY/ADD flags and arguments: `--from=x a b dest` -> {flags: {from: 'x'}, sources: [a, b], dest}. */
export function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const parts = args.split(/\s+/).filter(Boolean);
  const flags: Record<string, string> = {};
  while (parts[0]?.startsWith('--')) {
    const [k, v] = parts.shift()!.slice(2).split('=', 2);
    flags[k!] = v ?? 'true';
  }
  const dest = parts.pop();
  if (dest === undefined || parts.length === 0)
    throw new Error(`COPY needs sources and a destination: ${args}`);
  return { flags, sources: parts, dest };
}
