// /openapi/v2 in the protobuf form kubectl asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`,
// gnostic's openapi_v2.Document). kubectl downloads it to validate a manifest whose kind the OpenAPI v3
// documents do not know; answered 406, `kubectl apply` of a wrong kind stops at "failed to download
// openapi" instead of reaching "no matches for kind". The JSON document of openapi.ts is encoded field
// by field from gnostic's OpenAPIv2.proto: vendor extensions (`x-...`) and `default`/`enum`/`example`
// values travel as YAML text in `Any.yaml` (what kube-openapi reads), and JSON-schema keys Swagger 2.0
// has no field for (`anyOf`, `oneOf`, `not`, `nullable`) are left out, as the real server's v2
// conversion of CRD schemas leaves them out.
import { stringify as toYaml } from 'yaml';
import { isObject } from '../apimachinery/meta.js';

export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';

/** Whether an Accept header asks for the protobuf form (alone or before any JSON type). */
export function wantsOpenApiV2Protobuf(accept: string | undefined): boolean {
  for (const part of (accept ?? '').split(',')) {
    const type = part.split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json' || type === '*/*' || type === 'application/*') return false;
    if (type.startsWith('application/com.github.proto-openapi.spec.v2')) return true;
  }
  return false;
}

/** A protobuf message being written: fields appended in the order they are given. */
class Writer {
  private readonly parts: Buffer[] = [];

  private varint(n: number): void {
    const bytes: number[] = [];
    let v = BigInt(n);
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      bytes.push(b);
    } while (v !== 0n);
    this.parts.push(Buffer.from(bytes));
  }

  private key(no: number, wire: number): void {
    this.varint((no << 3) | wire);
  }

  bytes(no: number, value: Buffer): void {
    this.key(no, 2);
    this.varint(value.length);
    this.parts.push(value);
  }

  string(no: number, value: unknown): void {
    if (typeof value === 'string' && value !== '') this.bytes(no, Buffer.from(value, 'utf8'));
  }

  strings(no: number, value: unknown): void {
    if (Array.isArray(value))
      for (const s of value) if (typeof s === 'string') this.bytes(no, Buffer.from(s));
  }

  bool(no: number, value: unknown): void {
    if (value === true) {
      this.key(no, 0);
      this.varint(1);
    }
  }

  /** A bool inside a oneof: written even when false, since being present is what selects it. */
  oneofBool(no: number, value: boolean): void {
    this.key(no, 0);
    this.varint(value ? 1 : 0);
  }

  int(no: number, value: unknown): void {
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) {
      this.key(no, 0);
      this.varint(value);
    }
  }

  double(no: number, value: unknown): void {
    if (typeof value !== 'number') return;
    this.key(no, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
  }

  message(no: number, value: Writer): void {
    this.bytes(no, value.finish());
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** openapi_v2.Any: a JSON value as YAML text. */
function any(value: unknown): Writer {
  const w = new Writer();
  w.string(2, toYaml(value).trimEnd());
  return w;
}

/** `x-...` keys of a JSON object as repeated NamedAny. */
function vendorExtensions(w: Writer, no: number, o: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(o)) {
    if (!name.startsWith('x-')) continue;
    const named = new Writer();
    named.string(1, name);
    named.message(2, any(value));
    w.message(no, named);
  }
}

function namedSchemas(o: unknown): Writer {
  const w = new Writer();
  if (isObject(o))
    for (const [name, value] of Object.entries(o)) {
      const named = new Writer();
      named.string(1, name);
      if (isObject(value)) named.message(2, schema(value));
      w.message(1, named);
    }
  return w;
}

function schema(s: Record<string, unknown>): Writer {
  const w = new Writer();
  w.string(1, s.$ref);
  w.string(2, s.format);
  w.string(3, s.title);
  w.string(4, s.description);
  if (s.default !== undefined) w.message(5, any(s.default));
  w.double(6, s.multipleOf);
  w.double(7, s.maximum);
  w.bool(8, s.exclusiveMaximum);
  w.double(9, s.minimum);
  w.bool(10, s.exclusiveMinimum);
  w.int(11, s.maxLength);
  w.int(12, s.minLength);
  w.string(13, s.pattern);
  w.int(14, s.maxItems);
  w.int(15, s.minItems);
  w.bool(16, s.uniqueItems);
  w.int(17, s.maxProperties);
  w.int(18, s.minProperties);
  w.strings(19, s.required);
  if (Array.isArray(s.enum)) for (const v of s.enum) w.message(20, any(v));
  if (isObject(s.additionalProperties) || typeof s.additionalProperties === 'boolean') {
    const item = new Writer();
    if (isObject(s.additionalProperties)) item.message(1, schema(s.additionalProperties));
    else item.oneofBool(2, s.additionalProperties);
    w.message(21, item);
  }
  if (s.type !== undefined) {
    const type = new Writer();
    type.strings(1, Array.isArray(s.type) ? s.type : [s.type]);
    w.message(22, type);
  }
  if (s.items !== undefined) {
    const items = new Writer();
    for (const i of Array.isArray(s.items) ? s.items : [s.items])
      if (isObject(i)) items.message(1, schema(i));
    w.message(23, items);
  }
  if (Array.isArray(s.allOf)) for (const a of s.allOf) if (isObject(a)) w.message(24, schema(a));
  if (isObject(s.properties)) w.message(25, namedSchemas(s.properties));
  w.string(26, s.discriminator);
  w.bool(27, s.readOnly);
  if (s.example !== undefined) w.message(30, any(s.example));
  vendorExtensions(w, 31, s);
  return w;
}

/** A query parameter (the only kind openapi.ts declares). */
function parameter(p: Record<string, unknown>): Writer {
  const query = new Writer();
  query.bool(1, p.required);
  query.string(2, p.in);
  query.string(3, p.description);
  query.string(4, p.name);
  query.string(6, p.type);
  query.bool(20, p.uniqueItems);
  vendorExtensions(query, 23, p);
  const nonBody = new Writer();
  nonBody.message(p.in === 'path' ? 4 : p.in === 'header' ? 1 : 3, query);
  const param = new Writer();
  param.message(2, nonBody);
  const item = new Writer();
  item.message(1, param);
  return item;
}

function operation(op: Record<string, unknown>): Writer {
  const w = new Writer();
  w.strings(1, op.tags);
  w.string(2, op.summary);
  w.string(3, op.description);
  w.string(5, op.operationId);
  w.strings(6, op.produces);
  w.strings(7, op.consumes);
  if (Array.isArray(op.parameters))
    for (const p of op.parameters) if (isObject(p)) w.message(8, parameter(p));
  if (isObject(op.responses)) {
    const responses = new Writer();
    for (const [code, r] of Object.entries(op.responses)) {
      const response = new Writer();
      response.string(1, isObject(r) ? r.description : undefined);
      const value = new Writer();
      value.message(1, response);
      const named = new Writer();
      named.string(1, code);
      named.message(2, value);
      responses.message(1, named);
    }
    w.message(9, responses);
  }
  w.strings(10, op.schemes);
  w.bool(11, op.deprecated);
  vendorExtensions(w, 13, op);
  return w;
}

const OPERATIONS: [string, number][] = [
  ['get', 2],
  ['put', 3],
  ['post', 4],
  ['delete', 5],
  ['options', 6],
  ['head', 7],
  ['patch', 8],
];

/** The Swagger 2.0 JSON document as openapi_v2.Document bytes. */
export function encodeOpenApiV2(doc: Record<string, unknown>): Buffer {
  const w = new Writer();
  w.string(1, doc.swagger);
  if (isObject(doc.info)) {
    const info = new Writer();
    info.string(1, doc.info.title);
    info.string(2, doc.info.version);
    info.string(3, doc.info.description);
    w.message(2, info);
  }
  if (isObject(doc.paths)) {
    const paths = new Writer();
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!isObject(item)) continue;
      const pathItem = new Writer();
      for (const [verb, no] of OPERATIONS)
        if (isObject(item[verb])) pathItem.message(no, operation(item[verb]));
      const named = new Writer();
      named.string(1, path);
      named.message(2, pathItem);
      paths.message(2, named);
    }
    w.message(8, paths);
  }
  if (isObject(doc.definitions)) w.message(9, namedSchemas(doc.definitions));
  vendorExtensions(w, 16, doc);
  return w.finish();
}
