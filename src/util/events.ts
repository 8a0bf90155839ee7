// The one core/v1 Event poster, for the operator (transitions of a BTXRun) and the embedded kubelet
// and Job controller (pod and Job lifecycle), so `kubectl describe` tells the story. Fire and
// forget, as client-go's recorder: a reconcile never waits on an Event, and one that cannot be
// written is logged and dropped, never retried into a loop. `flush()` waits for those in flight
// (the operator's clean shutdown).
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event, KubernetesObject } from '@kubernetes/client-node';
import { errorFields, log } from './log.js';

/** Kubernetes caps an Event's message at 1 KiB in practice (kubectl shows it whole below that). */
const MAX_MESSAGE_LENGTH = 1024;

export interface EventSource {
  /** source.component and reportingComponent, e.g. kubelet or btx-operator. */
  component: string;
  /** The node (kubelet). */
  host?: string;
  /** reportingInstance: which replica or node posted it. */
  instance?: string;
}

export class EventRecorder {
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly source: EventSource,
    /** Called once per Event posted (the operator counts its API writes). */
    private readonly onPost: () => void = () => undefined,
  ) {}

  emit(
    obj: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    component?: string,
  ): void {
    const namespace = obj.metadata?.namespace ?? 'default';
    const name = obj.metadata?.name ?? '';
    // Times go as RFC 3339 strings without fractions (client-node passes strings through its Date fields).
    const now = `${new Date().toISOString().slice(0, 19)}Z`;
    const reporter = component ?? this.source.component;
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion ?? 'v1',
        // Pods from a list carry no kind; every other caller passes objects with kind set.
        kind: obj.kind ?? 'Pod',
        name,
        namespace,
        ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}),
        ...(obj.metadata?.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
      },
      reason,
      message: message.slice(0, MAX_MESSAGE_LENGTH),
      type,
      action: reason,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: reporter, ...(this.source.host ? { host: this.source.host } : {}) },
      reportingComponent: reporter,
      reportingInstance: this.source.instance ?? this.source.host ?? '',
    } as unknown as CoreV1Event;
    this.onPost();
    const sent = this.core.createNamespacedEvent({ namespace, body }).then(
      () => undefined,
      (err: unknown) => {
        log.warn('event not recorded', { namespace, name, event: reason, ...errorFields(err) });
      },
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }

  /** Resolves when every Event emitted so far has been sent (or failed). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}
