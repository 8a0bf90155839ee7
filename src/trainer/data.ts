// Tokenized domains (tokenize.ts) -> batches of random windows, read from the shards by random
// access. A batch is a pure function of (seed, batch index): resuming at batch N replays the same data.
import { hashInts, mulberry32 } from './prng.js';
import type { Domain } from './tokenize.js';
import type { TokenStream } from './tokenShards.js';

export type { Domain } from './tokenize.js';

/** Parse `name=path,name=path` (BTX_DATA for finetune/eval). A bare path gets `defaultName`. */
export function parseNamedList(raw: string, defaultName = 'data'): { name: string; value: string }[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((item) => {
      const eq = item.indexOf('=');
      if (eq <= 0) return { name: defaultName, value: item };
      return { name: item.slice(0, eq), value: item.slice(eq + 1) };
    });
}

export interface BatchSource {
  domains: Domain[];
  /** Sampling weight per domain (same order); normalised here. */
  weights?: number[];
}

function checkLength(stream: TokenStream, window: number, what: string): void {
  if (stream.length < window + 1) {
    throw new Error(`${what} has ${stream.length} tokens, fewer than one window of ${window}`);
  }
}

/**
 * Batch `batchIndex` of the training stream: `batchSize` windows of `seqLen + 1` tokens as a
 * row-major Int32Array [batchSize, seqLen + 1]. Rows pick a domain by weight, then a start.
 */
export function trainingBatch(
  source: BatchSource,
  seed: number,
  batchIndex: number,
  batchSize: number,
  seqLen: number,
): Int32Array {
  const window = seqLen + 1;
  const { domains } = source;
  const weights = source.weights ?? domains.map(() => 1);
  const total = weights.reduce((a, b) => a + b, 0);
  for (const d of domains) checkLength(d.train, window, `the training data of domain ${d.name}`);
  const rand = mulberry32(hashInts(seed, batchIndex, 0x0da7a));
  const out = new Int32Array(batchSize * window);
  for (let row = 0; row < batchSize; row++) {
    let pick = rand() * total;
    let d = 0;
    while (d < domains.length - 1 && pick >= weights[d]!) pick -= weights[d++]!;
    const stream = domains[d]!.train;
    const start = Math.floor(rand() * (stream.length - window + 1));
    stream.read(start, window, out, row * window);
  }
  return out;
}

/**
 * The held-out evaluation windows of a domain: `count` windows of `seqLen + 1` tokens spread evenly
 * over the held-out stream (never the training stream). Deterministic, so every model is scored on
 * the same tokens.
 */
export function heldOutWindows(domain: Domain, seqLen: number, count: number): Int32Array {
  const window = seqLen + 1;
  const stream = domain.heldOut;
  checkLength(stream, window, `the held-out data of domain ${domain.name}`);
  const last = stream.length - window;
  const out = new Int32Array(count * window);
  for (let w = 0; w < count; w++) {
    const start = count === 1 ? 0 : Math.round((w * last) / (count - 1));
    stream.read(start, window, out, w * window);
  }
  return out;
}
