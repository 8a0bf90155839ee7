// How deep a request body may nest. The real server's JSON decoder stops at 10,000 levels with
// "exceeded max depth" (a 400); here admission, patches and deep copies walk objects recursively and
// ran out of stack near 4,000 levels (a 500), so bodies are checked right after parsing, without
// recursion, against a lower bound that no Kubernetes object comes near.
import { badRequest } from '../apimachinery/errors.js';

export const MAX_NESTING_DEPTH = 1000;

/** Throws a 400 when `value` has objects or arrays nested deeper than MAX_NESTING_DEPTH. */
export function checkNestingDepth(value: unknown, what = 'the object provided is unrecognized'): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_NESTING_DEPTH)
      throw badRequest(`${what}: exceeded max depth: nested deeper than ${MAX_NESTING_DEPTH} levels`);
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
}
