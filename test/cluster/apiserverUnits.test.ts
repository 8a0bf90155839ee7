// The API server's pure parts: selectors, patches, schema messages, CEL, JSONPath, ages, the
// self-signed certificate.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { compileRule, evaluate } from '../../src/cluster/apiserver/admission/cel.js';
import { fieldErrorText, type FieldError } from '../../src/cluster/apiserver/apimachinery/errors.js';
import { evaluate as jsonPath } from '../../src/cluster/apiserver/discovery/jsonpath.js';
import { humanDuration } from '../../src/cluster/apiserver/apimachinery/meta.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../src/cluster/apiserver/patch/patches.js';
import {
  applyDefaults,
  prune,
  validate,
  type Schema,
} from '../../src/cluster/apiserver/admission/structuralSchema.js';
import { parseLabelSelector } from '../../src/cluster/apiserver/apimachinery/selectors.js';
import { generateServingCert } from '../../src/cluster/apiserver/http/tls.js';

test('label selectors: =, ==, !=, in, notin, exists and !key', () => {
  const m = (s: string, labels: Record<string, string>) => parseLabelSelector(s)(labels);
  assert.ok(m('a=1', { a: '1' }));
  assert.ok(m('a==1,b!=2', { a: '1' }));
  assert.ok(!m('a!=1', { a: '1' }));
  assert.ok(m('a in (1, 2),b notin (3)', { a: '2', b: '4' }));
  assert.ok(!m('a in (1,2)', {}));
  assert.ok(m('a notin (1)', {}));
  assert.ok(m('a,!b', { a: '' }));
  assert.ok(!m('!a', { a: 'x' }));
  assert.throws(() => parseLabelSelector('a in 1'), /unable to parse requirement/);
});

test('merge patch removes nulls; JSON patch handles pointers, "-", move, copy and failing tests', () => {
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), {
    a: 1,
    b: { d: 3, e: 4 },
    f: [1],
  });
  const doc = { a: { 'x/y': 1, l: [1, 2] } };
  assert.deepEqual(
    jsonPatch(doc, [
      { op: 'add', path: '/a/l/-', value: 3 },
      { op: 'add', path: '/a/l/0', value: 0 },
      { op: 'move', from: '/a/x~1y', path: '/b' },
      { op: 'copy', from: '/b', path: '/c' },
      { op: 'remove', path: '/a/l/1' },
      { op: 'test', path: '/c', value: 1 },
    ]),
    { a: { l: [0, 2, 3] }, b: 1, c: 1 },
  );
  assert.deepEqual(doc, { a: { 'x/y': 1, l: [1, 2] } }, 'the input is not modified');
  assert.throws(() => jsonPatch(doc, [{ op: 'test', path: '/a/l/0', value: 9 }]), /test failed/);
  assert.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }]));
});

test('strategic merge: keyed lists, $setElementOrder, $retainKeys, $deleteFromPrimitiveList, replaced lists', () => {
  const pod = {
    metadata: { finalizers: ['a'] },
    spec: {
      containers: [
        {
          name: 'a',
          image: 'x',
          ports: [{ containerPort: 80, name: 'http' }],
          volumeMounts: [{ mountPath: '/m', name: 'v' }],
        },
      ],
      tolerations: [{ key: 't1' }],
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } },
    },
  };
  const out = strategicMergePatch(
    pod,
    {
      metadata: { finalizers: ['b'] },
      spec: {
        '$setElementOrder/containers': [{ name: 'a' }],
        containers: [
          {
            name: 'a',
            ports: [{ containerPort: 80, protocol: 'TCP' }],
            volumeMounts: [{ mountPath: '/n', name: 'w' }],
          },
        ],
        tolerations: [{ key: 't2' }],
        strategy: { $retainKeys: ['type'], type: 'Recreate' },
      },
    },
    'Deployment',
  ) as { metadata: { finalizers: string[] }; spec: Record<string, unknown> };
  assert.deepEqual(out.metadata.finalizers, ['a', 'b']);
  assert.deepEqual(out.spec.containers, [
    {
      name: 'a',
      image: 'x',
      ports: [{ containerPort: 80, name: 'http', protocol: 'TCP' }],
      volumeMounts: [
        { mountPath: '/m', name: 'v' },
        { mountPath: '/n', name: 'w' },
      ],
    },
  ]);
  assert.deepEqual(out.spec.tolerations, [{ key: 't2' }]);
  assert.deepEqual(out.spec.strategy, { type: 'Recreate' });
  const svc = strategicMergePatch(
    { spec: { ports: [{ port: 80, name: 'a' }] } },
    { spec: { ports: [{ port: 80, targetPort: 8080 }] } },
    'Service',
  );
  assert.deepEqual(svc, { spec: { ports: [{ port: 80, name: 'a', targetPort: 8080 }] } });
  const fin = strategicMergePatch(
    { metadata: { finalizers: ['a', 'b'] } },
    { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } },
    'Pod',
  );
  assert.deepEqual(fin, { metadata: { finalizers: ['b'] } });
});

