// Pod status as the kubelet reports it, computed from what the kubelet knows about its processes.
// Pure: the same record and previous status give the same status (transition times are kept
// while a condition's status does not change), so writing it is idempotent and level-triggered.
import type {
  V1ContainerState,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
} from '@kubernetes/client-node';

export const POD_IP = '127.0.0.1';

export type ContainerState =
  { kind: 'waiting'; reason: string; message?: string } | { kind: 'running'; startedAt: string } | Terminated;

export interface Terminated {
  kind: 'terminated';
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
}

export interface ContainerRecord {
  /** An init container with restartPolicy Always: it runs beside the containers. */
  sidecar?: boolean;
  name: string;
  image: string;
  state: ContainerState;
  lastTerminated?: Terminated;
  restartCount: number;
  containerID?: string;
}

export interface PodRecord {
  initContainers: ContainerRecord[];
  containers: ContainerRecord[];
  startTime: string;
  /** Set by fault injection: the node went away under the pod. */
  nodeLost?: { at: string; nodeName: string };
  /** The pod is being deleted: once its containers are stopped it is Failed (Succeeded if all exited 0). */
  deleted?: boolean;
  /** spec.activeDeadlineSeconds passed: the kubelet stopped the pod. */
  deadlineExceeded?: boolean;
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

function succeeded(c: ContainerRecord): boolean {
  return c.state.kind === 'terminated' && c.state.exitCode === 0;
}

/** The kubelet's getPhase: init progress first, then what the app containers are doing. */
export function podPhase(record: PodRecord, restartPolicy: string): PodPhase {
  if (record.nodeLost || record.deadlineExceeded) return 'Failed';
  const anyRunning = [...record.initContainers, ...record.containers].some((c) => c.state.kind === 'running');
  if (record.deleted && !anyRunning) {
    const all = [...record.initContainers.filter((c) => !c.sidecar), ...record.containers];
    return all.every(succeeded) ? 'Succeeded' : 'Failed';
  }
  for (const c of record.initContainers) {
    // A sidecar has done its init part once it has started.
    if (c.sidecar ? c.containerID !== undefined : succeeded(c)) continue;
    if (c.state.kind === 'terminated' && restartPolicy === 'Never') return 'Failed';
    return 'Pending';
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let ok = 0;
  for (const c of record.containers) {
    if (c.state.kind === 'running') running++;
    else if (c.state.kind === 'terminated') {
      stopped++;
      if (c.state.exitCode === 0) ok++;
    } else if (c.lastTerminated) stopped++;
    else waiting++;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  // The containers are done but a sidecar is still stopping: not terminal until it has.
  if (record.initContainers.some((c) => c.sidecar && c.state.kind === 'running')) return 'Running';
  if (stopped === 0) return 'Pending';
  if (restartPolicy === 'Always') return 'Running';
  if (stopped === ok) return 'Succeeded';
  if (restartPolicy === 'Never') return 'Failed';
  return 'Running';
}

function apiState(s: ContainerState | undefined): V1ContainerState {
  if (!s) return {};
  switch (s.kind) {
    case 'waiting':
      return { waiting: { reason: s.reason, ...(s.message ? { message: s.message } : {}) } };
    case 'running':
      return { running: { startedAt: new Date(s.startedAt) } };
    case 'terminated':
      return {
        terminated: {
          exitCode: s.exitCode,
          ...(s.signal !== undefined ? { signal: s.signal } : {}),
          reason: s.reason,
          ...(s.message ? { message: s.message } : {}),
          startedAt: new Date(s.startedAt),
          finishedAt: new Date(s.finishedAt),
        },
      };
  }
}

function containerStatus(c: ContainerRecord, podTerminal: boolean): V1ContainerStatus {
  const started = c.state.kind === 'running';
  return {
    name: c.name,
    image: c.image,
    imageID: `btx-local://${c.image}`,
    ...(c.containerID ? { containerID: c.containerID } : {}),
    ready: started && !podTerminal,
    started,
    restartCount: c.restartCount,
    state: apiState(c.state),
    lastState: apiState(c.lastTerminated),
  };
}

function condition(
  type: string,
  ok: boolean,
  previous: V1PodCondition[] | undefined,
  now: string,
  reason?: string,
  message?: string,
): V1PodCondition {
  const status = ok ? 'True' : 'False';
  const before = previous?.find((c) => c.type === type);
  const since =
    before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : now;
  return {
    type,
    status,
    lastTransitionTime: new Date(since),
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
  };
}

/** The status the kubelet writes for a pod it runs (everything but the scheduler's own condition). */
export function computePodStatus(pod: V1Pod, record: PodRecord, now: string): V1PodStatus {
  const previous = pod.status?.conditions;
  const restartPolicy = pod.spec?.restartPolicy ?? 'Always';
  const phase = podPhase(record, restartPolicy);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const byName = (a: ContainerRecord, b: ContainerRecord) => a.name.localeCompare(b.name);

  const unfinishedInit = record.initContainers
    .filter((c) => (c.sidecar ? c.containerID === undefined : !succeeded(c)))
    .map((c) => c.name);
  const initialized = unfinishedInit.length === 0;
  const unready = record.containers.filter((c) => c.state.kind !== 'running').map((c) => c.name);
  const ready = !terminal && initialized && unready.length === 0;
  const notReadyReason = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const notReadyMessage = terminal ? undefined : `containers with unready status: [${unready.join(' ')}]`;

  const conditions: V1PodCondition[] = [
    condition('PodReadyToStartContainers', !terminal, previous, now),
    initialized
      ? condition('Initialized', true, previous, now, terminal ? 'PodCompleted' : undefined)
      : condition(
          'Initialized',
          false,
          previous,
          now,
          'ContainersNotInitialized',
          `containers with incomplete status: [${unfinishedInit.join(' ')}]`,
        ),
    ready
      ? condition('Ready', true, previous, now)
      : condition('Ready', false, previous, now, notReadyReason, notReadyMessage),
    ready
      ? condition('ContainersReady', true, previous, now)
      : condition('ContainersReady', false, previous, now, notReadyReason, notReadyMessage),
    condition('PodScheduled', true, previous, now),
  ];
  if (record.nodeLost) {
    conditions.push(
      condition(
        'DisruptionTarget',
        true,
        previous,
        record.nodeLost.at,
        'DeletionByTaintManager',
        'Taint manager: deleting due to NoExecute taint',
      ),
    );
  }

  const status: V1PodStatus = {
    phase,
    conditions,
    hostIP: POD_IP,
    hostIPs: [{ ip: POD_IP }],
    podIP: POD_IP,
    podIPs: [{ ip: POD_IP }],
    startTime: new Date(record.startTime),
    qosClass: pod.status?.qosClass ?? 'BestEffort',
    containerStatuses: [...record.containers].sort(byName).map((c) => containerStatus(c, terminal)),
  };
  if (record.initContainers.length > 0) {
    status.initContainerStatuses = record.initContainers.map((c) => containerStatus(c, terminal));
  }
  if (record.deadlineExceeded) {
    status.reason = 'DeadlineExceeded';
    status.message = 'Pod was active on the node longer than the specified deadline';
  }
  if (record.nodeLost) {
    status.reason = 'NodeLost';
    status.message = `Node ${record.nodeLost.nodeName} which was running pod ${pod.metadata?.name} is unresponsive`;
  }
  return status;
}

const ISO_TIME = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$/;

/**
 * Wire JSON: sorted keys (to compare statuses regardless of field order) and RFC 3339 times at
 * second precision, as the API serialises metav1.Time (client-node types them as Date).
 */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'string') {
      const m = ISO_TIME.exec(v);
      return m ? `${m[1]}Z` : v;
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
      );
    }
    return v;
  });
}

/** The value as plain wire JSON (see {@link stableJson}). */
export function toWire<T>(value: T): Record<string, unknown> {
  return JSON.parse(stableJson(value)) as Record<string, unknown>;
}

/** Now, at the API's second precision. */
export function nowRfc3339(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
