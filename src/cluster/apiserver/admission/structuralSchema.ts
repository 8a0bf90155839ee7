// Structural openAPIV3Schema handling for custom resources, in the order the real server applies it:
// defaulting (`default`), pruning of unknown fields and of nulls that are not `nullable`, then
// validation, with kube-openapi's wording for every failure.
import { fe, type FieldError } from '../apimachinery/errors.js';
import { clone, deepEqual, isObject } from '../apimachinery/meta.js';

export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  'x-kubernetes-validations'?: unknown[];
}

// --- defaulting --------------------------------------------------------------------------------

/** Fills `default`s in place, top-down, as structural defaulting does. */
export function applyDefaults(schema: Schema | undefined, value: unknown): void {
  if (!schema) return;
  if (isObject(value)) {
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      if (value[name] === undefined && prop.default !== undefined) value[name] = clone(prop.default);
    }
    for (const [name, v] of Object.entries(value)) {
      const prop =
        schema.properties?.[name] ??
        (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      applyDefaults(prop, v);
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const item of value) applyDefaults(schema.items, item);
  }
}

// --- pruning -----------------------------------------------------------------------------------

/** Drops fields the schema does not know (and non-nullable nulls); returns their paths. */
export function prune(
  schema: Schema | undefined,
  value: unknown,
  path: string,
  dropped: string[],
  root = false,
): unknown {
  if (!schema) return value;
  if (isObject(value)) {
    const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const embedded = schema['x-kubernetes-embedded-resource'] === true;
    for (const name of Object.keys(value)) {
      if ((root || embedded) && (name === 'apiVersion' || name === 'kind' || name === 'metadata')) continue;
      const prop =
        schema.properties?.[name] ??
        (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      const child = path ? `${path}.${name}` : name;
      if (!prop) {
        if (!preserve && schema.additionalProperties !== true) {
          dropped.push(child);
          delete value[name];
        }
        continue;
      }
      if (value[name] === null && !prop.nullable) {
        delete value[name];
        continue;
      }
      value[name] = prune(prop, value[name], child, dropped);
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => (value[i] = prune(schema.items, item, `${path}[${i}]`, dropped)));
  }
  return value;
}

// --- validation --------------------------------------------------------------------------------

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  // As kube-openapi's type check: a number counts as an integer only within ±2^53, where a float64
  // holds every integer exactly (1e30 is a "number", and `type: integer` refuses it).
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) <= 2 ** 53 ? 'integer' : 'number';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

function typeMatches(type: string, v: unknown): boolean {
  const t = jsonType(v);
  if (type === 'number') return t === 'number' || t === 'integer';
  return t === type;
}

const FORMATS: Record<string, (s: string) => boolean> = {
  'date-time': (s) =>
    /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(s) &&
    !Number.isNaN(Date.parse(s)),
  date: (s) => /^\d{4}-\d{2}-\d{2}$/.test(s),
  uuid: (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s),
  ipv4: (s) => /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(s),
  byte: (s) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0,
  hostname: (s) =>
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i.test(s) && s.length <= 253,
};

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The compiled pattern cache: a CRD's patterns are compiled once, not per request. */
const patterns = new Map<string, RegExp | null>();
function compile(pattern: string): RegExp | null {
  let re = patterns.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(pattern, 'u');
    } catch {
      re = null;
    }
    patterns.set(pattern, re);
  }
  return re;
}

/** Validates `value` against `schema`, appending Kubernetes field errors. */
export function validate(schema: Schema | undefined, value: unknown, path: string, errs: FieldError[]): void {
  if (!schema) return;
  const name = path || '<root>';
  if (value === null) {
    if (!schema.nullable && schema.type)
      errs.push(fe.typeInvalid(path, 'null', `${name} in body must be of type ${schema.type}: "null"`));
    return;
  }
  if (schema['x-kubernetes-int-or-string']) {
    const t = jsonType(value);
    if (t !== 'integer' && t !== 'string') {
      errs.push(
        fe.typeInvalid(path, t, `${name} in body must be of type integer,string: ${JSON.stringify(t)}`),
      );
      return;
    }
  } else if (schema.type && !typeMatches(schema.type, value)) {
    const t = jsonType(value);
    errs.push(
      fe.typeInvalid(path, t, `${name} in body must be of type ${schema.type}: ${JSON.stringify(t)}`),
    );
    return;
  }
  if (schema.enum && !schema.enum.some((e) => deepEqual(e, value))) {
    errs.push(
      fe.notSupported(
        path,
        value,
        schema.enum.map((e) => (typeof e === 'string' ? e : JSON.stringify(e))),
      ),
    );
  }
  if (typeof value === 'number') validateNumber(schema, value, path, name, errs);
  else if (typeof value === 'string') validateString(schema, value, path, name, errs);
  else if (Array.isArray(value)) validateArray(schema, value, path, name, errs);
  else if (isObject(value)) validateObject(schema, value, path, name, errs);
  for (const sub of schema.allOf ?? []) validate(sub, value, path, errs);
  if (schema.anyOf && !schema.anyOf.some((s) => passes(s, value)))
    errs.push(fe.invalid(path, value, `${name} in body must validate at least one schema (anyOf)`));
  if (schema.oneOf && schema.oneOf.filter((s) => passes(s, value)).length !== 1)
    errs.push(fe.invalid(path, value, `${name} in body must validate one and only one schema (oneOf)`));
  if (schema.not && passes(schema.not, value))
    errs.push(fe.invalid(path, value, `${name} in body should not be valid against the given schema`));
}

