import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDefaults } from '../../src/api/defaults.js';
import { btxRunSchema, type JSONSchema } from '../../src/api/schema.js';
import { checkSchema } from '../../src/api/schemaCheck.js';
import { fullRun } from './fullRun.js';

function walkSchema(s: JSONSchema, path: string, visit: (s: JSONSchema, path: string) => void): void {
  visit(s, path);
  for (const [k, child] of Object.entries(s.properties ?? {})) walkSchema(child, `${path}.${k}`, visit);
  if (s.items) walkSchema(s.items, `${path}[]`, visit);
  if (s.additionalProperties) walkSchema(s.additionalProperties, `${path}{}`, visit);
}

test('the schema is structural: every node has a type (or is int-or-string) and a description', () => {
  const problems: string[] = [];
  walkSchema(btxRunSchema(), '', (s, path) => {
    if (!s.type && !s['x-kubernetes-int-or-string']) problems.push(`${path}: no type`);
    // metadata is ObjectMeta, described by the API server itself; a CRD may only say `type: object`.
    if (!s.description && path !== '.metadata') problems.push(`${path}: no description`);
    if (
      s.type === 'object' &&
      !s.properties &&
      !s.additionalProperties &&
      !s['x-kubernetes-preserve-unknown-fields'] &&
      path !== '.metadata'
    ) {
      problems.push(`${path}: object without properties`);
    }
    if (s.type === 'array' && !s.items) problems.push(`${path}: array without items`);
    if (s.anyOf && !s['x-kubernetes-int-or-string']) problems.push(`${path}: anyOf outside int-or-string`);
  });
  assert.deepEqual(problems, []);
});

/** Every key of `value` must have a schema node; returns the paths that do not. */
function uncovered(value: unknown, s: JSONSchema | undefined, path: string): string[] {
  if (!s) return [path];
  if (s['x-kubernetes-preserve-unknown-fields'] || path === '.metadata') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => uncovered(v, s.items, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) =>
      uncovered(v, s.properties?.[k] ?? s.additionalProperties, `${path}.${k}`),
    );
  }
  return [];
}

test('every field of the TypeScript types has a node in the schema', () => {
  assert.deepEqual(uncovered(fullRun, btxRunSchema(), ''), []);
});

test('a fully populated run passes the schema checks (types, enums, bounds, patterns)', () => {
  assert.deepEqual(checkSchema(fullRun, btxRunSchema(), ''), []);
});

test('every enum value in the types is allowed by the schema', () => {
  const schema = btxRunSchema();
  const spec = schema.properties?.spec?.properties ?? {};
  assert.deepEqual(spec.mix?.properties?.router?.properties?.type?.enum, [
    'topK',
    'switch',
    'soft',
    'sampleTop1',
  ]);
  assert.ok(
    schema.properties?.status?.properties?.conditions?.items?.properties?.type?.enum?.includes('SpecApplied'),
  );
  assert.deepEqual(spec.imagePullPolicy?.enum, ['Always', 'IfNotPresent', 'Never']);
});

/** Structural defaulting as the API server does it: fill `default`, then recurse into the value. */
function schemaDefault(s: JSONSchema, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (s.items ? schemaDefault(s.items, v) : v));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [k, child] of Object.entries(s.properties ?? {})) {
    if (out[k] === undefined && child.default !== undefined) out[k] = structuredClone(child.default);
    if (out[k] !== undefined) out[k] = schemaDefault(child, out[k]);
  }
  return out;
}

test('the schema defaults and applyDefaults agree (apart from the defaults that depend on other fields)', () => {
  const minimal = {
    storage: { persistentVolumeClaim: { claimName: 'btx-data' } },
    model: { dModel: 64, layers: 2, heads: 4, ffnHidden: 192, seqLen: 64 },
    seed: { train: { data: '/btx/data', steps: 10 } },
    domains: [{ name: 'math', data: '/btx/data/math' }],
  };
  const bySchema = schemaDefault(btxRunSchema().properties?.spec ?? {}, minimal) as Record<string, unknown>;
  const byCode = applyDefaults(minimal) as unknown as Record<string, unknown>;
  // Only applyDefaults knows these: they depend on other fields.
  const { failurePolicy, ...codeRest } = byCode;
  assert.deepEqual(failurePolicy, { rules: [], minExperts: 1 });
  const codeModel = codeRest.model as Record<string, unknown>;
  assert.equal(codeModel.kvHeads, 4);
  delete codeModel.kvHeads;
  assert.deepEqual(bySchema, codeRest);
});
