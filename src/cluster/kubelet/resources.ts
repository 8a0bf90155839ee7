// Resource quantities and the scheduler's fit check for the one embedded node.
// Quantities follow Kubernetes' suffixes (m, k, M, G, T, P, E, Ki..Ei, and exponents like 1e3).
import type { V1Pod } from '@kubernetes/client-node';

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A quantity's value in base units (cores for cpu, bytes for memory, devices for GPUs). */
export function parseQuantity(quantity: string | number): number {
  if (typeof quantity === 'number') return quantity;
  const match = /^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/.exec(
    quantity.trim(),
  );
  if (!match) throw new Error(`invalid resource quantity ${JSON.stringify(quantity)}`);
  const base = Number(match[1]);
  if (Number.isNaN(base)) throw new Error(`invalid resource quantity ${JSON.stringify(quantity)}`);
  if (match[2]) return base * 10 ** Number(match[2].slice(1));
  const suffix = match[3] ?? '';
  return base * (BINARY[suffix] ?? DECIMAL[suffix] ?? 1);
}

/** Resource name -> amount in base units. */
export type ResourceList = Record<string, number>;

function addInto(target: ResourceList, source: ResourceList): void {
  for (const [k, v] of Object.entries(source)) target[k] = (target[k] ?? 0) + v;
}

function containerRequests(
  resources: { requests?: Record<string, string>; limits?: Record<string, string> } | undefined,
): ResourceList {
  // As the API server defaults it: a resource with only a limit requests its limit.
  const out: ResourceList = {};
  for (const [k, v] of Object.entries(resources?.limits ?? {})) out[k] = parseQuantity(v);
  for (const [k, v] of Object.entries(resources?.requests ?? {})) out[k] = parseQuantity(v);
  return out;
}

/** What a pod asks of a node: max(sum of containers, each init container), as the scheduler computes it. */
export function podRequests(pod: V1Pod): ResourceList {
  const sum: ResourceList = {};
  for (const c of pod.spec?.containers ?? []) addInto(sum, containerRequests(c.resources));
  for (const c of pod.spec?.initContainers ?? []) {
    for (const [k, v] of Object.entries(containerRequests(c.resources))) sum[k] = Math.max(sum[k] ?? 0, v);
  }
  for (const [k, v] of Object.entries(pod.spec?.overhead ?? {})) sum[k] = (sum[k] ?? 0) + parseQuantity(v);
  return sum;
}

/** The resources a pod asks for that do not fit in what is left, sorted by name (empty = fits). */
export function insufficientResources(
  requests: ResourceList,
  allocatable: ResourceList,
  used: ResourceList,
): string[] {
  const short: string[] = [];
  for (const [name, amount] of Object.entries(requests)) {
    if (amount <= 0) continue;
    // A small epsilon absorbs float noise from millicore arithmetic.
    if (amount > (allocatable[name] ?? 0) - (used[name] ?? 0) + 1e-9) short.push(name);
  }
  return short.sort();
}

/** The scheduler's FailedScheduling message for a one-node cluster. */
export function unschedulableMessage(reasons: string[]): string {
  return `0/1 nodes are available: ${reasons.map((r) => `1 ${r}`).join(', ')}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.`;
}

export function sumRequests(pods: V1Pod[]): ResourceList {
  const used: ResourceList = {};
  for (const p of pods) addInto(used, podRequests(p));
  return used;
}

/** A quantity as the API writes it back in Node status (whole numbers, or millicores for cpu). */
export function formatQuantity(name: string, value: number): string {
  if (name === 'cpu' && !Number.isInteger(value)) return `${Math.round(value * 1000)}m`;
  if (name === 'memory' && value % 2 ** 10 === 0 && value > 0) return `${value / 2 ** 10}Ki`;
  return String(Math.round(value));
}
