// Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the kinds client-go
// typed clients send that way in practice: Helm stores releases as Secrets (or ConfigMaps) and deletes
// them with DeleteOptions; `kubectl create namespace|configmap|secret|serviceaccount` sends those kinds. The envelope is "k8s\0" + runtime.Unknown{typeMeta, raw}; the message
// field numbers follow k8s.io/api's generated.proto. Other kinds answer 415.
import { unsupportedMediaType } from './errors.js';

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

interface Field {
  no: number;
  wire: number;
  int: bigint;
  bytes: Buffer<ArrayBufferLike>;
}

function* fields(buf: Buffer): Generator<Field> {
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

const text = (f: Field): string => f.bytes.toString('utf8');
const int = (f: Field): number => Number(BigInt.asIntN(64, f.int));

function mapEntry(buf: Buffer): [string, Buffer] {
  let key = '';
  let value: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  for (const f of fields(buf)) {
    if (f.no === 1) key = text(f);
    else if (f.no === 2) value = f.bytes;
  }
  return [key, value];
}

function time(buf: Buffer): string {
  let seconds = 0;
  for (const f of fields(buf)) if (f.no === 1) seconds = int(f);
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function ownerReference(buf: Buffer): Record<string, unknown> {
  const ref: Record<string, unknown> = {};
  for (const f of fields(buf)) {
    if (f.no === 1) ref.kind = text(f);
    else if (f.no === 3) ref.name = text(f);
    else if (f.no === 4) ref.uid = text(f);
    else if (f.no === 5) ref.apiVersion = text(f);
    else if (f.no === 6) ref.controller = f.int !== 0n;
    else if (f.no === 7) ref.blockOwnerDeletion = f.int !== 0n;
  }
  return ref;
}

function objectMeta(buf: Buffer): Record<string, unknown> {
  const meta: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const finalizers: string[] = [];
  const owners: Record<string, unknown>[] = [];
  const strings: Record<number, string> = {
    1: 'name',
    2: 'generateName',
    3: 'namespace',
    5: 'uid',
    6: 'resourceVersion',
  };
  for (const f of fields(buf)) {
    if (strings[f.no]) meta[strings[f.no]!] = text(f);
    else if (f.no === 7) meta.generation = int(f);
    else if (f.no === 8) meta.creationTimestamp = time(f.bytes);
    else if (f.no === 9) meta.deletionTimestamp = time(f.bytes);
    else if (f.no === 10) meta.deletionGracePeriodSeconds = int(f);
    else if (f.no === 11 || f.no === 12) {
      const [k, v] = mapEntry(f.bytes);
      (f.no === 11 ? labels : annotations)[k] = v.toString('utf8');
    } else if (f.no === 13) owners.push(ownerReference(f.bytes));
    else if (f.no === 14) finalizers.push(text(f));
  }
  if (Object.keys(labels).length) meta.labels = labels;
  if (Object.keys(annotations).length) meta.annotations = annotations;
  if (finalizers.length) meta.finalizers = finalizers;
  if (owners.length) meta.ownerReferences = owners;
  return meta;
}

function dataMap(into: Record<string, string>, f: Field, encoding: 'base64' | 'utf8'): void {
  const [k, v] = mapEntry(f.bytes);
  into[k] = v.toString(encoding);
}

function secret(raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind: 'Secret' };
  const data: Record<string, string> = {};
  const stringData: Record<string, string> = {};
  for (const f of fields(raw)) {
    if (f.no === 1) obj.metadata = objectMeta(f.bytes);
    else if (f.no === 2) dataMap(data, f, 'base64');
    else if (f.no === 3) obj.type = text(f);
    else if (f.no === 4) dataMap(stringData, f, 'utf8');
    else if (f.no === 5) obj.immutable = f.int !== 0n;
  }
  if (Object.keys(data).length) obj.data = data;
  if (Object.keys(stringData).length) obj.stringData = stringData;
  return obj;
}

function configMap(raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind: 'ConfigMap' };
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  for (const f of fields(raw)) {
    if (f.no === 1) obj.metadata = objectMeta(f.bytes);
    else if (f.no === 2) dataMap(data, f, 'utf8');
    else if (f.no === 3) dataMap(binaryData, f, 'base64');
    else if (f.no === 4) obj.immutable = f.int !== 0n;
  }
  if (Object.keys(data).length) obj.data = data;
  if (Object.keys(binaryData).length) obj.binaryData = binaryData;
  return obj;
}

function deleteOptions(raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
  const dryRun: string[] = [];
  for (const f of fields(raw)) {
    if (f.no === 1) obj.gracePeriodSeconds = int(f);
    else if (f.no === 2) {
      const pre: Record<string, string> = {};
      for (const p of fields(f.bytes)) pre[p.no === 1 ? 'uid' : 'resourceVersion'] = text(p);
      obj.preconditions = pre;
    } else if (f.no === 3) obj.orphanDependents = f.int !== 0n;
    else if (f.no === 4) obj.propagationPolicy = text(f);
    else if (f.no === 5) dryRun.push(text(f));
  }
  if (dryRun.length) obj.dryRun = dryRun;
  return obj;
}

function namespace(raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind: 'Namespace' };
  for (const f of fields(raw)) {
    if (f.no === 1) obj.metadata = objectMeta(f.bytes);
    else if (f.no === 2) {
      const finalizers: string[] = [];
      for (const x of fields(f.bytes)) if (x.no === 1) finalizers.push(text(x));
      obj.spec = finalizers.length ? { finalizers } : {};
    }
  }
  return obj;
}

function serviceAccount(raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind: 'ServiceAccount' };
  const pullSecrets: { name: string }[] = [];
  for (const f of fields(raw)) {
    if (f.no === 1) obj.metadata = objectMeta(f.bytes);
    else if (f.no === 3) {
      for (const x of fields(f.bytes)) if (x.no === 1) pullSecrets.push({ name: text(x) });
    } else if (f.no === 4) obj.automountServiceAccountToken = f.int !== 0n;
  }
  if (pullSecrets.length) obj.imagePullSecrets = pullSecrets;
  return obj;
}

const DECODERS: Record<string, (raw: Buffer) => Record<string, unknown>> = {
  'v1/Secret': secret,
  'v1/ConfigMap': configMap,
  'v1/Namespace': namespace,
  'v1/ServiceAccount': serviceAccount,
  'v1/DeleteOptions': deleteOptions,
  'meta.k8s.io/v1/DeleteOptions': deleteOptions,
};

/** The JSON object a protobuf body encodes; 415 for kinds not decoded here. */
export function decodeProtobuf(body: Buffer): Record<string, unknown> {
  const unsupported = unsupportedMediaType(['application/json', 'application/yaml']);
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw unsupported;
  let apiVersion = '';
  let kind = '';
  let raw: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  try {
    for (const f of fields(body.subarray(4))) {
      if (f.no === 1) {
        for (const t of fields(f.bytes)) {
          if (t.no === 1) apiVersion = text(t);
          else if (t.no === 2) kind = text(t);
        }
      } else if (f.no === 2) raw = f.bytes;
    }
    const decode = DECODERS[`${apiVersion}/${kind}`];
    if (!decode) throw unsupported;
    return decode(raw);
  } catch (err) {
    if (err === unsupported) throw err;
    throw unsupported;
  }
}
