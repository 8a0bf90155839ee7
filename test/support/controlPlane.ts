// The one test harness that starts a Kubernetes API (before: four, in test/cluster, test/operator,
// test/ship and test/cli): the embedded API server alone, or the whole control plane (API server,
// kubelet, Job controller), in this process, in a temp folder, with what a test talks to it with:
// client-node APIs, an authenticated fetch, and a real kubectl on a kubeconfig written for it. The
// API server alone can be restarted on its port and data dir (persistence, and a kubelet and Job
// controller that must carry on across the restart).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { kubeconfigYaml } from '../../src/cluster/apiserver/kubeconfig.js';
import { KeepAliveKubeConfig } from '../../src/util/keepAliveKubeConfig.js';
import { JobController } from '../../src/cluster/jobs/jobController.js';
import { Kubelet } from '../../src/cluster/kubelet/kubelet.js';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../src/cluster/apiserver/server.js';
import {
  startControlPlane,
  type ControlPlane,
  type ControlPlaneOptions,
} from '../../src/cluster/controlPlane.js';
import { kubectlPath } from './tools.js';
import { waitFor } from './waitFor.js';

export interface TestControlPlaneOptions {
  /** Start the kubelet and the Job controller too (these options), or only the API server (absent). */
  controllers?: Partial<ControlPlaneOptions>;
  /** API server options when it runs alone (watch history, buffers). */
  apiServer?: Partial<ApiServerOptions>;
  /** The temp folder's name prefix (it shows in leftover folders and pod environments). */
  name?: string;
  /** Start on this data dir (a test of what the server makes of an old one); default a fresh folder. */
  dataDir?: string;
  /**
   * With the API server alone: also a kubelet (2 cpu, 4 GiB, no GPUs) and a Job controller that talk
   * to it over HTTP, as the control plane's do, and live on while restartApiServer() restarts it.
   */
  nodeAgents?: { stopGraceSeconds?: number; jobBackoffBaseMs?: number };
}

/** The bearer token of an API server started alone (the whole control plane makes its own). */
export const TEST_TOKEN = 'test-token-0123456789';