function passes(schema: Schema, value: unknown): boolean {
  const errs: FieldError[] = [];
  validate(schema, value, '', errs);
  return errs.length === 0;
}

function validateNumber(schema: Schema, value: number, path: string, name: string, errs: FieldError[]): void {
  if (schema.minimum !== undefined) {
    if (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)
      errs.push(
        fe.invalid(
          path,
          value,
          `${name} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`,
        ),
      );
  }
  if (schema.maximum !== undefined) {
    if (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)
      errs.push(
        fe.invalid(
          path,
          value,
          `${name} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`,
        ),
      );
  }
  if (schema.multipleOf !== undefined && schema.multipleOf > 0) {
    const q = value / schema.multipleOf;
    if (Math.abs(q - Math.round(q)) > 1e-9)
      errs.push(fe.invalid(path, value, `${name} in body should be a multiple of ${schema.multipleOf}`));
  }
  const range = schema.format ? INT_RANGES[schema.format] : undefined;
  if (range && Number.isInteger(value) && (value < range[0] || value > range[1]))
    errs.push(fe.invalid(path, value, `${name} in body must be of type ${schema.format}: "${value}"`));
}

function validateString(schema: Schema, value: string, path: string, name: string, errs: FieldError[]): void {
  const length = [...value].length;
  if (schema.maxLength !== undefined && length > schema.maxLength)
    errs.push(fe.tooLong(path, schema.maxLength));
  if (schema.minLength !== undefined && length < schema.minLength)
    errs.push(fe.invalid(path, value, `${name} in body should be at least ${schema.minLength} chars long`));
  if (schema.pattern !== undefined) {
    const re = compile(schema.pattern);
    if (re && !re.test(value))
      errs.push(fe.invalid(path, value, `${name} in body should match '${schema.pattern}'`));
  }
  if (schema.format && FORMATS[schema.format] && !FORMATS[schema.format]!(value))
    errs.push(
      fe.invalid(path, value, `${name} in body must be of type ${schema.format}: ${JSON.stringify(value)}`),
    );
}

function validateArray(
  schema: Schema,
  value: unknown[],
  path: string,
  name: string,
  errs: FieldError[],
): void {
  if (schema.maxItems !== undefined && value.length > schema.maxItems)
    errs.push(fe.tooMany(path, value.length, schema.maxItems));
  if (schema.minItems !== undefined && value.length < schema.minItems)
    errs.push(fe.invalid(path, value, `${name} in body should have at least ${schema.minItems} items`));
  if (schema.uniqueItems) {
    for (let i = 0; i < value.length; i++)
      if (value.slice(0, i).some((x) => deepEqual(x, value[i]))) {
        errs.push(fe.invalid(path, value, `${name} in body shouldn't contain duplicates`));
        break;
      }
  }
  const listType = schema['x-kubernetes-list-type'];
  if (listType === 'set') {
    value.forEach((v, i) => {
      if (value.slice(0, i).some((x) => deepEqual(x, v))) errs.push(fe.duplicate(`${path}[${i}]`, v));
    });
  } else if (listType === 'map') {
    const keys = schema['x-kubernetes-list-map-keys'] ?? [];
    const seen: unknown[] = [];
    value.forEach((v, i) => {
      if (!isObject(v)) return;
      const k = Object.fromEntries(keys.map((key) => [key, v[key]]));
      if (seen.some((s) => deepEqual(s, k))) errs.push(fe.duplicate(`${path}[${i}]`, k));
      seen.push(k);
    });
  }
  if (schema.items) value.forEach((item, i) => validate(schema.items, item, `${path}[${i}]`, errs));
}

function validateObject(
  schema: Schema,
  value: Record<string, unknown>,
  path: string,
  name: string,
  errs: FieldError[],
): void {
  for (const req of schema.required ?? []) {
    if (value[req] === undefined) errs.push(fe.required(path ? `${path}.${req}` : req));
  }
  const count = Object.keys(value).length;
  if (schema.maxProperties !== undefined && count > schema.maxProperties)
    errs.push(fe.tooMany(path, count, schema.maxProperties));
  if (schema.minProperties !== undefined && count < schema.minProperties)
    errs.push(
      fe.invalid(path, count, `${name} in body should have at least ${schema.minProperties} properties`),
    );
  for (const [key, v] of Object.entries(value)) {
    const prop =
      schema.properties?.[key] ??
      (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
    if (prop) validate(prop, v, path ? `${path}.${key}` : key, errs);
  }
}
