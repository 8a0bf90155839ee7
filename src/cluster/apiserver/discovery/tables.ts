// Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` answers a meta.k8s.io/v1
// Table with the columns kubectl shows: pods, jobs, namespaces, events, CRDs, a CRD's
// additionalPrinterColumns, and Name/Age for everything else.
import { evaluate } from './jsonpath.js';
import { ageOf, humanDuration, isObject, type KObject } from '../apimachinery/meta.js';
import type { PrinterColumn, ResourceInfo } from '../registry/resources.js';
import { fromView } from '../registry/conversion.js';

export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

type Cell = string | number | boolean | null;

interface Printer {
  columns: TableColumn[];
  cells(obj: KObject): Cell[];
}

const col = (name: string, type: string, description: string, priority = 0, format = ''): TableColumn => ({
  name,
  type,
  format,
  description,
  priority,
});

const NAME = col(
  'Name',
  'string',
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  0,
  'name',
);
const AGE = col(
  'Age',
  'string',
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata',
);

type O = Record<string, unknown>;
const o = (v: unknown): O => (isObject(v) ? v : {});
const arr = (v: unknown): O[] => (Array.isArray(v) ? v.filter(isObject) : []);

function podStatusReason(pod: KObject): string {
  const status = o(pod.status);
  let reason = (status.reason as string) || (status.phase as string) || 'Unknown';
  const statuses = arr(status.containerStatuses);
  for (const cs of [...statuses].reverse()) {
    const state = o(cs.state);
    if (isObject(state.waiting) && state.waiting.reason) reason = state.waiting.reason as string;
    else if (isObject(state.terminated)) {
      const t = state.terminated;
      reason = (t.reason as string) || (t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`);
    }
  }
  const init = arr(status.initContainerStatuses);
  init.forEach((cs, i) => {
    const state = o(cs.state);
    if (isObject(state.terminated) && state.terminated.exitCode !== 0)
      reason = `Init:${state.terminated.reason || 'Error'}`;
    else if (isObject(state.waiting) && state.waiting.reason && state.waiting.reason !== 'PodInitializing')
      reason = `Init:${state.waiting.reason}`;
    else if (!isObject(state.terminated)) reason = `Init:${i}/${arr(o(pod.spec).initContainers).length}`;
  });
  if (pod.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return reason;
}

const PRINTERS: Record<string, Printer> = {
  '/pods': {
    columns: [
      NAME,
      col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'string', 'The aggregate status of the containers in this pod.'),
      col(
        'Restarts',
        'string',
        'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.',
      ),
      AGE,
      col(
        'IP',
        'string',
        'IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.',
        1,
      ),
      col('Node', 'string', 'NodeName is a request to schedule this pod onto a specific node.', 1),
      col(
        'Nominated Node',
        'string',
        'nominatedNodeName is set only when this pod preempts other pods on the node.',
        1,
      ),
      col(
        'Readiness Gates',
        'string',
        'If specified, all readiness gates will be evaluated for pod readiness.',
        1,
      ),
    ],
    cells(pod) {
      const status = o(pod.status);
      const statuses = arr(status.containerStatuses);
      const total = arr(o(pod.spec).containers).length;
      const ready = statuses.filter((c) => c.ready === true).length;
      const restarts = statuses.reduce(
        (n, c) => n + (typeof c.restartCount === 'number' ? c.restartCount : 0),
        0,
      );
      return [
        pod.metadata.name!,
        `${ready}/${total}`,
        podStatusReason(pod),
        String(restarts),
        ageOf(pod.metadata.creationTimestamp),
        (status.podIP as string) || '<none>',
        (o(pod.spec).nodeName as string) || '<none>',
        (status.nominatedNodeName as string) || '<none>',
        '<none>',
      ];
    },
  },
  'batch/jobs': {
    columns: [
      NAME,
      col('Status', 'string', 'Status of the job.'),
      col('Completions', 'string', 'The completion status of the job.'),
      col('Duration', 'string', 'Time required to complete the job.'),
      AGE,
      col('Containers', 'string', 'Names of each container in the template.', 1),
      col('Images', 'string', 'Images referenced by each container in the template.', 1),
      col('Selector', 'string', 'Label selector used to select the job pods.', 1),
    ],
    cells(job) {
      const spec = o(job.spec);
      const status = o(job.status);
      const conds = arr(status.conditions).filter((c) => c.status === 'True');
      const has = (t: string): boolean => conds.some((c) => c.type === t);
      const state = has('Complete')
        ? 'Complete'
        : has('Failed')
          ? 'Failed'
          : has('FailureTarget')
            ? 'FailureTarget'
            : has('SuccessCriteriaMet')
              ? 'SuccessCriteriaMet'
              : spec.suspend
                ? 'Suspended'
                : 'Running';
      const completions =
        typeof spec.completions === 'number'
          ? `${status.succeeded ?? 0}/${spec.completions}`
          : `${status.succeeded ?? 0}/1 of ${spec.parallelism ?? 1}`;
      const start = status.startTime as string | undefined;
      const end = status.completionTime as string | undefined;
      const duration = start ? humanDuration((end ? Date.parse(end) : Date.now()) - Date.parse(start)) : '';
      const containers = arr(o(o(spec.template).spec).containers);
      const selector = Object.entries(o(o(spec.selector).matchLabels))
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(',');
      return [
        job.metadata.name!,
        state,
        completions,
        duration,
        ageOf(job.metadata.creationTimestamp),
        containers.map((c) => c.name).join(','),
        containers.map((c) => c.image).join(','),
        selector,
      ];
    },
  },
  '/namespaces': {
    columns: [NAME, col('Status', 'string', 'The status of the namespace'), AGE],
    cells: (ns) => [
      ns.metadata.name!,
      (o(ns.status).phase as string) ?? '',
      ageOf(ns.metadata.creationTimestamp),
    ],
  },
  '/configmaps': {
    columns: [NAME, col('Data', 'string', 'Data contains the configuration data.'), AGE],
    cells: (cm) => [
      cm.metadata.name!,
      Object.keys(o(cm.data)).length + Object.keys(o(cm.binaryData)).length,
      ageOf(cm.metadata.creationTimestamp),
    ],
  },
  '/secrets': {
    columns: [
      NAME,
      col('Type', 'string', 'The type of the secret'),
      col('Data', 'string', 'The number of data items'),
      AGE,
    ],
    cells: (s) => [
      s.metadata.name!,
      (s.type as string) ?? 'Opaque',
      Object.keys(o(s.data)).length,
      ageOf(s.metadata.creationTimestamp),
    ],
  },
  '/events': {
    columns: [
      col('Last Seen', 'string', 'Time of the latest occurrence'),
      col('Type', 'string', 'Type of this event'),
      col(
        'Reason',
        'string',
        'This should be a short, machine understandable string that gives the reason for this event being generated.',
      ),
      col('Object', 'string', 'The object that this event is about.'),
      col('Message', 'string', 'A human-readable description of the status of this operation.'),
    ],
    cells(ev) {
      const io = o(ev.involvedObject);
      const last = (ev.lastTimestamp as string) || (ev.eventTime as string) || ev.metadata.creationTimestamp;
      return [
        ageOf(last),
        (ev.type as string) ?? '',
        (ev.reason as string) ?? '',
        `${String(io.kind ?? '').toLowerCase()}/${String(io.name ?? '')}`,
        (ev.message as string) ?? '',
      ];
    },
  },
  'apiextensions.k8s.io/customresourcedefinitions': {
    columns: [
      NAME,
      col(
        'Created At',
        'date',
        'CreationTimestamp is a timestamp representing the server time when this object was created.',
      ),
    ],
    cells: (crd) => [crd.metadata.name!, crd.metadata.creationTimestamp ?? null],
  },
  '/nodes': {
    columns: [
      NAME,
      col('Status', 'string', 'The status of the node'),
      col('Roles', 'string', 'The roles of the node'),
      AGE,
      col('Version', 'string', 'Kubelet Version reported by the node.'),
    ],
    cells(node) {
      const ready = arr(o(node.status).conditions).find((c) => c.type === 'Ready');
      const status = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
      const unschedulable = o(node.spec).unschedulable === true ? ',SchedulingDisabled' : '';
      const roles = Object.keys(node.metadata.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length))
        .join(',');
      const version = (o(o(node.status).nodeInfo).kubeletVersion as string) ?? '';
      return [
        node.metadata.name!,
        status + unschedulable,
        roles || '<none>',
        ageOf(node.metadata.creationTimestamp),
        version,
      ];
    },
  },
  'coordination.k8s.io/leases': {
    columns: [NAME, col('Holder', 'string', 'The holder of the lease.'), AGE],
    cells: (l) => [
      l.metadata.name!,
      (o(l.spec).holderIdentity as string) ?? '',
      ageOf(l.metadata.creationTimestamp),
    ],
  },
  'apps/deployments': {
    columns: [
      NAME,
      col('Ready', 'string', 'Number of the pod with ready state'),
      col(
        'Up-to-date',
        'string',
        'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
      ),
      col(
        'Available',
        'string',
        'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
      ),
      AGE,
    ],
    cells(d) {
      const s = o(d.status);
      return [
        d.metadata.name!,
        `${s.readyReplicas ?? 0}/${o(d.spec).replicas ?? 0}`,
        Number(s.updatedReplicas ?? 0),
        Number(s.availableReplicas ?? 0),
        ageOf(d.metadata.creationTimestamp),
      ];
    },
  },
};

function cellFor(column: PrinterColumn, obj: KObject): Cell {
  const results = evaluate(column.jsonPath, obj);
  if (results.length === 0) return null;
  const value = results[0];
  switch (column.type) {
    case 'date':
      return typeof value === 'string'
        ? Number.isNaN(Date.parse(value))
          ? '<invalid>'
          : ageOf(value)
        : null;
    case 'integer':
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    default:
      return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

function customPrinter(info: ResourceInfo, version: string): Printer {
  const defined = info.printerColumns?.[version] ?? [];
  if (defined.length === 0)
    return {
      columns: [NAME, AGE],
      cells: (obj) => [obj.metadata.name!, ageOf(obj.metadata.creationTimestamp)],
    };
  return {
    columns: [
      NAME,
      ...defined.map((c) => col(c.name, c.type, c.description ?? '', c.priority ?? 0, c.format ?? '')),
    ],
    cells: (obj) => [obj.metadata.name!, ...defined.map((c) => cellFor(c, obj))],
  };
}

function printerFor(info: ResourceInfo, version: string): Printer {
  if (!info.builtin) return customPrinter(info, version);
  return (
    PRINTERS[`${info.group}/${info.resource}`] ??
    (info.group === 'events.k8s.io'
      ? // Rows are events.k8s.io views; the columns read the core form.
        {
          columns: PRINTERS['/events']!.columns,
          cells: (obj: KObject) => PRINTERS['/events']!.cells(fromView(info, obj)),
        }
      : undefined) ?? {
      columns: [NAME, AGE],
      cells: (obj: KObject) => [obj.metadata.name!, ageOf(obj.metadata.creationTimestamp)],
    }
  );
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function rowObject(obj: KObject, include: IncludeObject): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return obj;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

export function toTable(
  info: ResourceInfo,
  version: string,
  objects: KObject[],
  listMeta: Record<string, unknown>,
  include: IncludeObject,
  noHeaders = false,
): Record<string, unknown> {
  const printer = printerFor(info, version);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: noHeaders ? null : printer.columns,
    rows: objects.map((obj) => {
      const row: Record<string, unknown> = { cells: printer.cells(obj) };
      const ro = rowObject(obj, include);
      if (ro !== undefined) row.object = ro;
      return row;
    }),
  };
}
