// core/v1 Events from the embedded kubelet and controllers, so `kubectl describe` tells the story.
// Fire and forget: an event that cannot be written is logged and dropped, as client-go's recorder does.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event, KubernetesObject } from '@kubernetes/client-node';
import { log, errorFields } from '../util/log.js';
import { nowRfc3339 } from './kubelet/podStatus.js';

export class EventRecorder {
  constructor(
    private readonly core: CoreV1Api,
    private readonly source: { component: string; host?: string },
  ) {}

  emit(
    obj: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    component?: string,
  ): void {
    const namespace = obj.metadata?.namespace ?? 'default';
    const now = nowRfc3339();
    // Times go as RFC 3339 strings (client-node passes strings through its Date fields).
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata?.name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion ?? 'v1',
        // Pods from a list carry no kind; every other caller passes objects with kind set.
        kind: obj.kind ?? 'Pod',
        name: obj.metadata?.name,
        namespace,
        uid: obj.metadata?.uid,
        resourceVersion: obj.metadata?.resourceVersion,
      },
      reason,
      message,
      type,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: {
        component: component ?? this.source.component,
        ...(this.source.host ? { host: this.source.host } : {}),
      },
      reportingComponent: component ?? this.source.component,
      reportingInstance: this.source.host ?? '',
    } as unknown as CoreV1Event;
    this.core.createNamespacedEvent({ namespace, body }).catch((err: unknown) => {
      log.debug('event not recorded', { namespace, name: obj.metadata?.name, reason, ...errorFields(err) });
    });
  }
}
