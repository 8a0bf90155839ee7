// The embedded control plane: API server + one-node scheduler/kubelet + Job controller, started
// in-process (tests, `btx local`) or by `btx cluster`. Everything but the API server talks to it
// over HTTP with client-node, as kube-controller-manager and the kubelet do.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KeepAliveKubeConfig } from '../util/keepAliveKubeConfig.js';
import { startApiServer, type ApiServer } from './apiserver/server.js';
import { kubeconfigYaml } from './apiserver/kubeconfig.js';
import { Kubelet } from './kubelet/kubelet.js';
import type { ImageCommands } from './kubelet/podWorker.js';
import { parseQuantity } from './kubelet/resources.js';
import { JobController } from './jobs/jobController.js';
import { ensurePrivateDir, writePrivateFile } from './privateFiles.js';

export interface ControlPlaneOptions {
  dataDir: string;
  /** 0 or absent: a free port. */
  port?: number;
  host?: string;
  /** nvidia.com/gpu the node offers; default 0. */
  gpus?: number;
  /** Node allocatable cpu (a quantity, e.g. "4" or "1500m"); default: this machine's cores. */
  cpu?: string;
  /** Node allocatable memory (a quantity, e.g. "8Gi"); default: this machine's memory. */
  memory?: string;
  /** Default <dataDir>/kubeconfig. */
  kubeconfigPath?: string;
  /** Run the kubelet (default true). */
  kubelet?: boolean;
  /** Run the Job controller (default true). */
  jobController?: boolean;
  /** Bearer token; default the one kept in <dataDir>/token (a random one the first time). */
  token?: string;
  /** First container restart delay (kubelet) and first failed-pod replacement delay (Jobs); 10 s like Kubernetes. */
  restartBackoffBaseMs?: number;
  jobBackoffBaseMs?: number;
  /** hostPath volumes under these prefixes use the real path; others map under <dataDir>/volumes/hostpath. */
  hostPathPrefixes?: string[];
  /** Commands for images whose containers set none: the caller's own images (see ImageCommands). */
  imageCommands?: ImageCommands;
  /** A variable each container gets with its container path -> host path map (JSON). */
  pathMapVariable?: string;
  /** Extra variables for every container (e.g. a log level). */
  podEnv?: Record<string, string>;
  /** How long stop() lets pods handle SIGTERM before SIGKILL (default 10 s). */
  stopGraceSeconds?: number;
}

export interface ControlPlane {
  url: string;
  token: string;
  kubeconfigPath: string;
  dataDir: string;
  kubeConfig(): KubeConfig;
  kubelet: {
    /** The pod's processes get the signal; it fails with 128+signal (137 for SIGKILL) as restartPolicy says. */
    killPod(namespace: string, name: string, signal?: NodeJS.Signals): Promise<void>;
    /** The node goes away under the pod: processes killed, pod Failed with a DisruptionTarget condition. */
    loseNode(namespace: string, name: string): Promise<void>;
  };
  /** Kills every pod process, stops the controllers and the server. */
  stop(): Promise<void>;
}

/**
 * The bearer token kept in <dataDir>/token (0600): a control plane restarted on its data dir keeps
 * it, so clients holding the kubeconfig (a running operator) go on working instead of getting 401.
 */
function loadOrCreateToken(dataDir: string): string {
  const path = join(dataDir, 'token');
  try {
    const kept = readFileSync(path, 'utf8').trim();
    if (kept) {
      ensurePrivateDir(dataDir, [path]);
      return kept;
    }
  } catch {
    // None yet.
  }
  const token = randomBytes(24).toString('hex');
  writePrivateFile(path, token);
  return token;
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dataDir = resolve(opts.dataDir);
  ensurePrivateDir(dataDir);
  const token = opts.token ?? loadOrCreateToken(dataDir);
  const server: ApiServer = await startApiServer({ host: opts.host, port: opts.port ?? 0, token, dataDir });
  const kubeconfigPath = resolve(opts.kubeconfigPath ?? join(dataDir, 'kubeconfig'));
  mkdirSync(dirname(kubeconfigPath), { recursive: true });
  writeFileSync(kubeconfigPath, kubeconfigYaml(server.url, token, 'btx-local', server.caCert), {
    mode: 0o600,
  });
  const kubeConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };
  // The kubelet's and the Job controller's own clients keep their connections: client-node alone
  // does a TLS handshake per call, which was about a fifth of `btx local`'s in-process CPU.
  const kept: KeepAliveKubeConfig[] = [];
  const controllerConfig = (): KubeConfig => {
    const kc = KeepAliveKubeConfig.from(kubeConfig());
    kept.push(kc);
    return kc;
  };

  let kubelet: Kubelet | undefined;
  let jobs: JobController | undefined;
  try {
    if (opts.kubelet !== false) {
      kubelet = new Kubelet({
        kubeConfig: controllerConfig(),
        dataDir,
        capacity: {
          cpu: opts.cpu !== undefined ? parseQuantity(opts.cpu) : cpus().length,
          memory: opts.memory !== undefined ? parseQuantity(opts.memory) : totalmem(),
          gpus: opts.gpus ?? 0,
        },
        podKubeconfigPath: kubeconfigPath,
        apiUrl: server.url,
        imageCommands: opts.imageCommands,
        pathMapVariable: opts.pathMapVariable,
        hostPathPrefixes: opts.hostPathPrefixes,
        restartBackoffBaseMs: opts.restartBackoffBaseMs,
        podEnv: opts.podEnv,
        stopGraceSeconds: opts.stopGraceSeconds,
      });
      await kubelet.start();
    }
    if (opts.jobController !== false) {
      jobs = new JobController({ kubeConfig: controllerConfig(), backoffBaseMs: opts.jobBackoffBaseMs });
      await jobs.start();
    }
  } catch (err) {
    await Promise.allSettled([kubelet?.stop(), jobs?.stop()]);
    for (const kc of kept) kc.closeConnections();
    await server.stop();
    throw new Error('the control plane failed to start', { cause: err });
  }

  const noKubelet = (): never => {
    throw new Error('this control plane runs without a kubelet');
  };
  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    token,
    kubeconfigPath,
    dataDir,
    kubeConfig,
    kubelet: {
      killPod: (namespace, name, signal) =>
        kubelet ? kubelet.killPod(namespace, name, signal) : noKubelet(),
      loseNode: (namespace, name) => (kubelet ? kubelet.loseNode(namespace, name) : noKubelet()),
    },
    stop: () => {
      stopped ??= (async () => {
        await jobs?.stop();
        await kubelet?.stop();
        for (const kc of kept) kc.closeConnections();
        await server.stop();
      })();
      return stopped;
    },
  };
}
