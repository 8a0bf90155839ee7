// Label selectors (=, ==, !=, in, notin, exists, !key) and field selectors (=, ==, !=), parsed once
// per request into matchers.
import { badRequest } from './errors.js';
import type { KObject } from './meta.js';

type Requirement =
  | { key: string; op: 'eq' | 'neq'; values: string[] }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists'; values: string[] };

export type LabelMatcher = (labels: Record<string, string> | undefined) => boolean;

const matchAll: LabelMatcher = () => true;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function parseRequirement(term: string): Requirement {
  let m = /^!\s*([^\s!=(),]+)$/.exec(term);
  if (m) return { key: m[1]!, op: 'notexists', values: [] };
  m = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
  if (m) {
    const values = m[3]!
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    return { key: m[1]!, op: m[2] as 'in' | 'notin', values };
  }
  m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(term);
  if (m) return { key: m[1]!, op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3]!] };
  m = /^([^\s!=(),]+)$/.exec(term);
  if (m) return { key: m[1]!, op: 'exists', values: [] };
  throw badRequest(`unable to parse requirement: ${term}`);
}

export function parseLabelSelector(selector: string | null | undefined): LabelMatcher {
  if (!selector || !selector.trim()) return matchAll;
  const reqs = splitTop(selector).map(parseRequirement);
  return (labels) => {
    const l = labels ?? {};
    for (const r of reqs) {
      const has = Object.prototype.hasOwnProperty.call(l, r.key);
      const v = l[r.key];
      switch (r.op) {
        case 'eq':
          if (!has || v !== r.values[0]) return false;
          break;
        case 'neq':
          if (has && v === r.values[0]) return false;
          break;
        case 'in':
          if (!has || !r.values.includes(v!)) return false;
          break;
        case 'notin':
          if (has && r.values.includes(v!)) return false;
          break;
        case 'exists':
          if (!has) return false;
          break;
        case 'notexists':
          if (has) return false;
          break;
      }
    }
    return true;
  };
}

// --- field selectors ---------------------------------------------------------------------------

export type FieldMatcher = (obj: KObject) => boolean;

/** Field labels each kind supports besides metadata.name and metadata.namespace. */
const FIELD_LABELS: Record<string, string[]> = {
  Pod: [
    'spec.nodeName',
    'spec.restartPolicy',
    'spec.schedulerName',
    'spec.serviceAccountName',
    'spec.hostNetwork',
    'status.phase',
    'status.podIP',
    'status.nominatedNodeName',
  ],
  Event: [
    'involvedObject.kind',
    'involvedObject.namespace',
    'involvedObject.name',
    'involvedObject.uid',
    'involvedObject.apiVersion',
    'involvedObject.resourceVersion',
    'involvedObject.fieldPath',
    'reason',
    'reportingComponent',
    'source',
    'type',
  ],
  Secret: ['type'],
  Namespace: ['status.phase'],
  Job: ['status.successful'],
  Node: ['spec.unschedulable'],
};

function fieldValue(obj: KObject, path: string): string {
  if (path === 'source') {
    const src = (obj as { source?: { component?: string } }).source;
    return src?.component ?? '';
  }
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return '';
  return String(cur);
}

export function parseFieldSelector(
  selector: string | null | undefined,
  kind: string,
): FieldMatcher | undefined {
  if (!selector || !selector.trim()) return undefined;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...(FIELD_LABELS[kind] ?? [])]);
  const reqs = splitTop(selector).map((term) => {
    const m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    if (!allowed.has(m[1]!)) throw badRequest(`field label not supported: ${m[1]}`);
    return { path: m[1]!, neq: m[2] === '!=', value: m[3]!.trim() };
  });
  return (obj) => {
    for (const r of reqs) {
      const v = fieldValue(obj, r.path);
      if (r.neq ? v === r.value : v !== r.value) return false;
    }
    return true;
  };
}