export interface TestControlPlane {
  /** The whole control plane, when `controllers` was given. */
  plane?: ControlPlane;
  /** The API server, when it runs alone (the new one after restartApiServer). */
  server?: ApiServer;
  url: string;
  token: string;
  /** A temporary folder, removed by stop(); the API server's data is under it. */
  dir: string;
  dataDir: string;
  kubeconfigPath: string;
  /** The https kubeconfig (for what is under test: an operator, informers). */
  kc: KubeConfig;
  /** The test's own clients, over one kept connection (KeepAliveKubeConfig). */
  core: CoreV1Api;
  batch: BatchV1Api;
  custom: CustomObjectsApi;
  /** fetch with the bearer token; a body that is not a string is sent as JSON. */
  req(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
    headers?: Record<string, string>,
  ): Promise<Response>;
  /** req, then the answer's status and parsed JSON body. */
  json<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: T }>;
  /** kubectl on the test's kubeconfig; rejects with its stderr when it fails. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** kubectl that never rejects: whether it succeeded, and what it printed. */
  tryKubectl(...args: string[]): Promise<{ ok: boolean; out: string; err: string }>;
  kubectlSpawn(...args: string[]): ChildProcess;
  createNamespaces(names: string[]): Promise<void>;
  /**
   * The API server alone: stop it (a persisting one writes its snapshot), wait `downMs`, and start it
   * again on the same port and data dir; `url` and the kubeconfig stay valid.
   */
  restartApiServer(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestControlPlane(opts: TestControlPlaneOptions = {}): Promise<TestControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), `btx-${opts.name ?? 'test'}-`));
  const dataDir = opts.dataDir ?? join(dir, 'data');
  let plane: ControlPlane | undefined;
  let server: ApiServer | undefined;
  let url: string;
  let token: string;
  let caCert: string | undefined;
  if (opts.controllers) {
    plane = await startControlPlane({
      dataDir,
      jobBackoffBaseMs: 100,
      restartBackoffBaseMs: 100,
      stopGraceSeconds: 2,
      ...opts.controllers,
    });
    ({ url, token } = plane);
  } else {
    server = await startApiServer({ token: TEST_TOKEN, dataDir, persist: false, ...opts.apiServer });
    ({ url, token, caCert } = server);
  }
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(url, token, 'btx-test', caCert));
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  // The harness's own clients (core, batch, custom: what a test reads and polls with, waitForRun every
  // 100 ms) share one kept connection: client-node 1.4 alone makes a TLS connection per request, and
  // both ends of those handshakes ran in the test process (src/util/keepAliveKubeConfig.ts).
  const pooledKc = KeepAliveKubeConfig.from(kc);
  const env = { ...process.env, HOME: dir, KUBECONFIG: kubeconfigPath };
  let kubelet: Kubelet | undefined;
  let jobs: JobController | undefined;
  if (server && opts.nodeAgents) {
    kubelet = new Kubelet({
      kubeConfig: kc,
      dataDir,
      capacity: { cpu: 2, memory: 2 ** 32, gpus: 0 },
      podKubeconfigPath: kubeconfigPath,
      apiUrl: url,
      stopGraceSeconds: opts.nodeAgents.stopGraceSeconds,
    });
    jobs = new JobController({ kubeConfig: kc, backoffBaseMs: opts.nodeAgents.jobBackoffBaseMs });
    await kubelet.start();
    await jobs.start();
  }

  const req = (
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    headers: Record<string, string> = {},
  ) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'Content-Type': contentType } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  const runKubectl = async (args: string[], input?: string) => {
    const child = execFile(kubectlPath(), args, { env, timeout: 60_000 });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin!.end(input ?? '');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { ok: code === 0, code, out, err };
  };
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await runKubectl(args, input);
    if (!r.ok) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}:\n${r.err}${r.out}`);
    return r.out;
  };

  const harness: TestControlPlane = {
    plane,
    server,
    url,
    token,
    dir,
    dataDir,
    kubeconfigPath,
    kc,
    core: pooledKc.makeApiClient(CoreV1Api),
    batch: pooledKc.makeApiClient(BatchV1Api),
    custom: pooledKc.makeApiClient(CustomObjectsApi),
    req,
    async json<T>(method: string, path: string, body?: unknown, contentType?: string) {
      const res = await req(method, path, body, contentType);
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    kubectl,
    async tryKubectl(...args: string[]) {
      const { ok, out, err } = await runKubectl(args);
      return { ok, out, err };
    },
    kubectlSpawn(...args: string[]) {
      return spawn(kubectlPath(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    },
    async createNamespaces(names: string[]) {
      const docs = names
        .map((n) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${n}\n`)
        .join('---\n');
      await kubectl(['apply', '-f', '-'], docs);
    },
    async restartApiServer(downMs = 0) {
      if (!harness.server) throw new Error('restartApiServer: only an API server started alone restarts');
      const port = harness.server.port;
      await harness.server.stop();
      await sleep(downMs);
      harness.server = await startApiServer({
        token: TEST_TOKEN,
        dataDir,
        persist: false,
        ...opts.apiServer,
        port,
      });
      // fetch keeps idle connections to the old server; one it has not yet seen closed fails the next
      // request ("other side closed"), so ask until one answers: later requests find the pool fresh.
      await waitFor(
        'the restarted API server to answer',
        async () => (await fetch(`${url}/healthz`)).ok,
        10_000,
      );
    },
    async stop() {
      await jobs?.stop();
      await kubelet?.stop();
      await (plane ?? harness.server)!.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

export type TestApiServer = TestControlPlane & { server: ApiServer };

/** The API server alone (the API server's own tests). */
export async function startTestApiServer(
  opts: Partial<ApiServerOptions> = {},
  harness: Omit<TestControlPlaneOptions, 'apiServer' | 'controllers'> = {},
): Promise<TestApiServer> {
  return (await startTestControlPlane({ name: 'apiserver', ...harness, apiServer: opts })) as TestApiServer;
}
