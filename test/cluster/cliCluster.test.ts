// `btx cluster` as a user runs it: a child process, real kubectl against the kubeconfig it writes,
// SIGTERM stops its pods and exits 0.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { kubectlPath, repoRoot } from '../support/tools.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'btx-cli-cluster-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const btx = join(repoRoot, 'bin', 'btx.js');

test('btx cluster --help lists its flags', async () => {
  const { stdout } = await run(process.execPath, [btx, 'cluster', '--help']);
  for (const flag of ['--kubeconfig', '--port', '--data-dir', '--gpus', '--cpu', '--memory'])
    assert.ok(stdout.includes(flag), flag);
});

test('btx cluster serves kubectl from the kubeconfig it writes, runs pods, and exits 0 on SIGTERM after stopping them', async () => {
  const kubeconfig = join(dir, 'kubeconfig');
  const dataDir = join(dir, 'data');
  const child = spawn(
    process.execPath,
    [btx, 'cluster', '--kubeconfig', kubeconfig, '--port', '0', '--data-dir', dataDir, '--gpus', '1'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BTX_LOG_LEVEL: 'warn' },
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const deadline = Date.now() + 30_000;
    while (!out.includes('kubeconfig:')) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `btx cluster did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const kubectl = (...args: string[]) => run(kubectlPath(), ['--kubeconfig', kubeconfig, ...args]);
    const ns = await kubectl('get', 'ns');
    assert.match(ns.stdout, /^default\s+Active/m);
    const nodes = await kubectl(
      'get',
      'nodes',
      '-o',
      'jsonpath={.items[0].metadata.name} {.items[0].status.allocatable.nvidia\\.com/gpu}',
    );
    assert.equal(nodes.stdout, 'btx-local 1');

    const pidFile = join(dir, 'pod.pid');
    await kubectl(
      'run',
      'sleeper',
      '--image=node:20',
      '--restart=Never',
      '--command',
      '--',
      process.execPath,
      '-e',
      `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`,
    );
    while (!existsSync(pidFile)) {
      assert.ok(Date.now() < deadline + 30_000, 'the pod never ran');
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = Number(readFileSync(pidFile, 'utf8'));

    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the pod process is gone');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
