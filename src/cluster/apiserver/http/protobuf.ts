// Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), which client-go's typed
// clients send: Helm stores releases as Secrets and deletes with DeleteOptions; `kubectl create
// namespace|configmap|secret|serviceaccount|job|deployment` and `kubectl run` send those kinds. The
// envelope is "k8s\0" + runtime.Unknown{typeMeta, raw}; messages are decoded from a table of
// k8s.io/api's generated.proto field numbers for the kinds below. Zero values are omitted (as JSON's
// omitempty does); a non-empty field this table does not know makes the request a 415 rather than
// silently losing data. Other kinds answer 415: send JSON.
import { unsupportedMediaType } from '../apimachinery/errors.js';

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

type Buf = Buffer<ArrayBufferLike>;

interface Field {
  no: number;
  wire: number;
  int: bigint;
  bytes: Buf;
}

function* fields(buf: Buf): Generator<Field> {
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, int: varint(), bytes: Buffer.alloc(0) };
    else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, int: 0n, bytes: buf.subarray(i, i + len) };
      i += len;
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      yield { no, wire, int: 0n, bytes: buf.subarray(i, i + n) };
      i += n;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

/** How a field decodes: scalars, nested messages, maps, and a few Kubernetes special types. */
type Type =
  | 'string'
  | 'int'
  | 'bool'
  | 'time'
  | 'quantity'
  | 'intOrString'
  | 'bytes'
  | { message: Message }
  | { map: 'string' | 'bytes' | 'quantity' };
type Message = Record<number, [name: string, type: Type, repeated?: 'repeated']>;

