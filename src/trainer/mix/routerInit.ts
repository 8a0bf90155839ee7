// Initial router weights [numExperts, hidden] for one MoE layer. `zeros` makes every expert equally
// likely (top-k then breaks the ties by expert index, so each token starts on the first k experts);
// `normal` (std 0.02, HF Mixtral's initializer_range) breaks those ties differently per token, so
// every expert receives tokens and gradients from the first finetuning step. Seeded per layer.

import { mulberry32 } from '../prng.js';

export type RouterInit = 'zeros' | 'normal';
export const ROUTER_INIT_STD = 0.02;

export function routerWeights(
  init: RouterInit,
  numExperts: number,
  hidden: number,
  seed: number,
  layer: number,
): Float32Array {
  const out = new Float32Array(numExperts * hidden);
  if (init === 'zeros') return out;
  // The same (seed, layer) always gives the same router.
  const next = mulberry32(Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(layer + 1, 0x85ebca6b));
  // Box-Muller, two normals per pair of uniforms.
  for (let i = 0; i < out.length; i += 2) {
    const u1 = 1 - next();
    const u2 = next();
    const r = Math.sqrt(-2 * Math.log(u1)) * ROUTER_INIT_STD;
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
