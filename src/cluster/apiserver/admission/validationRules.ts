// `x-kubernetes-validations` on a structural schema: every rule runs with `self` bound to its node's
// value; transition rules (those using oldSelf) run only on updates where the old value exists
// (object fields, and items of list-type=map lists matched by key). Failures read like the real
// server's: `spec.storage: Invalid value: "object": storage is immutable ...`.
import { compileRule, evaluate, usesOldSelf, CelError } from './cel.js';
import { fe, type FieldError } from '../apimachinery/errors.js';
import { deepEqual, isObject } from '../apimachinery/meta.js';
import type { Schema } from './structuralSchema.js';

interface Rule {
  rule?: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
}

function join(path: string, fieldPath: string | undefined): string {
  if (!fieldPath) return path || '<nil>';
  const suffix = fieldPath.startsWith('.') || fieldPath.startsWith('[') ? fieldPath : `.${fieldPath}`;
  return path ? `${path}${suffix}` : suffix.replace(/^\./, '');
}

function ruleError(rule: Rule, type: string, path: string, detail: string): FieldError {
  const at = join(path, rule.fieldPath);
  switch (rule.reason) {
    case 'FieldValueRequired':
      return fe.required(at, detail);
    case 'FieldValueForbidden':
      return fe.forbidden(at, detail);
    case 'FieldValueDuplicate':
      return { type: 'FieldValueDuplicate', field: at, value: type, detail };
    default:
      return fe.invalid(at, type, detail);
  }
}

/** messageExpression when it evaluates to a non-empty string, else message, else the rule. */
function message(rule: Rule, env: Record<string, unknown>): string {
  if (rule.messageExpression) {
    const ast = compileRule(rule.messageExpression);
    if (!(ast instanceof CelError)) {
      try {
        const m = evaluate(ast, env);
        if (typeof m === 'string' && m.trim() !== '') return m;
      } catch {
        // fall back to message, as the real server does
      }
    }
  }
  return rule.message ?? `failed rule: ${rule.rule}`;
}

/** Runs the rules of `schema` and its children against `value` (and `old` on updates). */
export function validateRules(
  schema: Schema | undefined,
  value: unknown,
  old: unknown,
  path: string,
  errs: FieldError[],
): void {
  if (!schema || value === undefined || value === null) return;
  const type = schema.type ?? '';
  for (const raw of (schema['x-kubernetes-validations'] ?? []) as Rule[]) {
    if (!raw.rule) continue;
    const ast = compileRule(raw.rule);
    if (ast instanceof CelError) continue; // outside the supported subset: see docs/cluster.md
    const transition = usesOldSelf(ast);
    if (transition && old === undefined) continue;
    const env = transition ? { self: value, oldSelf: old } : { self: value };
    try {
      const ok = evaluate(ast, env);
      if (ok !== true) errs.push(ruleError(raw, type, path, message(raw, env)));
    } catch (err) {
      errs.push(ruleError(raw, type, path, `${message(raw, env)}: ${(err as Error).message}`));
    }
  }
  if (isObject(value)) {
    const oldObj = isObject(old) ? old : undefined;
    for (const [key, v] of Object.entries(value)) {
      const prop =
        schema.properties?.[key] ??
        (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      validateRules(prop, v, oldObj?.[key], path ? `${path}.${key}` : key, errs);
    }
  } else if (Array.isArray(value) && schema.items) {
    const keys =
      schema['x-kubernetes-list-type'] === 'map' ? (schema['x-kubernetes-list-map-keys'] ?? []) : undefined;
    const oldList = Array.isArray(old) ? old : [];
    value.forEach((item, i) => {
      const oldItem =
        keys && isObject(item)
          ? oldList.find((o) => isObject(o) && keys.every((k) => deepEqual(o[k], item[k])))
          : undefined;
      validateRules(schema.items, item, oldItem, `${path}[${i}]`, errs);
    });
  }
}
