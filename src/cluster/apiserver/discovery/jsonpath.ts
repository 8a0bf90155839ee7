// The subset of kubectl's JSONPath used by additionalPrinterColumns: `.a.b`, `.a[0]`, `.a[*].b`,
// `.a[?(@.type=="Ready")].status`, quoted keys `['x.y']`.
import { isObject } from '../apimachinery/meta.js';

type Step =
  | { field: string }
  | { index: number }
  | { all: true }
  | { filter: { path: string[]; op: string; value: string } };

function parse(path: string): Step[] {
  let p = path.trim();
  if (p.startsWith('{') && p.endsWith('}')) p = p.slice(1, -1);
  if (p.startsWith('$')) p = p.slice(1);
  const steps: Step[] = [];
  let i = 0;
  while (i < p.length) {
    const ch = p[i];
    if (ch === '.') {
      i++;
      let j = i;
      while (j < p.length && p[j] !== '.' && p[j] !== '[') j++;
      if (j > i) steps.push({ field: p.slice(i, j) });
      i = j;
    } else if (ch === '[') {
      const end = p.indexOf(']', i);
      if (end < 0) break;
      const inner = p.slice(i + 1, end).trim();
      i = end + 1;
      if (inner === '*') steps.push({ all: true });
      else if (/^-?\d+$/.test(inner)) steps.push({ index: Number(inner) });
      else if (/^['"].*['"]$/.test(inner)) steps.push({ field: inner.slice(1, -1) });
      else {
        const m = /^\?\(@\.([\w.]+)\s*(==|!=)\s*['"]?([^'"]*)['"]?\)$/.exec(inner);
        if (m) steps.push({ filter: { path: m[1]!.split('.'), op: m[2]!, value: m[3]! } });
      }
    } else {
      let j = i;
      while (j < p.length && p[j] !== '.' && p[j] !== '[') j++;
      steps.push({ field: p.slice(i, j) });
      i = j;
    }
  }
  return steps;
}

const cache = new Map<string, Step[]>();

/** All values the path selects, in order. */
export function evaluate(path: string, root: unknown): unknown[] {
  let steps = cache.get(path);
  if (!steps) cache.set(path, (steps = parse(path)));
  let cur: unknown[] = [root];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of cur) {
      if ('field' in step) {
        if (isObject(v) && v[step.field] !== undefined) next.push(v[step.field]);
      } else if ('index' in step) {
        if (Array.isArray(v)) {
          const item = v[step.index < 0 ? v.length + step.index : step.index];
          if (item !== undefined) next.push(item);
        }
      } else if ('all' in step) {
        if (Array.isArray(v)) next.push(...v);
        else if (isObject(v)) next.push(...Object.values(v));
      } else {
        if (!Array.isArray(v)) continue;
        for (const item of v) {
          let x: unknown = item;
          for (const f of step.filter.path) x = isObject(x) ? x[f] : undefined;
          const eq = x !== undefined && String(x) === step.filter.value;
          if (step.filter.op === '==' ? eq : !eq && x !== undefined) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}
