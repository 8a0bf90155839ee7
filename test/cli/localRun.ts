// Runs `btx local` as a user does (node bin/btx.js local ...; under npm test the CLI compiled for the
// run, whose pods then run it too: test/support/btx.ts) and collects its output.
import { spawn, type ChildProcess } from 'node:child_process';
import { btxEntrypoint } from '../support/btx.js';
import { repoRoot } from '../support/tools.js';

export interface LocalResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LocalProcess {
  child: ChildProcess;
  /** Resolves once stdout contains `text` (rejects after timeoutMs or if the process ends first). */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
  done: Promise<LocalResult>;
}

export function startLocal(args: string[], timeoutMs: number): LocalProcess {
  const [node, ...entry] = btxEntrypoint();
  const child = spawn(node!, [...entry, 'local', ...args], {
    cwd: repoRoot,
    env: { ...process.env, BTX_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const w of waiters) w();
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<LocalResult>((resolveDone) => {
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      for (const w of waiters) w();
      resolveDone({ code, signal, stdout, stderr });
    });
  });
  const waitForOutput = (text: string, waitMs: number) =>
    new Promise<void>((resolveWait, reject) => {
      const check = () => {
        if (stdout.includes(text)) finish(undefined);
        else if (child.exitCode !== null || child.signalCode !== null) {
          finish(new Error(`btx local ended before printing ${JSON.stringify(text)}:\n${stdout}\n${stderr}`));
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`no ${JSON.stringify(text)} within ${waitMs} ms:\n${stdout}\n${stderr}`)),
        waitMs,
      );
      const finish = (err: Error | undefined) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (err) reject(err);
        else resolveWait();
      };
      waiters.add(check);
      check();
    });
  return { child, waitForOutput, done };
}
