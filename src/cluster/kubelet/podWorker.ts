// Runs one pod: sets up its volumes, runs init containers in order, then its containers side by side,
// restarting them as restartPolicy says with the kubelet's doubling back-off. It only keeps the
// record (src/cluster/kubelet/podStatus.ts) up to date; the kubelet turns the record into status.
import { mkdirSync, openSync, readSync, closeSync, fstatSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { mapPath, type PathMap } from '../../util/pathMap.js';
import { log, errorFields } from '../../util/log.js';
import { containerLogPath, podDir } from '../podLogs.js';
import { startProcess, type ProcessExit, type RunningProcess } from './containerProcess.js';
import { containerEnv, expandCommand, type EnvSources } from './podEnv.js';
import {
  nowRfc3339,
  podPhase,
  type ContainerRecord,
  type PodPhase,
  type PodRecord,
  type Terminated,
} from './podStatus.js';
import type { ProcessGroupRecords } from './processGroups.js';
import { parseQuantity } from './resources.js';
import { containerPathMap, podVolumeFolders, type VolumeFolder } from './volumes.js';

/**
 * What an image runs when its container sets no `command` (the image's entrypoint, which a process
 * runtime cannot read from the image): argv before the container's args, or undefined for an image
 * the caller knows nothing of (the container then waits with ErrImagePull).
 */
export type ImageCommands = (image: string) => string[] | undefined;

export interface PodWorkerConfig {
  dataDir: string;
  nodeName: string;
  hostPathPrefixes: string[];
  /** Variables every container gets first (KUBECONFIG, KUBERNETES_SERVICE_*, PATH...). */
  baseEnv: Record<string, string>;
  /** Commands for images whose containers set none (the caller's images); none by default. */
  imageCommands?: ImageCommands;
  /**
   * A variable each container gets holding its container path -> host path map as JSON (mounts,
   * termination message path, working dir), for programs that open container paths; none by default.
   */
  pathMapVariable?: string;
  restartBackoffBaseMs: number;
  restartBackoffMaxMs: number;
  /** Whether the node manages GPUs (then CUDA_VISIBLE_DEVICES is set for every container). */
  managesGpus: boolean;
  sources: EnvSources;
  /** Where the process groups of containers are recorded (so a restarted kubelet can end them). */
  processGroups?: ProcessGroupRecords;
  /** Records a core/v1 Event about the pod (Pulled, Created, Started, Killing). */
  recordEvent?: (pod: V1Pod, type: 'Normal' | 'Warning', reason: string, message: string) => void;
}

const GPU = 'nvidia.com/gpu';
/** The kubelet reads at most this much of a termination message file, as Kubernetes does. */
const TERMINATION_MESSAGE_MAX_BYTES = 4096;
const LOG_TAIL_LINES = 80;
const LOG_TAIL_BYTES = 2048;
const CONFIG_RETRY_MS = 2000;

function readHead(file: string, max: number): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(max);
      const n = readSync(fd, buf, 0, max, 0);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** The end of a log, as FallbackToLogsOnError takes it: the last 80 lines, at most 2048 bytes. */
export function readLogTail(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - LOG_TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf.toString('utf8').split('\n');
      return lines.slice(-LOG_TAIL_LINES - 1).join('\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function terminatedFrom(previous: ContainerRecord['state'] | undefined): Terminated | undefined {
  return previous?.kind === 'terminated' ? previous : undefined;
}

export class PodWorker {
  readonly record: PodRecord;
  /** The status the kubelet last wrote for this pod (the informer cache may not show it yet). */
  lastWrittenStatus?: Record<string, unknown>;
  readonly uid: string;
  private readonly dir: string;
  private readonly processes = new Map<string, RunningProcess>();
  private stopping = false;
  private readonly stopWaiters = new Set<() => void>();
  private volumes = new Map<string, VolumeFolder>();
  private finished: Promise<void> = Promise.resolve();

  constructor(
    private pod: V1Pod,
    private readonly config: PodWorkerConfig,
    private readonly gpuIndices: number[],
    private readonly onChange: () => void,
  ) {
    this.uid = pod.metadata?.uid ?? '';
    this.dir = podDir(config.dataDir, this.namespace, this.name, this.uid);
    const hasInit = (pod.spec?.initContainers ?? []).length > 0;
    const lostAt = nowRfc3339();
    let lost = false;
    const seed = (c: V1Container, init: boolean): ContainerRecord => {
      // A pod that already ran (the control plane restarted under it) keeps its history; a
      // container that was running went down with the previous kubelet: the node was lost under it.
      const statuses = init ? pod.status?.initContainerStatuses : pod.status?.containerStatuses;
      const before = statuses?.find((s) => s.name === c.name);
      const record: ContainerRecord = {
        ...(init && c.restartPolicy === 'Always' ? { sidecar: true } : {}),
        name: c.name,
        image: c.image ?? '',
        state: { kind: 'waiting', reason: init || hasInit ? 'PodInitializing' : 'ContainerCreating' },
        restartCount: before?.restartCount ?? 0,
      };
      if (before?.state?.running || before?.state?.terminated) {
        const started = String(
          before.state.running?.startedAt ?? before.state.terminated?.startedAt ?? nowRfc3339(),
        );
        record.state = before.state.terminated
          ? {
              kind: 'terminated',
              exitCode: before.state.terminated.exitCode,
              reason: before.state.terminated.reason ?? 'Error',
              message: before.state.terminated.message,
              startedAt: started,
              finishedAt: String(before.state.terminated.finishedAt ?? nowRfc3339()),
            }
          : {
              kind: 'terminated',
              exitCode: 137,
              reason: 'ContainerStatusUnknown',
              message: 'The container could not be located when the pod was terminated',
              startedAt: started,
              finishedAt: lostAt,
            };
        if (before.state.running) lost = true;
      }
      return record;
    };
    this.record = {
      initContainers: (pod.spec?.initContainers ?? []).map((c) => seed(c, true)),
      containers: (pod.spec?.containers ?? []).map((c) => seed(c, false)),
      startTime: pod.status?.startTime ? nowRfc3339(new Date(pod.status.startTime)) : nowRfc3339(),
    };
    // Its processes ended with the previous kubelet: the pod fails as after loseNode(), whatever
    // its restart policy, so owners see a disruption (NodeLost, DisruptionTarget), not a crash.
    if (lost) {
      this.record.nodeLost = { at: lostAt, nodeName: config.nodeName };
      this.stopping = true;
    }
  }

  get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }

  get name(): string {
    return this.pod.metadata?.name ?? '';
  }

  /** The pod's phase from what its processes did. */
  phase(): PodPhase {
    return podPhase(this.record, this.restartPolicy);
  }

  /** Finished for good: its resources (and GPUs) are free. */
  get terminal(): boolean {
    const phase = this.phase();
    return phase === 'Succeeded' || phase === 'Failed';
  }

  /** The grace period the pod asks for (deletionGracePeriodSeconds once it is being deleted). */
  get graceSeconds(): number {
    return (
      this.pod.metadata?.deletionGracePeriodSeconds ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30
    );
  }

  /** The newest pod object (labels and annotations feed the downward API on restarts). */
  update(pod: V1Pod): void {
    this.pod = pod;
  }

  start(): void {
    this.finished = this.run().catch((err: unknown) => {
      log.error('pod worker failed', { namespace: this.namespace, name: this.name, ...errorFields(err) });
    });
  }

  /** Resolves when the worker has nothing left to run (the pod is terminal or being removed). */
  done(): Promise<void> {
    return this.finished;
  }

  /** Sends a signal to every running container (fault injection); restartPolicy then applies. */
  kill(signal: NodeJS.Signals): void {
    for (const p of this.processes.values()) p.signal(signal);
  }

  /** SIGTERM, then SIGKILL after the grace period; nothing restarts afterwards. */
  async terminate(graceSeconds: number): Promise<void> {
    this.stop();
    const running = [...this.processes.values()];
    for (const name of this.processes.keys()) this.event('Normal', 'Killing', `Stopping container ${name}`);
    for (const p of running) p.signal('SIGTERM');
    const all = Promise.all(running.map((p) => p.exited));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, graceSeconds) * 1000);
    });
    if ((await Promise.race([all, grace])) === 'timeout') {
      for (const p of this.processes.values()) p.signal('SIGKILL');
    }
    clearTimeout(timer);
    await all;
    await this.finished;
  }

  /** spec.activeDeadlineSeconds has passed: stop the pod as the kubelet does, and fail it. */
  async exceedDeadline(): Promise<void> {
    this.record.deadlineExceeded = true;
    await this.terminate(this.graceSeconds);
    this.onChange();
  }

  /** The node went away under the pod: every process dies, and the pod fails. */
  async loseNode(): Promise<void> {
    this.record.nodeLost = { at: nowRfc3339(), nodeName: this.config.nodeName };
    const wasRunning = new Set(this.processes.keys());
    this.stop();
    const running = [...this.processes.values()];
    for (const p of running) p.signal('SIGKILL');
    await Promise.all(running.map((p) => p.exited));
    await this.finished;
    for (const c of [...this.record.initContainers, ...this.record.containers]) {
      if (c.state.kind === 'terminated' && !wasRunning.has(c.name)) continue;
      const startedAt = c.state.kind === 'terminated' ? c.state.startedAt : this.record.nodeLost.at;
      c.state = {
        kind: 'terminated',
        exitCode: 137,
        reason: 'ContainerStatusUnknown',
        message: 'The container could not be located when the pod was terminated',
        startedAt,
        finishedAt: this.record.nodeLost.at,
      };
    }
    this.onChange();
  }

  /** Removes the pod's own folder (logs, emptyDirs); volumes that outlive pods stay. */
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.config.recordEvent?.(this.pod, type, reason, message);
  }

  private stop(): void {
    this.stopping = true;
    for (const wake of this.stopWaiters) wake();
    this.stopWaiters.clear();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      const wake = () => {
        clearTimeout(timer);
        this.stopWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.stopWaiters.add(wake);
    });
  }

  private get restartPolicy(): string {
    return this.pod.spec?.restartPolicy ?? 'Always';
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        this.setUpVolumes();
        await this.populateConfigVolumes();
        break;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        for (const c of this.record.containers)
          if (c.state.kind === 'waiting') c.state = { kind: 'waiting', reason: 'ContainerCreating', message };
        this.onChange();
        await this.sleep(CONFIG_RETRY_MS);
      }
    }
    const specs = this.pod.spec?.initContainers ?? [];
    const sidecars: Promise<boolean>[] = [];
    for (let i = 0; i < specs.length && !this.stopping; i++) {
      const record = this.record.initContainers[i];
      const spec = specs[i];
      if (!record || !spec) continue;
      if (spec.restartPolicy === 'Always') {
        // A sidecar: it keeps running beside the containers; the next init container starts once it has.
        sidecars.push(this.runContainer(spec, record, 'sidecar'));
        while (!record.containerID && !this.stopping) await this.sleep(20);
        continue;
      }
      if (!(await this.runContainer(spec, record, 'init'))) {
        await this.stopSidecars(sidecars);
        return;
      }
    }
    if (this.stopping) return void (await Promise.all(sidecars));
    const containers = this.pod.spec?.containers ?? [];
    await Promise.all(
      containers.map((spec, i) => {
        const record = this.record.containers[i];
        return record ? this.runContainer(spec, record, 'app') : Promise.resolve(true);
      }),
    );
    await this.stopSidecars(sidecars);
  }

  /** The containers are done for good: sidecars get SIGTERM, then SIGKILL after the grace period. */
  private async stopSidecars(sidecars: Promise<boolean>[]): Promise<void> {
    if (sidecars.length === 0) return;
    this.stop();
    const running = [...this.processes.values()];
    for (const p of running) p.signal('SIGTERM');
    const all = Promise.all(running.map((p) => p.exited));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.graceSeconds * 1000);
    });
    if ((await Promise.race([all, grace])) === 'timeout')
      for (const p of this.processes.values()) p.signal('SIGKILL');
    clearTimeout(timer);
    await Promise.all(sidecars);
  }

  private setUpVolumes(): void {
    this.volumes = podVolumeFolders(this.pod, {
      dataDir: this.config.dataDir,
      podDir: this.dir,
      hostPathPrefixes: this.config.hostPathPrefixes,
    });
    for (const v of this.volumes.values()) mkdirSync(v.folder, { recursive: true });
  }

  private async populateConfigVolumes(): Promise<void> {
    for (const v of this.pod.spec?.volumes ?? []) {
      const folder = this.volumes.get(v.name)?.folder;
      if (!folder) continue;
      let data: Record<string, string> | undefined;
      let items: { key: string; path: string }[] | undefined;
      if (v.configMap) {
        data = await this.config.sources.configMapData(this.namespace, v.configMap.name ?? '');
        if (!data && !v.configMap.optional) throw new Error(`configmap "${v.configMap.name}" not found`);
        items = v.configMap.items;
      } else if (v.secret) {
        data = await this.config.sources.secretData(this.namespace, v.secret.secretName ?? '');
        if (!data && !v.secret.optional) throw new Error(`secret "${v.secret.secretName}" not found`);
        items = v.secret.items;
      } else continue;
      const entries = items
        ? items.map((it) => [it.path, data?.[it.key] ?? ''] as const)
        : Object.entries(data ?? {});
      for (const [path, value] of entries) {
        const file = join(folder, path);
        mkdirSync(join(file, '..'), { recursive: true });
        writeFileSync(file, value);
      }
    }
  }

  /** Runs one container until it is done for good; true when it ended successfully. */
  private async runContainer(
    spec: V1Container,
    record: ContainerRecord,
    kind: 'init' | 'sidecar' | 'app',
  ): Promise<boolean> {
    let exit: ProcessExit | undefined;
    const seeded = terminatedFrom(record.state);
    if (seeded) exit = { exitCode: seeded.exitCode };
    for (;;) {
      if (this.stopping) return false;
      if (exit) {
        const policy = this.restartPolicy;
        const restart =
          kind === 'sidecar'
            ? true
            : kind === 'init'
              ? exit.exitCode !== 0 && policy !== 'Never'
              : policy === 'Always' || (policy === 'OnFailure' && exit.exitCode !== 0);
        if (!restart) return exit.exitCode === 0;
        const delay = Math.min(
          this.config.restartBackoffBaseMs * 2 ** record.restartCount,
          this.config.restartBackoffMaxMs,
        );
        record.lastTerminated = terminatedFrom(record.state);
        record.state = {
          kind: 'waiting',
          reason: 'CrashLoopBackOff',
          message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${spec.name} pod=${this.name}_${this.namespace}(${this.uid})`,
        };
        this.onChange();
        await this.sleep(delay);
        if (this.stopping) return false;
        record.restartCount++;
      }
      exit = await this.runOnce(spec, record);
      if (!exit) return false;
    }
  }

  private entrypoint(spec: V1Container): string[] | undefined {
    if (spec.command && spec.command.length > 0) return [...spec.command, ...(spec.args ?? [])];
    const entrypoint = this.config.imageCommands?.(spec.image ?? '');
    return entrypoint ? [...entrypoint, ...(spec.args ?? [])] : undefined;
  }

  private gpuEnv(spec: V1Container): Record<string, string> {
    if (!this.config.managesGpus) return {};
    // Each container takes its own GPUs from the pod's, in container order, as a device plugin would.
    const containers = this.pod.spec?.containers ?? [];
    let offset = 0;
    for (const c of containers) {
      const want = Math.round(
        parseQuantity(c.resources?.limits?.[GPU] ?? c.resources?.requests?.[GPU] ?? '0'),
      );
      if (c === spec) {
        const ids = this.gpuIndices.slice(offset, offset + want).join(',');
        return { CUDA_VISIBLE_DEVICES: ids, NVIDIA_VISIBLE_DEVICES: ids || 'void' };
      }
      offset += want;
    }
    return { CUDA_VISIBLE_DEVICES: '', NVIDIA_VISIBLE_DEVICES: 'void' };
  }

  /** One run of a container; undefined when it could not start and the worker is stopping. */
  private async runOnce(spec: V1Container, record: ContainerRecord): Promise<ProcessExit | undefined> {
    const argv = this.entrypoint(spec);
    if (!argv) {
      record.state = {
        kind: 'waiting',
        reason: 'ErrImagePull',
        message: `image "${spec.image}" has no entrypoint the embedded kubelet can run: it runs containers as local processes, so set the container's command (only images the control plane was given a command for run without one)`,
      };
      this.onChange();
      await new Promise<void>((resolve) => (this.stopping ? resolve() : this.stopWaiters.add(resolve)));
      return undefined;
    }
    const containerDir = join(this.dir, spec.name);
    const termFile = join(containerDir, 'termination-log');
    let env: Record<string, string>;
    let paths: PathMap;
    for (;;) {
      try {
        paths = containerPathMap(spec, this.volumes, termFile, join(containerDir, 'workdir'));
        env = await containerEnv(this.pod, spec, '127.0.0.1', this.config.sources, {
          ...this.config.baseEnv,
          HOSTNAME: this.pod.spec?.hostname ?? this.name,
          ...this.gpuEnv(spec),
          ...(this.config.pathMapVariable ? { [this.config.pathMapVariable]: JSON.stringify(paths) } : {}),
        });
        break;
      } catch (err) {
        record.state = {
          kind: 'waiting',
          reason: 'CreateContainerConfigError',
          message: err instanceof Error ? err.message : String(err),
        };
        this.onChange();
        await this.sleep(CONFIG_RETRY_MS);
        if (this.stopping) return undefined;
      }
    }
    for (const folder of Object.values(paths))
      if (folder !== termFile) mkdirSync(folder, { recursive: true });
    mkdirSync(containerDir, { recursive: true });
    writeFileSync(termFile, '');
    const cwd = spec.workingDir ? mapPath(spec.workingDir, paths) : join(containerDir, 'workdir');
    const logFile = containerLogPath(
      this.config.dataDir,
      this.namespace,
      this.name,
      this.uid,
      spec.name,
      record.restartCount,
    );
    const startedAt = nowRfc3339();
    this.event('Normal', 'Pulled', `Container image "${spec.image}" already present on machine`);
    this.event('Normal', 'Created', `Created container: ${spec.name}`);
    const groups = this.config.processGroups;
    const proc = startProcess({
      argv: expandCommand(argv, env),
      env,
      cwd,
      logFile,
      onGroupStarted: (pgid) => groups?.add(pgid, `${this.namespace}/${this.name}/${spec.name}`),
      onGroupEnded: (pgid) => groups?.remove(pgid),
    });
    this.processes.set(spec.name, proc);
    record.containerID = `btx://${this.uid}/${spec.name}/${record.restartCount}`;
    record.state = { kind: 'running', startedAt };
    this.onChange();
    this.event('Normal', 'Started', `Started container ${spec.name}`);
    log.debug('container started', {
      namespace: this.namespace,
      pod: this.name,
      container: spec.name,
      pid: proc.pid,
    });

    const exit = await proc.exited;
    this.processes.delete(spec.name);
    let message = readHead(termFile, TERMINATION_MESSAGE_MAX_BYTES);
    if (exit.startError) message = exit.startError;
    else if (
      !message.trim() &&
      exit.exitCode !== 0 &&
      spec.terminationMessagePolicy === 'FallbackToLogsOnError'
    ) {
      message = readLogTail(logFile);
    }
    record.state = {
      kind: 'terminated',
      exitCode: exit.exitCode,
      ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
      reason: exit.startError ? 'StartError' : exit.exitCode === 0 ? 'Completed' : 'Error',
      ...(message ? { message } : {}),
      startedAt,
      finishedAt: nowRfc3339(),
    };
    this.onChange();
    log.debug('container exited', {
      namespace: this.namespace,
      pod: this.name,
      container: spec.name,
      exitCode: exit.exitCode,
    });
    return exit;
  }
}
