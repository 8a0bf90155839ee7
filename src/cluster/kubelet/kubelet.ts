// The embedded node: a scheduler for one node plus a kubelet that runs pods as local processes.
// Level-triggered: every pod event only enqueues the pod's key; sync(key) compares the pod in the
// informer cache with the processes this node runs and moves one toward the other.
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1ContainerStatus,
  type V1Pod,
  type V1PodCondition,
  type V1PodStatus,
} from '@kubernetes/client-node';
import { log, errorFields } from '../../util/log.js';
import { ResilientInformer } from '../../util/informer.js';
import { statusCode } from '../../util/apiErrors.js';
import { runWorkers, WorkQueue } from '../../util/workQueue.js';
import { EventRecorder } from '../../util/events.js';
import type { EnvSources } from './podEnv.js';
import { matchesNode } from './nodeAffinity.js';
import { PodWorker, type ImageCommands, type PodWorkerConfig } from './podWorker.js';
import { ProcessGroupRecords } from './processGroups.js';
import { computePodStatus, nowRfc3339, stableJson, toWire } from './podStatus.js';
import {
  formatQuantity,
  insufficientResources,
  podRequests,
  unschedulableMessage,
  type ResourceList,
} from './resources.js';

export const DEFAULT_NODE_NAME = 'btx-local';
const DEFAULT_SCHEDULER = 'default-scheduler';
const GPU = 'nvidia.com/gpu';
const SCHEDULE_KEY = '\u0000schedule';
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface NodeCapacity {
  /** Cores. */
  cpu: number;
  /** Bytes. */
  memory: number;
  gpus: number;
}

export interface KubeletOptions {
  kubeConfig: KubeConfig;
  dataDir: string;
  capacity: NodeCapacity;
  /** The kubeconfig file processes get in KUBECONFIG (in-pod clients reach the API server with it). */
  podKubeconfigPath: string;
  /** The API server's URL, for KUBERNETES_SERVICE_HOST/PORT. */
  apiUrl: string;
  /** Commands for images whose containers set none (see ImageCommands); none by default. */
  imageCommands?: ImageCommands;
  /** The variable that carries each container's path map (see PodWorkerConfig); none by default. */
  pathMapVariable?: string;
  nodeName?: string;
  /** hostPath volumes under these prefixes use the real path; others map under dataDir. */
  hostPathPrefixes?: string[];
  /** First restart delay (doubles per restart); 10 s like the kubelet. */
  restartBackoffBaseMs?: number;
  restartBackoffMaxMs?: number;
  /** Every pod is looked at again this often, whatever the watch says. */
  resyncMs?: number;
  /** Extra variables every container gets (before its own env). */
  podEnv?: Record<string, string>;
  /** stop() gives pods at most this long between SIGTERM and SIGKILL. */
  stopGraceSeconds?: number;
}

/** Host variables a process needs to run at all; the rest of the host environment stays out. */
const HOST_ENV_KEYS = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'SYSTEMROOT'];

function isTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function qosClass(pod: V1Pod): string {
  const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  let any = false;
  let guaranteed = true;
  for (const c of containers) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || (req[r] !== undefined && String(req[r]) !== String(lim[r])))
        guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export class Kubelet {
  readonly nodeName: string;
  private readonly core: CoreV1Api;
  private readonly queue: WorkQueue;
  private readonly events: EventRecorder;
  private pods?: ResilientInformer<V1Pod>;
  private readonly workers = new Map<string, PodWorker>();
  /** Bindings sent but not yet seen in the cache (the scheduler's assume cache). */
  private readonly assumed = new Map<string, ResourceList>();
  /** GPU indices given to each pod's worker, by pod uid. */
  private readonly gpusByPod = new Map<string, number[]>();
  private readonly allocatable: ResourceList;
  private readonly workerConfig: PodWorkerConfig;
  private readonly processGroups: ProcessGroupRecords;
  private resync?: NodeJS.Timeout;

  constructor(private readonly opts: KubeletOptions) {
    this.nodeName = opts.nodeName ?? DEFAULT_NODE_NAME;
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 30_000 });
    // Several workers: pods sync side by side (one key is still never synced twice at once).
    void runWorkers(this.queue, 'kubelet', 8, (key) =>
      key === SCHEDULE_KEY ? this.schedule() : this.sync(key),
    );
    this.events = new EventRecorder(this.core, { component: 'kubelet', host: this.nodeName });
    this.allocatable = {
      cpu: opts.capacity.cpu,
      memory: opts.capacity.memory,
      [GPU]: opts.capacity.gpus,
      pods: 110,
    };
    const url = new URL(opts.apiUrl);
    const hostEnv = Object.fromEntries(
      HOST_ENV_KEYS.flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k] as string]] : [])),
    );
    this.processGroups = new ProcessGroupRecords(opts.dataDir);
    this.workerConfig = {
      dataDir: opts.dataDir,
      processGroups: this.processGroups,
      nodeName: this.nodeName,
      hostPathPrefixes: opts.hostPathPrefixes ?? [],
      baseEnv: {
        ...hostEnv,
        KUBECONFIG: opts.podKubeconfigPath,
        KUBERNETES_SERVICE_HOST: url.hostname,
        KUBERNETES_SERVICE_PORT: url.port,
        KUBERNETES_PORT: `tcp://${url.host}`,
        ...opts.podEnv,
      },
      imageCommands: opts.imageCommands,
      pathMapVariable: opts.pathMapVariable,
      restartBackoffBaseMs: opts.restartBackoffBaseMs ?? 10_000,
      restartBackoffMaxMs: opts.restartBackoffMaxMs ?? 300_000,
      managesGpus: opts.capacity.gpus > 0,
      sources: this.envSources(),
      recordEvent: (pod, type, reason, message) => this.events.emit(pod, type, reason, message),
    };
  }

  async start(): Promise<void> {
    // Containers a crashed predecessor on this data dir left running go first: their pods are
    // reported as lost (PodWorker), and nothing may run twice beside its replacement.
    const killed = await this.processGroups.killPrevious();
    if (killed.length > 0)
      log.warn('killed containers a previous kubelet left running', { node: this.nodeName, killed });
    await this.registerNode();
    this.pods = new ResilientInformer<V1Pod>(
      this.opts.kubeConfig,
      'pods',
      '/api/v1/pods',
      () => this.core.listPodForAllNamespaces(),
      (pod) => this.enqueue(pod),
    );
    await this.pods.start();
    const resyncMs = this.opts.resyncMs ?? 10_000;
    this.resync = setInterval(() => {
      for (const p of this.pods?.list() ?? []) this.enqueue(p);
      for (const key of this.workers.keys()) this.queue.add(key);
    }, resyncMs);
    this.resync.unref();
    this.queue.add(SCHEDULE_KEY);
  }

  /** Kills every pod process (SIGTERM, then SIGKILL after a short grace) and stops watching. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    if (this.resync) clearInterval(this.resync);
    await this.pods?.stop();
    const cap = this.opts.stopGraceSeconds ?? 10;
    await Promise.all([...this.workers.values()].map((w) => w.terminate(Math.min(cap, w.graceSeconds))));
    this.workers.clear();
  }

  /** Fault injection: the pod's processes get the signal; restartPolicy decides what follows. */
  async killPod(namespace: string, name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const worker = this.workers.get(keyOf(namespace, name));
    if (!worker) throw new Error(`pod ${namespace}/${name} is not running on node ${this.nodeName}`);
    worker.kill(signal);
  }

  /** Fault injection: the node disappears under the pod; its processes die and the pod fails. */
  async loseNode(namespace: string, name: string): Promise<void> {
    const worker = this.workers.get(keyOf(namespace, name));
    if (!worker) throw new Error(`pod ${namespace}/${name} is not running on node ${this.nodeName}`);
    await worker.loseNode();
    this.queue.add(keyOf(namespace, name));
  }

  private enqueue(pod: V1Pod): void {
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    this.queue.add(keyOf(ns, name));
    // Any pod change may change what fits (a pod ended, one arrived).
    this.queue.add(SCHEDULE_KEY);
  }

  private async sync(key: string): Promise<number | void> {
    const [namespace = '', name = ''] = key.split('/', 2);
    const pod = this.pods?.get(name, namespace);
    let worker = this.workers.get(key);
    if (worker && (!pod || pod.metadata?.uid !== worker.uid)) {
      // Gone from the API (or replaced by a new pod of the same name): its processes go too.
      await worker.terminate(worker.graceSeconds);
      this.forget(key, worker);
      worker = undefined;
    }
    if (!pod || pod.spec?.nodeName !== this.nodeName) return;
    const uid = pod.metadata?.uid ?? '';
    if (pod.metadata?.deletionTimestamp) {
      if (worker) {
        worker.update(pod);
        // A deleted pod ends in a terminal phase before it goes, as the kubelet does since 1.27.
        worker.record.deleted = true;
        await worker.terminate(worker.graceSeconds);
        await this.writeStatus(pod, worker).catch(() => undefined);
        this.forget(key, worker);
      }
      await this.core
        .deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { preconditions: { uid } } })
        .catch((err: unknown) => {
          if (statusCode(err) !== 404) throw err;
        });
      return;
    }
    if (!worker) {
      if (isTerminal(pod)) return;
      worker = new PodWorker(pod, this.workerConfig, this.allocateGpus(pod), () => this.queue.add(key));
      this.workers.set(key, worker);
      worker.start();
    }
    worker.update(pod);
    const deadlineMs = this.activeDeadlineLeftMs(pod, worker);
    if (deadlineMs !== undefined && deadlineMs <= 0 && !worker.record.deadlineExceeded) {
      this.events.emit(
        pod,
        'Normal',
        'DeadlineExceeded',
        'Pod was active on the node longer than the specified deadline',
      );
      await worker.exceedDeadline();
    }
    await this.writeStatus(pod, worker);
    if (deadlineMs !== undefined && deadlineMs > 0) return deadlineMs;
  }

  /** Time left before spec.activeDeadlineSeconds, counted from the pod's start on this node. */
  private activeDeadlineLeftMs(pod: V1Pod, worker: PodWorker): number | undefined {
    const seconds = pod.spec?.activeDeadlineSeconds;
    if (seconds === undefined || seconds === null) return undefined;
    if (worker.terminal) return undefined;
    return new Date(worker.record.startTime).getTime() + seconds * 1000 - Date.now();
  }

  private forget(key: string, worker: PodWorker): void {
    this.workers.delete(key);
    this.gpusByPod.delete(worker.uid);
    worker.cleanup();
    this.queue.add(SCHEDULE_KEY);
  }

  /** The lowest GPU indices no unfinished pod holds (a finished pod's GPUs are free at once). */
  private allocateGpus(pod: V1Pod): number[] {
    const held = new Set<number>();
    for (const w of this.workers.values()) {
      if (w.terminal) continue;
      for (const id of this.gpusByPod.get(w.uid) ?? []) held.add(id);
    }
    const want = Math.round(podRequests(pod)[GPU] ?? 0);
    const free = Array.from({ length: this.opts.capacity.gpus }, (_, i) => i).filter((i) => !held.has(i));
    const ids = free.slice(0, want);
    this.gpusByPod.set(pod.metadata?.uid ?? '', ids);
    return ids;
  }

  private async writeStatus(pod: V1Pod, worker: PodWorker): Promise<void> {
    // Transition times continue from our own last write when the cache is behind it.
    const previous = (worker.lastWrittenStatus as V1PodStatus | undefined) ?? pod.status;
    const status = toWire(computePodStatus({ ...pod, status: previous }, worker.record, nowRfc3339()));
    status.qosClass = qosClass(pod);
    const current = (pod.status ?? {}) as Record<string, unknown>;
    const comparable = Object.fromEntries(Object.keys(status).map((k) => [k, current[k]]));
    const desired = stableJson(status);
    const lastWritten = worker.lastWrittenStatus;
    // Compare with our own last write too: the informer cache may not show it yet.
    if (lastWritten !== undefined && stableJson(lastWritten) === desired) return;
    if (stableJson(comparable) === desired) {
      worker.lastWrittenStatus = status;
      return;
    }
    await this.core.patchNamespacedPodStatus(
      { name: worker.name, namespace: worker.namespace, body: { status } },
      MERGE_PATCH,
    );
    this.recordContainerEvents(pod, lastWritten ?? current, status);
    worker.lastWrittenStatus = status;
  }

  private recordContainerEvents(
    pod: V1Pod,
    previous: Record<string, unknown>,
    status: Record<string, unknown>,
  ): void {
    const previousStatuses = (previous.containerStatuses ?? []) as V1ContainerStatus[];
    const before = new Map(previousStatuses.map((c) => [c.name, c]));
    const after = (status.containerStatuses ?? []) as {
      name: string;
      state?: { waiting?: { reason?: string; message?: string } };
    }[];
    for (const c of after) {
      const prev = before.get(c.name);
      const waiting = c.state?.waiting;
      if (waiting && waiting.reason !== prev?.state?.waiting?.reason) {
        if (waiting.reason === 'CrashLoopBackOff')
          this.events.emit(
            pod,
            'Warning',
            'BackOff',
            `Back-off restarting failed container ${c.name} in pod ${pod.metadata?.name}_${pod.metadata?.namespace}(${pod.metadata?.uid})`,
          );
        if (waiting.reason === 'ErrImagePull' || waiting.reason === 'CreateContainerConfigError')
          this.events.emit(pod, 'Warning', 'Failed', `Error: ${waiting.message ?? waiting.reason}`);
      }
    }
  }

  /** One scheduling pass over unbound pods, oldest first, against what is left on the node. */
  private async schedule(): Promise<void> {
    const all = this.pods?.list() ?? [];
    const used: ResourceList = {};
    const add = (r: ResourceList) => {
      for (const [k, v] of Object.entries(r)) used[k] = (used[k] ?? 0) + v;
    };
    for (const pod of all) {
      const uid = pod.metadata?.uid ?? '';
      if (pod.spec?.nodeName) this.assumed.delete(uid);
      if (pod.spec?.nodeName !== this.nodeName) continue;
      const worker = this.workers.get(keyOf(pod.metadata?.namespace ?? '', pod.metadata?.name ?? ''));
      // A pod holds its resources until it is terminal and its processes are gone.
      const done = worker ? worker.terminal : isTerminal(pod);
      if (!done) add({ ...podRequests(pod), pods: 1 });
    }
    const live = new Set(all.map((p) => p.metadata?.uid ?? ''));
    for (const [uid, req] of this.assumed) {
      if (live.has(uid)) add(req);
      else this.assumed.delete(uid);
    }
    const pending = all
      .filter((p) => !p.spec?.nodeName && !p.metadata?.deletionTimestamp && !isTerminal(p))
      .filter((p) => (p.spec?.schedulerName ?? DEFAULT_SCHEDULER) === DEFAULT_SCHEDULER)
      .filter((p) => !this.assumed.has(p.metadata?.uid ?? ''))
      .sort((a, b) => {
        const ta = new Date(a.metadata?.creationTimestamp ?? 0).getTime();
        const tb = new Date(b.metadata?.creationTimestamp ?? 0).getTime();
        return ta - tb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
      });
    let failure: unknown;
    for (const pod of pending) {
      const requests = { ...podRequests(pod), pods: 1 };
      const reasons = insufficientResources(requests, this.allocatable, used).map((r) =>
        r === 'pods' ? 'Too many pods' : `Insufficient ${r}`,
      );
      if (!this.matchesNodeSelector(pod))
        reasons.unshift("node(s) didn't match Pod's node affinity/selector");
      try {
        if (reasons.length === 0) {
          await this.bind(pod);
          this.assumed.set(pod.metadata?.uid ?? '', requests);
          add(requests);
        } else {
          await this.markUnschedulable(pod, unschedulableMessage(reasons));
        }
      } catch (err) {
        log.warn('scheduling a pod failed', {
          namespace: pod.metadata?.namespace,
          name: pod.metadata?.name,
          ...errorFields(err),
        });
        // Gone or changed since the cache saw it: the informer brings the news. Anything else is
        // retried, but only after the other pending pods had their turn in this pass.
        if (statusCode(err) !== 404 && statusCode(err) !== 409) failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }

  private matchesNodeSelector(pod: V1Pod): boolean {
    return matchesNode(pod, this.nodeName, this.nodeLabels());
  }

  private nodeLabels(): Record<string, string> {
    return {
      'kubernetes.io/hostname': this.nodeName,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
      'node-role.kubernetes.io/control-plane': '',
      // What NVIDIA GPU Feature Discovery labels a GPU node with, so GPU pods' selectors match.
      ...(this.opts.capacity.gpus > 0
        ? { 'nvidia.com/gpu.present': 'true', 'nvidia.com/gpu.count': String(this.opts.capacity.gpus) }
        : {}),
    };
  }

  /**
   * Binds through pods/binding, as the scheduler does. A 404 means the pod went away since the cache
   * saw it (the caller skips it); it is never a reason to fall back to writing spec.nodeName, which
   * the API server refuses on an existing pod.
   */
  private async bind(pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    const namespace = pod.metadata?.namespace ?? 'default';
    await this.core.createNamespacedPodBinding({
      name,
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name, namespace, uid: pod.metadata?.uid },
        target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName },
      },
    });
    this.scheduled(pod);
  }

  private scheduled(pod: V1Pod): void {
    this.events.emit(
      pod,
      'Normal',
      'Scheduled',
      `Successfully assigned ${pod.metadata?.namespace}/${pod.metadata?.name} to ${this.nodeName}`,
      'default-scheduler',
    );
  }

  private async markUnschedulable(pod: V1Pod, message: string): Promise<void> {
    const current = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (current?.status === 'False' && current.reason === 'Unschedulable' && current.message === message)
      return;
    const condition: V1PodCondition = {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message,
      lastTransitionTime: nowRfc3339() as unknown as Date,
    };
    const others = (pod.status?.conditions ?? []).filter((c) => c.type !== 'PodScheduled');
    await this.core.patchNamespacedPodStatus(
      {
        name: pod.metadata?.name ?? '',
        namespace: pod.metadata?.namespace ?? 'default',
        body: { status: { phase: 'Pending', conditions: [...others.map((c) => toWire(c)), condition] } },
      },
      MERGE_PATCH,
    );
    this.events.emit(pod, 'Warning', 'FailedScheduling', message, 'default-scheduler');
  }

  /** Registers the Node object when the API server serves nodes. */
  private async registerNode(): Promise<void> {
    const capacity: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.allocatable)) capacity[k] = formatQuantity(k, v);
    const now = nowRfc3339();
    const node: V1Node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.nodeName, labels: this.nodeLabels() },
      spec: {},
    };
    const status = {
      capacity,
      allocatable: capacity,
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: this.nodeName },
      ],
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      nodeInfo: {
        architecture: this.nodeLabels()['kubernetes.io/arch'],
        operatingSystem: 'linux',
        kubeletVersion: 'v1.35.0-btx',
        kubeProxyVersion: '',
        containerRuntimeVersion: 'btx-process://1',
        osImage: process.platform,
        kernelVersion: '',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    };
    try {
      await this.core.createNode({ body: node }).catch((err: unknown) => {
        if (statusCode(err) !== 409) throw err;
      });
      await this.core.patchNodeStatus({ name: this.nodeName, body: { status } }, MERGE_PATCH);
    } catch (err) {
      log.warn('node registration failed; scheduling works without a Node object', {
        node: this.nodeName,
        ...errorFields(err),
      });
    }
  }

  private envSources(): EnvSources {
    const core = this.core;
    const orUndefined = async <T>(p: Promise<T>): Promise<T | undefined> => {
      try {
        return await p;
      } catch (err) {
        if (statusCode(err) === 404) return undefined;
        throw err;
      }
    };
    const decode = (data: Record<string, string> | undefined) =>
      data
        ? Object.fromEntries(
            Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
          )
        : undefined;
    const configMapData = async (namespace: string, name: string) => {
      const cm = await orUndefined(core.readNamespacedConfigMap({ name, namespace }));
      return cm ? { ...(cm.data ?? {}) } : undefined;
    };
    const secretData = async (namespace: string, name: string) => {
      const s = await orUndefined(core.readNamespacedSecret({ name, namespace }));
      return s ? { ...(decode(s.data) ?? {}), ...(s.stringData ?? {}) } : undefined;
    };
    return {
      configMapData,
      secretData,
      configMapKey: async (ns, name, key) => (await configMapData(ns, name))?.[key],
      secretKey: async (ns, name, key) => (await secretData(ns, name))?.[key],
    };
  }
}
