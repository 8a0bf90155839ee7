// Field-level checks of built-in objects against the Kubernetes API models that @kubernetes/client-node
// generates from the OpenAPI spec: every key must be a field of its type, with a value of the right shape.
// The embedded API server stores built-in kinds without validating them, so this is what catches a
// misspelt `readOnlyRootFilesytem` or a string where an integer belongs in the chart's templates.
import * as k8s from '@kubernetes/client-node';

type Attribute = { name: string; baseName: string; type: string };
type Model = { getAttributeTypeMap(): Attribute[] };

function model(type: string): Model | undefined {
  const m = (k8s as unknown as Record<string, unknown>)[type] as Partial<Model> | undefined;
  return typeof m?.getAttributeTypeMap === 'function' ? (m as Model) : undefined;
}

/** The client-node model of a built-in kind (`apps/v1` Deployment -> V1Deployment), if any. */
export function modelOf(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.split('/').at(-1)!;
  const name = `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
  return model(name) ? name : undefined;
}

function describe(value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
}

/** Problems with `value` as a `type`, each naming its path. */
export function checkFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return [`${path}: want an array, got ${describe(value)}`];
    return value.flatMap((v, i) => checkFields(v, array[1]!, `${path}[${i}]`));
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (describe(value) !== 'object') return [`${path}: want a map, got ${describe(value)}`];
    return Object.entries(value as object).flatMap(([k, v]) => checkFields(v, map[1]!, `${path}.${k}`));
  }
  switch (type) {
    case 'string':
    case 'Date':
      return typeof value === 'string' ? [] : [`${path}: want a string, got ${describe(value)}`];
    case 'number':
      return typeof value === 'number' ? [] : [`${path}: want a number, got ${describe(value)}`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${path}: want a boolean, got ${describe(value)}`];
    case 'IntOrString':
      return typeof value === 'number' || typeof value === 'string'
        ? []
        : [`${path}: want an int or string, got ${describe(value)}`];
    case 'any':
    case 'object':
      return [];
  }
  const m = model(type);
  if (!m) return [`${path}: no client-node model ${type}`];
  if (describe(value) !== 'object') return [`${path}: want a ${type} object, got ${describe(value)}`];
  const fields = new Map(m.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) => {
    const t = fields.get(k);
    return t === undefined ? [`${path}.${k}: not a field of ${type}`] : checkFields(v, t, `${path}.${k}`);
  });
}