test('schema validation words errors like kube-openapi; defaults fill and pruning drops unknown fields', () => {
  const schema: Schema = {
    type: 'object',
    required: ['n'],
    properties: {
      n: { type: 'integer', minimum: 1, maximum: 5, exclusiveMaximum: true },
      s: { type: 'string', maxLength: 3, minLength: 2, pattern: '^[a-z]+$', enum: ['ab', 'cd'] },
      l: { type: 'array', maxItems: 1, uniqueItems: true, items: { type: 'string' } },
      d: { type: 'string', default: 'x' },
      io: { 'x-kubernetes-int-or-string': true },
      keep: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      ts: { type: 'string', format: 'date-time' },
    },
  };
  const errs: FieldError[] = [];
  validate(schema, { n: 5, s: 'ABCD', l: ['a', 'a'], io: true, ts: 'yesterday' }, 'spec', errs);
  assert.deepEqual(errs.map(fieldErrorText), [
    'spec.n: Invalid value: 5: spec.n in body should be less than 5',
    'spec.s: Unsupported value: "ABCD": supported values: "ab", "cd"',
    'spec.s: Too long: may not be longer than 3',
    'spec.s: Invalid value: "ABCD": spec.s in body should match \'^[a-z]+$\'',
    'spec.l: Too many: 2: must have at most 1 items',
    'spec.l: Invalid value: ["a","a"]: spec.l in body shouldn\'t contain duplicates',
    'spec.io: Invalid value: "boolean": spec.io in body must be of type integer,string: "boolean"',
    'spec.ts: Invalid value: "yesterday": spec.ts in body must be of type date-time: "yesterday"',
  ]);
  const missing: FieldError[] = [];
  validate(schema, { n: 'x' }, 'spec', missing);
  validate(schema, {}, 'spec', missing);
  assert.deepEqual(missing.map(fieldErrorText), [
    'spec.n: Invalid value: "string": spec.n in body must be of type integer: "string"',
    'spec.n: Required value',
  ]);
  const obj: Record<string, unknown> = { n: 1, extra: 1, keep: { any: 1 }, s: null };
  applyDefaults(schema, obj);
  const dropped: string[] = [];
  prune(schema, obj, 'spec', dropped);
  assert.deepEqual(obj, { n: 1, keep: { any: 1 }, d: 'x' });
  assert.deepEqual(dropped, ['spec.extra']);
});

test('CEL subset: fields, has, size, arithmetic, in, macros, string methods, short-circuit errors', () => {
  const run = (rule: string, self: unknown, oldSelf?: unknown) => {
    const ast = compileRule(rule);
    if (ast instanceof Error) throw ast;
    return evaluate(ast, { self, oldSelf });
  };
  const self = { dModel: 64, heads: 4, name: 'ab-c', list: [1, 2, 3], m: { a: 1 } };
  assert.equal(run('self.dModel % self.heads == 0', self), true);
  assert.equal(run('!has(self.kvHeads) || self.heads % self.kvHeads == 0', self), true);
  assert.equal(run('self.kvHeads > 0 || true', self), true, 'an error on one side of || is absorbed');
  assert.throws(() => run('self.kvHeads > 0', self), /no such key: kvHeads/);
  assert.equal(run('size(self.list) == 3 && self.list.size() == 3 && size(self.name) == 4', self), true);
  assert.equal(
    run('self.list.all(x, x > 0) && self.list.exists(x, x == 2) && self.list.exists_one(x, x > 2)', self),
    true,
  );
  assert.deepEqual(run('self.list.map(x, x * 2).filter(x, x > 2)', self), [4, 6]);
  assert.equal(run("2 in self.list && 'a' in self.m && !('b' in self.m)", self), true);
  assert.equal(
    run(
      "self.name.startsWith('ab') && self.name.endsWith('-c') && self.name.contains('b-') && self.name.matches('^[a-z-]+$')",
      self,
    ),
    true,
  );
  assert.equal(run("self.name == 'x' ? 1 : 7 / 2", self), 3);
  assert.equal(run('self == oldSelf', { a: [1] }, { a: [1] }), true);
  assert.equal(run("[1, 2] + [3] == [1, 2, 3] && 'a' + 'b' == \"ab\" && -1 < 0.5", self), true);
  assert.ok(compileRule('self.a ++ b') instanceof Error);
});

test('printer-column JSONPath and ages', () => {
  const obj = {
    status: {
      conditions: [
        { type: 'A', status: 'False' },
        { type: 'Ready', status: 'True' },
      ],
    },
    spec: { l: [{ n: 1 }, { n: 2 }] },
  };
  assert.deepEqual(jsonPath('.status.conditions[?(@.type=="Ready")].status', obj), ['True']);
  assert.deepEqual(jsonPath('.spec.l[*].n', obj), [1, 2]);
  assert.deepEqual(jsonPath('{.spec.l[1].n}', obj), [2]);
  assert.deepEqual(jsonPath('.missing.x', obj), []);
  assert.equal(humanDuration(5_000), '5s');
  assert.equal(humanDuration(150_000), '2m30s');
  assert.equal(humanDuration(3 * 3600_000 + 60_000), '3h1m');
  assert.equal(humanDuration(50 * 3600_000), '2d2h');
});

test('the self-signed serving certificate is valid X.509 for 127.0.0.1 and localhost', () => {
  const { cert } = generateServingCert();
  const x = new X509Certificate(cert);
  assert.equal(x.subject, 'CN=btx-apiserver');
  assert.ok(x.checkIP('127.0.0.1'));
  assert.ok(x.checkHost('localhost'));
  assert.ok(x.ca);
  assert.ok(x.verify(x.publicKey));
});

test('every generated serving certificate parses: its random serial is a minimally encoded DER integer', () => {
  // A serial starting with a 0x00 byte is refused by OpenSSL (illegal padding); 600 draws would
  // hit such a serial with probability ~90% if the encoding allowed it.
  for (let i = 0; i < 600; i++) {
    const x = new X509Certificate(generateServingCert().cert);
    assert.notEqual(x.serialNumber.slice(0, 2), '00');
  }
});
