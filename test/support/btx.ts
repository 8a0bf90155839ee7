// Runs `btx ...args` and collects what it printed: as a child process (node bin/btx.js, as a user or the
// embedded kubelet runs it), or in this process through runBtx (no process start: ~0.1 s instead of
// seconds on a loaded machine) for help and usage errors. `btxEntrypoint()` is the argv every test
// starts btx with (child processes, and the stage pods of a test's control plane).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { runBtx } from '../../src/cli/commands.js';
import { repoRoot } from './tools.js';

/** The launcher, as users and the images run it: dist/ when built, else src/ through tsx. */
export const LAUNCHER = [process.execPath, join(repoRoot, 'bin', 'btx.js')];

/**
 * argv that starts the btx CLI: under `npm test`, the copy of src/ scripts/run-tests.mjs compiled
 * to JS for this run (BTX_TEST_CLI; a btx process starts in ~0.4 s of CPU less than through tsx, and
 * the suite starts well over a hundred), else the launcher. Both run the same sources of this checkout.
 */
export function btxEntrypoint(): string[] {
  const compiled = process.env.BTX_TEST_CLI;
  return compiled ? [process.execPath, compiled] : LAUNCHER;
}

export interface BtxResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `env` is the child's whole environment apart from PATH (so a test's own BTX_* variables never
 * leak in); a child still running after timeoutMs is killed and the promise rejects. `entrypoint`:
 * LAUNCHER for a test of bin/btx.js itself.
 */
export function runBtxProcess(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
  entrypoint: string[] = btxEntrypoint(),
): Promise<BtxResult> {
  return new Promise((resolve, reject) => {
    const [node, ...entry] = entrypoint;
    const child = spawn(node!, [...entry, ...args], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`btx ${args.join(' ')} timed out after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `btx ...args` in this process: its exit status, and the help or usage error it printed. */
export async function runBtxInProcess(args: string[]): Promise<BtxResult> {
  let stdout = '';
  let stderr = '';
  const code = await runBtx(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}