/** A create body's status is reset by the server; it is skipped, whatever it holds. */
const STATUS: Type = { message: {} };
const QUANTITY: Message = { 1: ['string', 'string'] };
const LABEL_SELECTOR: Message = {
  1: ['matchLabels', { map: 'string' }],
  2: [
    'matchExpressions',
    { message: { 1: ['key', 'string'], 2: ['operator', 'string'], 3: ['values', 'string', 'repeated'] } },
    'repeated',
  ],
};
const OWNER_REFERENCE: Message = {
  1: ['kind', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
  6: ['controller', 'bool'],
  7: ['blockOwnerDeletion', 'bool'],
};
const OBJECT_META: Message = {
  1: ['name', 'string'],
  2: ['generateName', 'string'],
  3: ['namespace', 'string'],
  4: ['selfLink', 'string'],
  5: ['uid', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['generation', 'int'],
  8: ['creationTimestamp', 'time'],
  9: ['deletionTimestamp', 'time'],
  10: ['deletionGracePeriodSeconds', 'int'],
  11: ['labels', { map: 'string' }],
  12: ['annotations', { map: 'string' }],
  13: ['ownerReferences', { message: OWNER_REFERENCE }, 'repeated'],
  14: ['finalizers', 'string', 'repeated'],
};
const OBJECT_FIELD_SELECTOR: Message = { 1: ['apiVersion', 'string'], 2: ['fieldPath', 'string'] };
const KEY_SELECTOR: Message = {
  1: ['localObjectReference', { message: { 1: ['name', 'string'] } }],
  2: ['key', 'string'],
  3: ['optional', 'bool'],
};
const ENV_VAR: Message = {
  1: ['name', 'string'],
  2: ['value', 'string'],
  3: [
    'valueFrom',
    {
      message: {
        1: ['fieldRef', { message: OBJECT_FIELD_SELECTOR }],
        3: ['configMapKeyRef', { message: KEY_SELECTOR }],
        4: ['secretKeyRef', { message: KEY_SELECTOR }],
      },
    },
  ],
};
const CONTAINER: Message = {
  1: ['name', 'string'],
  2: ['image', 'string'],
  3: ['command', 'string', 'repeated'],
  4: ['args', 'string', 'repeated'],
  5: ['workingDir', 'string'],
  6: [
    'ports',
    {
      message: {
        1: ['name', 'string'],
        2: ['hostPort', 'int'],
        3: ['containerPort', 'int'],
        4: ['protocol', 'string'],
        5: ['hostIP', 'string'],
      },
    },
    'repeated',
  ],
  7: ['env', { message: ENV_VAR }, 'repeated'],
  8: ['resources', { message: { 1: ['limits', { map: 'quantity' }], 2: ['requests', { map: 'quantity' }] } }],
  9: [
    'volumeMounts',
    {
      message: {
        1: ['name', 'string'],
        2: ['readOnly', 'bool'],
        3: ['mountPath', 'string'],
        4: ['subPath', 'string'],
      },
    },
    'repeated',
  ],
  13: ['terminationMessagePath', 'string'],
  14: ['imagePullPolicy', 'string'],
  16: ['stdin', 'bool'],
  17: ['stdinOnce', 'bool'],
  18: ['tty', 'bool'],
  20: ['terminationMessagePolicy', 'string'],
};
const POD_SPEC: Message = {
  1: [
    'volumes',
    {
      message: {
        1: ['name', 'string'],
        2: [
          'volumeSource',
          {
            message: {
              2: ['emptyDir', { message: { 1: ['medium', 'string'], 2: ['sizeLimit', 'quantity'] } }],
            },
          },
        ],
      },
    },
    'repeated',
  ],
  2: ['containers', { message: CONTAINER }, 'repeated'],
  3: ['restartPolicy', 'string'],
  4: ['terminationGracePeriodSeconds', 'int'],
  5: ['activeDeadlineSeconds', 'int'],
  6: ['dnsPolicy', 'string'],
  7: ['nodeSelector', { map: 'string' }],
  8: ['serviceAccountName', 'string'],
  9: ['serviceAccount', 'string'],
  10: ['nodeName', 'string'],
  11: ['hostNetwork', 'bool'],
  12: ['hostPID', 'bool'],
  13: ['hostIPC', 'bool'],
  16: ['hostname', 'string'],
  17: ['subdomain', 'string'],
  19: ['schedulerName', 'string'],
  20: ['initContainers', { message: CONTAINER }, 'repeated'],
  24: ['priorityClassName', 'string'],
};
const POD_TEMPLATE: Message = {
  1: ['metadata', { message: OBJECT_META }],
  2: ['spec', { message: POD_SPEC }],
};

const JOB_SPEC: Message = {
  1: ['parallelism', 'int'],
  2: ['completions', 'int'],
  3: ['activeDeadlineSeconds', 'int'],
  4: ['selector', { message: LABEL_SELECTOR }],
  5: ['manualSelector', 'bool'],
  6: ['template', { message: POD_TEMPLATE }],
  7: ['backoffLimit', 'int'],
  8: ['ttlSecondsAfterFinished', 'int'],
  9: ['completionMode', 'string'],
  10: ['suspend', 'bool'],
};
const DEPLOYMENT_SPEC: Message = {
  1: ['replicas', 'int'],
  2: ['selector', { message: LABEL_SELECTOR }],
  3: ['template', { message: POD_TEMPLATE }],
  4: [
    'strategy',
    {
      message: {
        1: ['type', 'string'],
        2: [
          'rollingUpdate',
          { message: { 1: ['maxUnavailable', 'intOrString'], 2: ['maxSurge', 'intOrString'] } },
        ],
      },
    },
  ],
  5: ['minReadySeconds', 'int'],
  6: ['revisionHistoryLimit', 'int'],
  7: ['paused', 'bool'],
  9: ['progressDeadlineSeconds', 'int'],
};
const SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = {
  1: [
    'resourceAttributes',
    {
      message: {
        1: ['namespace', 'string'],
        2: ['verb', 'string'],
        3: ['group', 'string'],
        4: ['version', 'string'],
        5: ['resource', 'string'],
        6: ['subresource', 'string'],
        7: ['name', 'string'],
      },
    },
  ],
  2: ['nonResourceAttributes', { message: { 1: ['path', 'string'], 2: ['verb', 'string'] } }],
};

/** A kind with a spec: metadata, spec and status are fields 1, 2 and 3 in every such k8s.io/api type. */
function withSpec(spec: Message): Message {
  return {
    1: ['metadata', { message: OBJECT_META }],
    2: ['spec', { message: spec }],
    3: ['status', STATUS],
  };
}

const KINDS: Record<string, Message> = {
  'v1/Secret': {
    1: ['metadata', { message: OBJECT_META }],
    2: ['data', { map: 'bytes' }],
    3: ['type', 'string'],
    4: ['stringData', { map: 'string' }],
    5: ['immutable', 'bool'],
  },
  'v1/ConfigMap': {
    1: ['metadata', { message: OBJECT_META }],
    2: ['data', { map: 'string' }],
    3: ['binaryData', { map: 'bytes' }],
    4: ['immutable', 'bool'],
  },
  'v1/Namespace': withSpec({ 1: ['finalizers', 'string', 'repeated'] }),
  'v1/ServiceAccount': {
    1: ['metadata', { message: OBJECT_META }],
    3: ['imagePullSecrets', { message: { 1: ['name', 'string'] } }, 'repeated'],
    4: ['automountServiceAccountToken', 'bool'],
  },
  'v1/Pod': withSpec(POD_SPEC),
  'batch/v1/Job': withSpec(JOB_SPEC),
  'apps/v1/Deployment': withSpec(DEPLOYMENT_SPEC),
  'authorization.k8s.io/v1/SelfSubjectAccessReview': withSpec(SELF_SUBJECT_ACCESS_REVIEW_SPEC),
  // SelfSubjectReview has no spec: its status is field 2.
  'authentication.k8s.io/v1/SelfSubjectReview': {
    1: ['metadata', { message: OBJECT_META }],
    2: ['status', STATUS],
  },
  'v1/DeleteOptions': {
    1: ['gracePeriodSeconds', 'int'],
    2: ['preconditions', { message: { 1: ['uid', 'string'], 2: ['resourceVersion', 'string'] } }],
    3: ['orphanDependents', 'bool'],
    4: ['propagationPolicy', 'string'],
    5: ['dryRun', 'string', 'repeated'],
  },
};
KINDS['meta.k8s.io/v1/DeleteOptions'] = KINDS['v1/DeleteOptions']!;

class Unknown extends Error {}

function scalar(type: Type, f: Field): unknown {
  switch (type) {
    case 'string':
      return f.bytes.toString('utf8');
    case 'int':
      return Number(BigInt.asIntN(64, f.int));
    case 'bool':
      return f.int !== 0n;
    case 'bytes':
      return f.bytes.toString('base64');
    case 'time': {
      const t = decode({ 1: ['seconds', 'int'] }, f.bytes) as { seconds?: number };
      return t.seconds === undefined
        ? ''
        : new Date(t.seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    case 'quantity':
      return (decode(QUANTITY, f.bytes) as { string?: string }).string ?? '0';
    case 'intOrString': {
      const v = decode(
        { 1: ['type', 'int'], 2: ['intVal', 'int'], 3: ['strVal', 'string'] },
        f.bytes,
      ) as Record<string, unknown>;
      return v.type === 1 ? (v.strVal ?? '') : (v.intVal ?? 0);
    }
    default:
      if ('message' in type) return decode(type.message, f.bytes);
      throw new Unknown();
  }
}

function isZero(v: unknown): boolean {
  return (
    v === '' ||
    v === 0 ||
    v === false ||
    (typeof v === 'object' && v !== null && Object.keys(v).length === 0 && !Array.isArray(v))
  );
}

function decode(message: Message, buf: Buf): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields(buf)) {
    const spec = message[f.no];
    if (!spec) {
      if (f.wire === 2 ? f.bytes.length === 0 : f.int === 0n) continue; // an empty field we do not know
      throw new Unknown();
    }
    const [name, type, repeated] = spec;
    if (type === STATUS) continue;
    if (typeof type === 'object' && 'map' in type) {
      const entry = decode(
        { 1: ['key', 'string'], 2: ['value', type.map === 'string' ? 'string' : type.map] },
        f.bytes,
      );
      const map = (out[name] ??= {}) as Record<string, unknown>;
      map[String(entry.key ?? '')] = entry.value ?? (type.map === 'quantity' ? '0' : '');
      continue;
    }
    const value = scalar(type, f);
    if (repeated) ((out[name] ??= []) as unknown[]).push(value);
    else if (!isZero(value) || (typeof type === 'object' && name !== 'securityContext')) out[name] = value;
  }
  return out;
}

/** The JSON object a protobuf body encodes; 415 for kinds or fields not decoded here. */
export function decodeProtobuf(body: Buffer): Record<string, unknown> {
  const unsupported = unsupportedMediaType(['application/json', 'application/yaml']);
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw unsupported;
  try {
    let apiVersion = '';
    let kind = '';
    let raw: Buf = Buffer.alloc(0);
    for (const f of fields(body.subarray(4))) {
      if (f.no === 1) {
        for (const t of fields(f.bytes)) {
          if (t.no === 1) apiVersion = t.bytes.toString('utf8');
          else if (t.no === 2) kind = t.bytes.toString('utf8');
        }
      } else if (f.no === 2) raw = f.bytes;
    }
    const message = KINDS[`${apiVersion}/${kind}`];
    if (!message) throw new Unknown();
    const obj = decode(message, raw);
    // The volume source is inlined in JSON.
    const spec = obj.spec as Record<string, unknown> | undefined;
    for (const podSpec of [
      spec,
      (spec?.template as Record<string, unknown> | undefined)?.spec as Record<string, unknown> | undefined,
    ]) {
      for (const v of (podSpec?.volumes as Record<string, unknown>[] | undefined) ?? []) {
        Object.assign(v, v.volumeSource);
        delete v.volumeSource;
      }
    }
    return kind === 'DeleteOptions' ? obj : { apiVersion, kind, ...obj };
  } catch {
    throw unsupported;
  }
}
