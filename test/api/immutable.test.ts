import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDefaults } from '../../src/api/defaults.js';
import {
  changedImmutableField,
  domainsChange,
  firstDifference,
  IMMUTABLE_FIELDS,
  startedWithOf,
} from '../../src/api/immutable.js';

const spec = applyDefaults({
  storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
  model: { dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 },
  seed: { train: { data: '/btx/data', steps: 10 } },
  domains: [
    { name: 'math', data: '/btx/data/math' },
    { name: 'code', data: '/btx/data/code' },
  ],
});

test('the immutable fields are storage, model, seed and domains', () => {
  assert.deepEqual([...IMMUTABLE_FIELDS], ['storage', 'model', 'seed', 'domains']);
});

test('an unchanged spec (or a change to a mutable field) is no change', () => {
  const started = startedWithOf(spec);
  assert.equal(changedImmutableField(started, spec), undefined);
  assert.equal(
    changedImmutableField(started, { ...spec, expert: { ...spec.expert, steps: 5 } } as typeof spec),
    undefined,
  );
});

const cases: { name: string; change: (s: typeof spec) => void; field: string }[] = [
  {
    name: 'a domain data path',
    change: (s) => (s.domains[1]!.data = '/btx/other'),
    field: 'spec.domains[1].data',
  },
  {
    name: 'a domain added',
    change: (s) => s.domains.push({ name: 'prose', data: '/btx/p' }),
    field: 'spec.domains',
  },
  {
    name: 'a domain step override',
    change: (s) => (s.domains[0]!.steps = 3),
    field: 'spec.domains[0].steps',
  },
  {
    name: 'the claim name',
    change: (s) => (s.storage.persistentVolumeClaim.claimName = 'other'),
    field: 'spec.storage.persistentVolumeClaim.claimName',
  },
  { name: 'the model width', change: (s) => (s.model!.dModel = 128), field: 'spec.model.dModel' },
  { name: 'the model removed', change: (s) => delete s.model, field: 'spec.model' },
  {
    name: 'the seed checkpoint set instead of training one',
    change: (s) => {
      delete s.seed.train;
      s.seed.checkpoint = '/btx/models/other';
    },
    field: 'spec.seed.checkpoint',
  },
  {
    name: 'the seed training data',
    change: (s) => (s.seed.train!.data = '/btx/other'),
    field: 'spec.seed.train.data',
  },
];

test('a run started before the seed was recorded compares everything else', () => {
  const { seed: _seed, ...older } = startedWithOf(spec);
  const current = structuredClone(spec);
  current.seed = { checkpoint: '/btx/models/other' };
  assert.equal(changedImmutableField(older, current), undefined);
});

for (const c of cases) {
  test(`changedImmutableField names ${c.name}`, () => {
    const current = structuredClone(spec);
    c.change(current);
    const change = changedImmutableField(startedWithOf(spec), current);
    assert.equal(change?.field, c.field);
    assert.match(change?.message ?? '', /immutable/);
    assert.ok(change?.message.startsWith(c.field));
  });
}

test('firstDifference treats undefined keys as absent', () => {
  assert.equal(firstDifference({ a: 1, b: undefined }, { a: 1 }, 'x'), undefined);
  assert.equal(firstDifference({ a: [1, 2] }, { a: [1, 3] }, 'x'), 'x.a[1]');
});

const three = [
  { name: 'math', data: '/btx/math' },
  { name: 'code', data: '/btx/code' },
  { name: 'prose', data: '/btx/prose', steps: 5 },
];
const law = { name: 'law', data: '/btx/law' };

test('domainsChange: appending at the end and removing (order kept) are the two allowed changes', () => {
  assert.deepEqual(domainsChange(three, structuredClone(three)), { kind: 'none' });
  assert.deepEqual(domainsChange(three, [...three, law]), { kind: 'append', added: [law] });
  assert.deepEqual(domainsChange(three, [three[0]!, three[2]!]), { kind: 'remove', removed: ['code'] });
  assert.deepEqual(domainsChange(three, [three[2]!]), { kind: 'remove', removed: ['math', 'code'] });
});

const refusedDomains: [string, object[], string][] = [
  ['a reorder', [three[1]!, three[0]!, three[2]!], 'spec.domains[0].data'],
  ['a rename', [three[0]!, { ...three[1]!, name: 'cpp' }, three[2]!], 'spec.domains[1].name'],
  ['a changed step override', [three[0]!, three[1]!, { ...three[2]!, steps: 6 }], 'spec.domains[2].steps'],
  ['an insert before the end', [three[0]!, law, three[1]!, three[2]!], 'spec.domains[1].data'],
  [
    'an append with a change',
    [{ ...three[0]!, data: '/x' }, three[1]!, three[2]!, law],
    'spec.domains[0].data',
  ],
  ['a removal with a reorder', [three[2]!, three[0]!], 'spec.domains[1]'],
  ['a removal with a changed domain', [three[0]!, { ...three[2]!, steps: 1 }], 'spec.domains[1].steps'],
  ['a removal and an append at once', [three[0]!, law], 'spec.domains[1]'],
];
for (const [what, after, field] of refusedDomains) {
  test(`domainsChange refuses ${what}, naming ${field}`, () => {
    const change = domainsChange(three, after as typeof three);
    assert.equal(change.kind, 'refused');
    if (change.kind !== 'refused') return;
    assert.equal(change.change.field, field);
    assert.ok(change.change.message.startsWith(`${field}: `), change.change.message);
    assert.match(change.change.message, /may append domains .* or remove domains/);
  });
}
