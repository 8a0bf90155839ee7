// Checks a value against the BTXRun JSON schema the way the API server would (types, required, enums,
// bounds, patterns, list sizes), so the operator rejects a bad spec even when the API server that
// stored it did not validate (an older or embedded server). CEL rules are not evaluated here:
// validation.ts checks the same things in TypeScript.
import type { JSONSchema } from './schema.js';
import { DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, QUANTITY_PATTERN, VOLUME_PATH_PATTERN } from './schema.js';
import { VOLUME_MOUNT_PATH } from './stageContract.js';

export interface FieldError {
  /** The field as Kubernetes names it: `spec.domains[1].name`. */
  field: string;
  /** Starts with the field, as in Kubernetes' messages: `spec.domains[1].name: Duplicate value: "math"`. */
  message: string;
}

/** What a failed pattern means, in words, for the patterns the schema uses. */
const PATTERN_MEANINGS: Record<string, string> = {
  [DNS_LABEL_PATTERN]:
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
  [DNS_SUBDOMAIN_PATTERN]:
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
  [VOLUME_PATH_PATTERN]: `must be an absolute path under ${VOLUME_MOUNT_PATH} (the shared volume)`,
  [QUANTITY_PATTERN]: 'must be a quantity such as 2, 500m or 4Gi',
};

function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * An integer as the API server counts one (kube-openapi): within ±2^53, where a float64 holds every
 * integer exactly. `Number.isInteger(1e30)` is true, but 1e30 is a "number" to Kubernetes, and
 * `steps: 1e30` would otherwise reach the trainer as a step count it can never reach.
 */
function isApiInteger(value: number): boolean {
  return Number.isInteger(value) && Math.abs(value) <= 2 ** 53;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return isApiInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, schema: JSONSchema): boolean {
  if (value === null) return schema.nullable === true;
  if (schema['x-kubernetes-int-or-string']) {
    return typeof value === 'string' || (typeof value === 'number' && isApiInteger(value));
  }
  const actual = typeOf(value);
  switch (schema.type) {
    case undefined:
      return true;
    case 'number':
      return actual === 'number' || actual === 'integer';
    default:
      return actual === schema.type;
  }
}

export function checkSchema(value: unknown, schema: JSONSchema, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const fail = (field: string, message: string) => errors.push({ field, message: `${field}: ${message}` });
  if (!matchesType(value, schema)) {
    const expected = schema['x-kubernetes-int-or-string'] ? 'integer or string' : schema.type;
    const beyond = typeof value === 'number' && Number.isInteger(value) && expected !== 'number';
    fail(
      path,
      `Invalid value: "${typeOf(value)}": must be of type ${expected}${beyond ? ` (${value} is beyond ±2^53, where integers stop being exact)` : ''}`,
    );
    return errors;
  }
  if (value === null) return errors;
  if (schema.enum && !schema.enum.includes(value as string | number)) {
    fail(path, `Unsupported value: ${show(value)}: supported values: ${schema.enum.map(show).join(', ')}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined) {
      const low = schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum;
      if (low) {
        const bound = schema.exclusiveMinimum ? 'greater than' : 'greater than or equal to';
        fail(path, `Invalid value: ${value}: should be ${bound} ${schema.minimum}`);
      }
    }
    if (
      schema.maximum !== undefined &&
      (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)
    ) {
      const bound = schema.exclusiveMaximum ? 'less than' : 'less than or equal to';
      fail(path, `Invalid value: ${value}: should be ${bound} ${schema.maximum}`);
    }
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      fail(path, `Invalid value: ${show(value)}: should be at least ${schema.minLength} chars long`);
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      fail(path, `Too long: may not be more than ${schema.maxLength} bytes`);
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
      const meaning = PATTERN_MEANINGS[schema.pattern] ?? `should match '${schema.pattern}'`;
      fail(path, `Invalid value: ${show(value)}: ${meaning}`);
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      fail(path, `Required value: must have at least ${schema.minItems} items`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      fail(path, `Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    }
    if (schema.items) {
      value.forEach((item, i) =>
        errors.push(...checkSchema(item, schema.items as JSONSchema, `${path}[${i}]`)),
      );
    }
  }
  if (typeOf(value) === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (record[key] === undefined) fail(`${path}.${key}`, 'Required value');
    }
    const entries = Object.entries(record).filter(([, v]) => v !== undefined);
    if (schema.maxProperties !== undefined && entries.length > schema.maxProperties) {
      fail(path, `Too many: ${entries.length}: must have at most ${schema.maxProperties} items`);
    }
    for (const [key, child] of entries) {
      const childSchema = schema.properties?.[key] ?? schema.additionalProperties;
      if (childSchema) errors.push(...checkSchema(child, childSchema, `${path}.${key}`));
      // A typo, most likely. The API server rejects it (strict field validation) or prunes it, so the
      // operator never sees one; `btx local` checks the manifest before it starts anything.
      else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.properties) {
        fail(`${path}.${key}`, `unknown field ${JSON.stringify(key)}`);
      }
    }
  }
  return errors;
}
