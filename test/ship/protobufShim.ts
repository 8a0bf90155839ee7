// A stop-gap between Helm and the embedded API server: Helm stores releases as Secrets through
// client-go's typed clientset, which sends request bodies as Kubernetes protobuf
// (`application/vnd.kubernetes.protobuf`), and the embedded API server accepts only JSON and YAML
// bodies (it answers 415). This plain-HTTP proxy forwards everything, adds the bearer token, and
// rewrites protobuf bodies of the kinds Helm's storage writes (v1 Secret, ConfigMap) and DeleteOptions
// into JSON. Remove that part once the API server decodes protobuf bodies itself. It also records every
// request, so a test can hold what a client really did against the RBAC the chart grants.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"
const PROTOBUF = 'application/vnd.kubernetes.protobuf';

type Field = { no: number; wire: number; value: bigint | Buffer };

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
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, value: buf.subarray(i, i + len) };
      i += len;
    } else if (wire === 1) {
      yield { no, wire, value: buf.subarray(i, i + 8) };
      i += 8;
    } else if (wire === 5) {
      yield { no, wire, value: buf.subarray(i, i + 4) };
      i += 4;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

const str = (v: bigint | Buffer) => (v as Buffer).toString('utf8');
const bytes = (v: bigint | Buffer) => v as Buffer;
const num = (v: bigint | Buffer) => Number(v as bigint);

function mapEntry(buf: Buffer): [string, Buffer] {
  let key = '';
  let value: Buffer = Buffer.alloc(0);
  for (const f of fields(buf)) {
    if (f.no === 1) key = str(f.value);
    if (f.no === 2) value = bytes(f.value);
  }
  return [key, value];
}

function time(buf: Buffer): string {
  let seconds = 0;
  for (const f of fields(buf)) if (f.no === 1) seconds = num(f.value);
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function objectMeta(buf: Buffer): Record<string, unknown> {
  const meta: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const finalizers: string[] = [];
  const names: Record<number, string> = {
    1: 'name',
    2: 'generateName',
    3: 'namespace',
    5: 'uid',
    6: 'resourceVersion',
  };
  for (const f of fields(buf)) {
    if (names[f.no]) meta[names[f.no]!] = str(f.value);
    else if (f.no === 7) meta.generation = num(f.value);
    else if (f.no === 8) meta.creationTimestamp = time(bytes(f.value));
    else if (f.no === 11) {
      const [k, v] = mapEntry(bytes(f.value));
      labels[k] = v.toString('utf8');
    } else if (f.no === 12) {
      const [k, v] = mapEntry(bytes(f.value));
      annotations[k] = v.toString('utf8');
    } else if (f.no === 14) finalizers.push(str(f.value));
    // selfLink, deletion*, ownerReferences and managedFields: Helm's release objects carry none we need.
  }
  if (Object.keys(labels).length) meta.labels = labels;
  if (Object.keys(annotations).length) meta.annotations = annotations;
  if (finalizers.length) meta.finalizers = finalizers;
  return meta;
}

function decodeObject(kind: string, raw: Buffer): Record<string, unknown> {
  const obj: Record<string, unknown> = { apiVersion: 'v1', kind };
  const data: Record<string, string> = {};
  for (const f of fields(raw)) {
    if (f.no === 1) obj.metadata = objectMeta(bytes(f.value));
    else if (kind === 'Secret' && f.no === 2) {
      const [k, v] = mapEntry(bytes(f.value));
      data[k] = v.toString('base64');
    } else if (kind === 'Secret' && f.no === 3) obj.type = str(f.value);
    else if (kind === 'Secret' && f.no === 5) obj.immutable = num(f.value) !== 0;
    else if (kind === 'ConfigMap' && f.no === 2) {
      const [k, v] = mapEntry(bytes(f.value));
      data[k] = v.toString('utf8');
    } else if (kind === 'ConfigMap' && f.no === 4) obj.immutable = num(f.value) !== 0;
  }
  if (Object.keys(data).length) obj.data = data;
  return obj;
}

/** The JSON of a protobuf-encoded body, or undefined for a DeleteOptions body (dropped: defaults apply). */
export function protobufToJson(body: Buffer): Record<string, unknown> | undefined {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new Error('not a Kubernetes protobuf body');
  let kind = '';
  let raw: Buffer = Buffer.alloc(0);
  for (const f of fields(body.subarray(4))) {
    if (f.no === 1) for (const t of fields(bytes(f.value))) if (t.no === 2) kind = str(t.value);
    if (f.no === 2) raw = bytes(f.value);
  }
  if (kind === 'DeleteOptions') return undefined;
  if (kind !== 'Secret' && kind !== 'ConfigMap') throw new Error(`the shim cannot decode protobuf ${kind}`);
  return decodeObject(kind, raw);
}

export interface Shim {
  url: string;
  /** Bodies rewritten so far (a test can show the shim was needed). */
  rewritten: number;
  /** Every request forwarded, as `METHOD /path?query` (what a client asked the API server for). */
  requests: string[];
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 and forward to the API server's plain-HTTP `target` with `token`. */
export async function startProtobufShim(target: string, token: string): Promise<Shim> {
  const upstream = new URL(target);
  const shim: Shim = { url: '', rewritten: 0, requests: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      shim.requests.push(`${req.method} ${req.url}`);
      let body = Buffer.concat(chunks);
      const headers = { ...req.headers, authorization: `Bearer ${token}`, host: upstream.host };
      if ((req.headers['content-type'] ?? '').startsWith(PROTOBUF) && body.length > 0) {
        try {
          const json = protobufToJson(body);
          body = Buffer.from(json === undefined ? '' : JSON.stringify(json));
          headers['content-type'] = 'application/json';
          shim.rewritten++;
        } catch (err) {
          res.writeHead(415, { 'content-type': 'text/plain' });
          res.end(`protobuf shim: ${(err as Error).message}`);
          return;
        }
      }
      headers['content-length'] = String(body.length);
      const up = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          res.flushHeaders(); // a watch sends headers long before its first event
          r.pipe(res);
        },
      );
      up.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`protobuf shim: ${err.message}`);
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  shim.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  shim.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return shim;
}
