// Domains of text -> token streams -> batches of random windows.
//
// A domain is a file or a folder (searched recursively) of .txt, .md and .jsonl ({"text": ...}).
// Documents are paragraphs of .txt/.md files and lines of .jsonl files; ~10% of them, chosen by a
// hash of their text, are held out, so the split never depends on file order or on the seed.
// A batch is a pure function of (seed, batch index): resuming at batch N replays the same data.
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { byteTokenizer } from './tokenizer.js';
import type { TextTokenizer } from './tokenizer.js';
import { hashInts, hashString, mulberry32 } from './prng.js';

const EXTENSIONS = new Set(['.txt', '.md', '.jsonl']);
const HELD_OUT_BUCKETS = 10; // 1 in 10 documents is held out
const SEPARATOR = '\n\n';

/** Token ids; 32-bit when the vocabulary does not fit 16 bits. */
export type TokenStream = Uint16Array | Uint32Array;

export interface Domain {
  name: string;
  train: TokenStream;
  heldOut: TokenStream;
  documents: number;
  heldOutDocuments: number;
}

async function listFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch((err: unknown) => {
    throw new Error(`data path ${path} cannot be read`, { cause: err });
  });
  if (info.isFile()) return [path];
  const out: string[] = [];
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else if (EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(full);
  }
  return out;
}

function documentsOf(file: string, text: string): string[] {
  if (extname(file).toLowerCase() === '.jsonl') {
    const docs: string[] = [];
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        throw new Error(`${file}:${i + 1}: not JSON`, { cause: err });
      }
      const t = (parsed as { text?: unknown } | null)?.text;
      if (typeof t !== 'string') throw new Error(`${file}:${i + 1}: no string "text" field`);
      docs.push(t);
    });
    return docs;
  }
  return text.split(/\n[ \t]*\n/).filter((p) => p.trim() !== '');
}

async function concatTokens(docs: string[], tokenizer: TextTokenizer): Promise<TokenStream> {
  const parts = await tokenizer.encodeBatch(docs.map((d) => d + SEPARATOR));
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = tokenizer.vocabSize <= 65536 ? new Uint16Array(length) : new Uint32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Read a domain from `path` (a host path) and split it into train and held-out token streams. */
export async function loadDomain(
  name: string,
  path: string,
  tokenizer: TextTokenizer = byteTokenizer(),
): Promise<Domain> {
  const files = await listFiles(path);
  const docs: string[] = [];
  for (const f of files) docs.push(...documentsOf(f, await readFile(f, 'utf8')));
  if (docs.length === 0) throw new Error(`domain ${name}: no .txt, .md or .jsonl text under ${path}`);
  const train: string[] = [];
  const heldOut: string[] = [];
  for (const d of docs) (hashString(d) % HELD_OUT_BUCKETS === 0 ? heldOut : train).push(d);
  // Tiny domains may hash nothing (or everything) into held-out: keep both sides non-empty.
  if (heldOut.length === 0 && train.length > 1) heldOut.push(train.pop()!);
  if (train.length === 0 && heldOut.length > 1) train.push(heldOut.pop()!);
  return {
    name,
    train: await concatTokens(train, tokenizer),
    heldOut: await concatTokens(heldOut.length > 0 ? heldOut : train, tokenizer),
    documents: docs.length,
    heldOutDocuments: heldOut.length,
  };
}

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
  for (const d of domains) checkLength(d.train, window, `domain ${d.name}`);
  const rand = mulberry32(hashInts(seed, batchIndex, 0x0da7a));
  const out = new Int32Array(batchSize * window);
  for (let row = 0; row < batchSize; row++) {
    let pick = rand() * total;
    let d = 0;
    while (d < domains.length - 1 && pick >= weights[d]!) pick -= weights[d++]!;
    const stream = domains[d]!.train;
    const start = Math.floor(rand() * (stream.length - window + 1));
    for (let i = 0; i < window; i++) out[row * window + i] = stream[start + i]!;
  }
  return out;
}

/**
 * The held-out evaluation windows of a domain: `count` windows of `seqLen + 1` tokens spread evenly
 * over the held-out stream. Deterministic, so every model is scored on the same tokens.
 */
export function heldOutWindows(domain: Domain, seqLen: number, count: number): Int32Array {
  const window = seqLen + 1;
  const stream = domain.heldOut.length >= window ? domain.heldOut : domain.train;
  checkLength(stream, window, `held-out data of ${domain.name}`);
  const last = stream.length - window;
  const out = new Int32Array(count * window);
  for (let w = 0; w < count; w++) {
    const start = count === 1 ? 0 : Math.round((w * last) / (count - 1));
    for (let i = 0; i < window; i++) out[w * window + i] = stream[start + i]!;
  }
  return out;
}
