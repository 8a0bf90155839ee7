// jsonEqual answers as comparing the JSON round trips of both values would (the operator's status
// comparison before), case by case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { jsonEqual } from '../../src/util/jsonEqual.js';

const roundTrip = (x: unknown): unknown => JSON.parse(JSON.stringify(x ?? null));

const cases: [string, unknown, unknown][] = [
  ['same object, other member order', { a: 1, b: [1, 2] }, { b: [1, 2], a: 1 }],
  ['an undefined member is absent', { a: 1, b: undefined }, { a: 1 }],
  ['an undefined member is not a null one', { a: undefined }, { a: null }],
  ['a Date is its ISO string', { t: new Date('2026-01-01T00:00:00Z') }, { t: '2026-01-01T00:00:00.000Z' }],
  ['a different Date', { t: new Date('2026-01-01T00:00:00Z') }, { t: '2026-01-01T00:00:01.000Z' }],
  ['undefined in an array is null', [1, undefined], [1, null]],
  ['array length', [1], [1, 1]],
  ['array vs object', [1], { 0: 1 }],
  ['NaN is null', { n: NaN }, { n: null }],
  ['number vs string', { n: 1 }, { n: '1' }],
  ['nested difference', { e: [{ name: 'a', phase: 'Running' }] }, { e: [{ name: 'a', phase: 'Failed' }] }],
  ['nested equal', { e: [{ name: 'a', x: undefined }] }, { e: [{ name: 'a' }] }],
  ['extra member', { a: 1 }, { a: 1, b: 2 }],
  ['a function member is absent', { a: 1, f: () => 1 }, { a: 1 }],
  ['empty object vs empty array', {}, []],
];

for (const [what, a, b] of cases) {
  test(`jsonEqual: ${what}`, () => {
    const expected = isDeepStrictEqual(roundTrip(a), roundTrip(b));
    assert.equal(jsonEqual(a, b), expected);
    assert.equal(jsonEqual(b, a), expected);
  });
}

test('jsonEqual says some of those pairs differ (the table is not all one answer)', () => {
  const answers = new Set(cases.map(([, a, b]) => jsonEqual(a, b)));
  assert.deepEqual([...answers].sort(), [false, true]);
});
