// Small deterministic PRNGs. Everything random in training (data windows, expert sampling,
// initialisation) is a pure function of (seed, step, ...) so a resumed run replays the same draws.

/** 32-bit mix of several integers (splitmix-style finaliser over a running hash). */
export function hashInts(...values: number[]): number {
  let h = 0x9e3779b9 | 0;
  for (const v of values) {
    h = Math.imul(h ^ (v | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    // Large values (e.g. > 2^32) also mix their high part.
    const high = Math.floor(v / 4294967296) | 0;
    if (high !== 0) h = Math.imul(h ^ high, 0x27d4eb2f);
  }
  return h >>> 0;
}

/** FNV-1a hash of a string, for stable per-name and per-document decisions. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a fast PRNG with 32-bit state; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
