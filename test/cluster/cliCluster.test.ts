// `btx cluster` as a user runs it: a child process, real kubectl against the kubeconfig it writes,
// SIGTERM stops its pods and exits 0.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { btxEntrypoint } from '../support/btx.js';
import { kubectlPath } from '../support/tools.js';
import { waitFor } from '../support/waitFor.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'btx-cli-cluster-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** node and the CLI it runs (under npm test the copy compiled for the run: test/support/btx.ts). */
const [node, ...btx] = btxEntrypoint() as [string, ...string[]];
/** How long `btx cluster` may take to start (24.5 s measured on the shared 2-core machine at a load average of 26). */
const STARTUP_MS = 90_000;

/** `kubectl run` arguments for a pod that writes its process id to `pidFile`, then runs until killed. */
function runPidPod(name: string, pidFile: string): string[] {
  const script = `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000)`;
  return [
    'run',
    name,
    '--image=node:20',
    '--restart=Never',
    '--command',
    '--',
    process.execPath,
    '-e',
    script,
  ];
}

test('btx cluster --help lists its flags', async () => {
  const { stdout } = await run(node, [...btx, 'cluster', '--help']);
  for (const flag of ['--kubeconfig', '--port', '--data-dir', '--gpus', '--cpu', '--memory'])
    assert.ok(stdout.includes(flag), flag);
});

test('btx cluster serves kubectl from the kubeconfig it writes, runs pods, and exits 0 on SIGTERM after stopping them', async () => {
  const kubeconfig = join(dir, 'kubeconfig');
  const dataDir = join(dir, 'data');
  const child = spawn(
    node,
    [...btx, 'cluster', '--kubeconfig', kubeconfig, '--port', '0', '--data-dir', dataDir, '--gpus', '1'],
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
    const deadline = Date.now() + STARTUP_MS;
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
    await kubectl(...runPidPod('sleeper', pidFile));
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

/** A port nothing listens on now (the OS's pick, released at once), so a restart can reuse it. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface ClusterProcess {
  child: ReturnType<typeof spawn>;
  exited: Promise<number | null>;
}

async function startCluster(args: string[]): Promise<ClusterProcess> {
  const child = spawn(node, [...btx, 'cluster', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BTX_LOG_LEVEL: 'warn' },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const deadline = Date.now() + STARTUP_MS;
  while (!out.includes('kubeconfig:')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL'); // never left running by a failed start
      assert.fail(`btx cluster did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, exited };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('btx cluster killed hard and restarted on its data dir keeps its token, ends the old pod processes and reports their pods as node loss', async () => {
  const kubeconfig = join(dir, 'crash-kubeconfig');
  const dataDir = join(dir, 'crash-data');
  const port = String(await freePort());
  const args = ['--kubeconfig', kubeconfig, '--port', port, '--data-dir', dataDir];
  const kubectl = (config: string, ...a: string[]) => run(kubectlPath(), ['--kubeconfig', config, ...a]);
  let first: ClusterProcess | undefined = await startCluster(args);
  let second: ClusterProcess | undefined;
  let pid = 0;
  try {
    const pidFile = join(dir, 'crash-pod.pid');
    await kubectl(kubeconfig, ...runPidPod('trainer', pidFile));
    await waitFor(
      'the pod to run',
      async () => {
        const phase = await kubectl(kubeconfig, 'get', 'pod', 'trainer', '-o', 'jsonpath={.status.phase}');
        return phase.stdout === 'Running' && existsSync(pidFile);
      },
      30_000,
    );
    pid = Number(readFileSync(pidFile, 'utf8'));
    // What a client (say, a running operator) holds: the kubeconfig with its token.
    const held = join(dir, 'held-kubeconfig');
    writeFileSync(held, readFileSync(kubeconfig));
    await new Promise((r) => setTimeout(r, 1500)); // the API server's snapshot is written (500 ms debounce)

    first.child.kill('SIGKILL'); // a crash: no exit hook runs
    await first.exited;
    first = undefined;
    assert.ok(alive(pid), 'a hard kill leaves the pod process running as an orphan');

    second = await startCluster(args);
    await waitFor("the previous incarnation's pod process to be gone", () => !alive(pid), 15_000);
    // The old kubeconfig (the old token) still works.
    const ns = await kubectl(held, 'get', 'ns', 'default', '-o', 'jsonpath={.metadata.name}');
    assert.equal(ns.stdout, 'default');
    let pod: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
    await waitFor(
      'the pod to fail as node loss',
      async () => {
        pod = JSON.parse((await kubectl(held, 'get', 'pod', 'trainer', '-o', 'json')).stdout);
        return pod.status?.phase === 'Failed';
      },
      30_000,
    );
    assert.equal(pod.status.reason, 'NodeLost');
    assert.ok(
      pod.status.conditions.some(
        (c: { type: string; status: string }) => c.type === 'DisruptionTarget' && c.status === 'True',
      ),
      JSON.stringify(pod.status.conditions),
    );
    assert.equal(pod.status.containerStatuses[0].state.terminated.reason, 'ContainerStatusUnknown');
    assert.notEqual(pod.status.containerStatuses[0].state.terminated.reason, 'Error');
    assert.equal(Number(readFileSync(pidFile, 'utf8')), pid, 'no second process was started for the pod');

    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
    second = undefined;
  } finally {
    first?.child.kill('SIGKILL');
    second?.child.kill('SIGKILL');
    if (pid && alive(pid)) process.kill(-pid, 'SIGKILL');
  }
});
