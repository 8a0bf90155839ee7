// Equality as JSON sees it (undefined members absent, Dates as their ISO strings), without the
// round trip: the operator compares a planned status with the stored one on every reconcile, and
// JSON.parse(JSON.stringify()) of both took a tenth of its CPU in the operator bench.

function isPlainValue(x: unknown): boolean {
  return (
    x === null ||
    typeof x !== 'object' ||
    Array.isArray(x) ||
    typeof (x as { toJSON?: unknown }).toJSON !== 'function'
  );
}

/** What JSON.stringify writes for a member: undefined and functions are left out. */
function present(x: unknown): boolean {
  return x !== undefined && typeof x !== 'function' && typeof x !== 'symbol';
}

/** True when JSON.stringify would write `a` and `b` as the same JSON value (member order aside). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!isPlainValue(a) || !isPlainValue(b)) return JSON.stringify(a) === JSON.stringify(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    // Numbers JSON cannot write (NaN, Infinity) are written as null, like undefined in an array.
    return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(present(x) ? x : null, present(b[i]) ? b[i] : null));
  }
  const ak = Object.keys(a).filter((k) => present((a as Record<string, unknown>)[k]));
  const bk = Object.keys(b).filter((k) => present((b as Record<string, unknown>)[k]));
  if (ak.length !== bk.length) return false;
  const br = b as Record<string, unknown>;
  return ak.every((k) => present(br[k]) && jsonEqual((a as Record<string, unknown>)[k], br[k]));
}
