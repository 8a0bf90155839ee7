// Runs `btx ...args` and collects what it printed: as a child process (node bin/btx.js, as a user or the
// embedded kubelet runs it), or in this process through runBtx (no process start: ~0.1 s instead of
// seconds on a loaded machine) for help and usage errors.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { runBtx } from '../../src/cli/commands.js';
import { repoRoot } from './tools.js';

export interface BtxResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `env` is the child's whole environment apart from PATH (so a test's own BTX_* variables never
 * leak in); a child still running after timeoutMs is killed and the promise rejects.
 */
export function runBtxProcess(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<BtxResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'btx.js'), ...args], {
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
