// Token shards on disk: a tokenized domain is a folder with `manifest.json` and flat little-endian
// uint16 (vocabulary <= 65,536) or uint32 files of token ids, `train-00000.bin`... and
// `heldout-00000.bin`..., every document followed by the separator ids (the tokenizer's EOS).
// Readers take windows by random access (one pread per window), so a domain of any size is never
// loaded. The format is documented in docs/stage-contract.md for trainers of other languages.
import { closeSync, openSync, readSync } from 'node:fs';
import { open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DocumentUnit, Part, SourceFile } from './corpus.js';
import { writeFileSynced } from './shardedCheckpoint.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'btx-tokens';
export const MANIFEST_VERSION = 1;
/** A shard file holds at most this many tokens (128 MiB of uint16). */
export const DEFAULT_SHARD_TOKENS = 64 << 20;

export type TokenDtype = 'uint16' | 'uint32';
export type StreamName = 'train' | 'heldOut';

export interface ShardFile {
  /** Relative to the domain folder (a merged manifest names `part-.../train-00000.bin`). */
  file: string;
  tokens: number;
}

export interface StreamStats {
  documents: number;
  tokens: number;
  /** UTF-8 bytes of the documents' text (separators count as tokens, not bytes). */
  bytes: number;
  shards: ShardFile[];
}

export interface TokenManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  domain: string;
  tokenizerSha256: string;
  vocabSize: number;
  dtype: TokenDtype;
  /** Ids written after every document. */
  separator: number[];
  documentRules: string;
  split: { rule: string; heldOutBuckets: number };
  /** The data path as the stage was given it, and every source file with the unit it was cut by. */
  source: { path: string; files: (SourceFile & { unit: DocumentUnit })[] };
  /** This manifest's part (null: the whole domain, written by one pod or merged from parts). */
  part: Part | null;
  parts: number;
  documents: number;
  tokens: number;
  bytes: number;
  heldOutDocuments: number;
  heldOutTokens: number;
  heldOutBytes: number;
  train: StreamStats;
  heldOut: StreamStats;
  createdAt: string;
}

export function dtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

const BYTES: Record<TokenDtype, number> = { uint16: 2, uint32: 4 };

/** Appends token ids to numbered shard files `<prefix>-00000.bin`... of at most maxTokens each. */
export class ShardWriter {
  private readonly buffer: Uint16Array | Uint32Array;
  private fill = 0;
  private shardTokens = 0;
  private handle: Awaited<ReturnType<typeof open>> | null = null;
  readonly shards: ShardFile[] = [];

  constructor(
    private readonly dir: string,
    private readonly prefix: string,
    readonly dtype: TokenDtype,
    private readonly maxTokens = DEFAULT_SHARD_TOKENS,
  ) {
    const size = Math.min(1 << 20, maxTokens);
    this.buffer = dtype === 'uint16' ? new Uint16Array(size) : new Uint32Array(size);
  }

  get tokens(): number {
    return this.shards.reduce((n, s) => n + s.tokens, 0);
  }

  async append(ids: ArrayLike<number>): Promise<void> {
    for (let i = 0; i < ids.length;) {
      const room = Math.min(this.buffer.length - this.fill, this.maxTokens - this.shardTokens - this.fill);
      const n = Math.min(room, ids.length - i);
      for (let k = 0; k < n; k++) this.buffer[this.fill + k] = ids[i + k]!;
      this.fill += n;
      i += n;
      if (this.fill === this.buffer.length || this.shardTokens + this.fill === this.maxTokens)
        await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    if (!this.handle) {
      const file = `${this.prefix}-${String(this.shards.length).padStart(5, '0')}.bin`;
      this.handle = await open(join(this.dir, file), 'w');
      this.shards.push({ file, tokens: 0 });
    }
    const bytes = new Uint8Array(this.buffer.buffer, 0, this.fill * BYTES[this.dtype]);
    await this.handle.write(bytes);
    this.shardTokens += this.fill;
    this.shards[this.shards.length - 1]!.tokens = this.shardTokens;
    this.fill = 0;
    if (this.shardTokens === this.maxTokens) await this.closeShard();
  }

  private async closeShard(): Promise<void> {
    if (!this.handle) return;
    await this.handle.sync();
    await this.handle.close();
    this.handle = null;
    this.shardTokens = 0;
  }

  async close(): Promise<ShardFile[]> {
    await this.flush();
    await this.closeShard();
    return this.shards;
  }
}

/** One stream (train or held-out) of a tokenized domain, read by random access. */
export class TokenStream {
  readonly length: number;
  private readonly starts: number[] = [];
  private readonly fds: number[] = [];
  private readonly width: number;
  private scratch = Buffer.alloc(0);

  constructor(dir: string, shards: readonly ShardFile[], dtype: TokenDtype) {
    this.width = BYTES[dtype];
    let at = 0;
    for (const s of shards) {
      this.starts.push(at);
      this.fds.push(openSync(join(dir, s.file), 'r'));
      at += s.tokens;
    }
    this.length = at;
    this.shardTokens = shards.map((s) => s.tokens);
  }

  private readonly shardTokens: number[];

  /** Copy tokens [start, start + count) into out[outAt...]. */
  read(start: number, count: number, out: Int32Array, outAt = 0): void {
    if (start < 0 || start + count > this.length) {
      throw new RangeError(`tokens ${start}..${start + count} are outside 0..${this.length}`);
    }
    if (this.scratch.length < count * this.width) this.scratch = Buffer.alloc(count * this.width);
    // The shard holding `start` (binary search over shard starts).
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= start) lo = mid;
      else hi = mid - 1;
    }
    let shard = lo;
    let pos = start;
    let done = 0;
    while (done < count) {
      const within = pos - this.starts[shard]!;
      const n = Math.min(count - done, this.shardTokens[shard]! - within);
      const bytes = n * this.width;
      let got = 0;
      while (got < bytes) {
        const r = readSync(this.fds[shard]!, this.scratch, got, bytes - got, within * this.width + got);
        if (r === 0) throw new Error(`token shard ${shard} ended early at token ${within}`);
        got += r;
      }
      if (this.width === 2)
        for (let k = 0; k < n; k++) out[outAt + done + k] = this.scratch.readUInt16LE(2 * k);
      else for (let k = 0; k < n; k++) out[outAt + done + k] = this.scratch.readUInt32LE(4 * k);
      done += n;
      pos += n;
      shard++;
    }
  }

  /** All tokens (tests and small domains only). */
  all(): Int32Array {
    const out = new Int32Array(this.length);
    this.read(0, this.length, out);
    return out;
  }

  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}

export async function readManifest(dir: string): Promise<TokenManifest | null> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return null;
    throw err;
  }
  try {
    const m = JSON.parse(text) as TokenManifest;
    return m.format === MANIFEST_FORMAT ? m : null;
  } catch {
    return null; // a torn or foreign file: treated as absent, so the domain is tokenized again
  }
}

/** Whether `m` was made from exactly these sources with this tokenizer. */
export function isCurrent(
  m: TokenManifest,
  want: { tokenizerSha256: string; path: string; files: readonly SourceFile[] },
): boolean {
  if (m.version !== MANIFEST_VERSION || m.tokenizerSha256 !== want.tokenizerSha256) return false;
  if (m.source.path !== want.path || m.source.files.length !== want.files.length) return false;
  return m.source.files.every((f, i) => {
    const g = want.files[i]!;
    return f.path === g.path && f.size === g.size && f.mtimeMs === g.mtimeMs;
  });
}

/** Why a manifest is not current, for the log line. */
export function staleReason(
  m: TokenManifest | null,
  want: { tokenizerSha256: string; path: string; files: readonly SourceFile[] },
): string {
  if (!m) return 'no manifest';
  if (m.version !== MANIFEST_VERSION) return `manifest version ${m.version}`;
  if (m.tokenizerSha256 !== want.tokenizerSha256) return 'tokenizer changed';
  if (m.source.path !== want.path) return `data path was ${m.source.path}`;
  const changed = want.files.find((g, i) => {
    const f = m.source.files[i];
    return !f || f.path !== g.path || f.size !== g.size || f.mtimeMs !== g.mtimeMs;
  });
  if (changed) return `source ${changed.path || want.path} changed`;
  return 'source files removed';
}

export function partDirName(part: Part): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `part-${pad(part.index)}-of-${pad(part.count)}`;
}

/** Write `<dir>/manifest.json` atomically (temp file + rename). */
export async function writeManifest(dir: string, m: TokenManifest): Promise<void> {
  const tmp = join(dir, `${MANIFEST_FILE}.tmp-${randomBytes(6).toString('hex')}`);
  await writeFileSynced(tmp, `${JSON.stringify(m, null, 2)}\n`);
  await rename(tmp, join(dir, MANIFEST_FILE));
}

/**
 * The whole domain from its n part manifests (`<dir>/part-i-of-n/manifest.json`), or null while a
 * part is missing or stale. Shard paths become relative to `dir`; parts keep their order.
 */
export async function mergeParts(
  dir: string,
  count: number,
  want: { tokenizerSha256: string; path: string; files: readonly SourceFile[] },
): Promise<TokenManifest | null> {
  const parts: TokenManifest[] = [];
  for (let index = 0; index < count; index++) {
    const sub = partDirName({ index, count });
    const m = await readManifest(join(dir, sub));
    if (!m || !isCurrent(m, want)) return null;
    const prefix = (s: StreamStats): StreamStats => ({
      ...s,
      shards: s.shards.map((f) => ({ file: `${sub}/${f.file}`, tokens: f.tokens })),
    });
    parts.push({ ...m, train: prefix(m.train), heldOut: prefix(m.heldOut) });
  }
  const [first] = parts;
  if (!first) return null;
  const sum = (pick: (m: TokenManifest) => number) => parts.reduce((n, m) => n + pick(m), 0);
  const stream = (name: StreamName): StreamStats => ({
    documents: sum((m) => m[name].documents),
    tokens: sum((m) => m[name].tokens),
    bytes: sum((m) => m[name].bytes),
    shards: parts.flatMap((m) => m[name].shards),
  });
  const train = stream('train');
  const heldOut = stream('heldOut');
  return {
    ...first,
    part: null,
    parts: count,
    ...totals(train, heldOut),
    train,
    heldOut,
    createdAt: new Date().toISOString(),
  };
}

export function totals(train: StreamStats, heldOut: StreamStats) {
  return {
    documents: train.documents + heldOut.documents,
    tokens: train.tokens + heldOut.tokens,
    bytes: train.bytes + heldOut.bytes,
    heldOutDocuments: heldOut.documents,
    heldOutTokens: heldOut.tokens,
    heldOutBytes: heldOut.bytes,
  };
}

/** Remove part folders of another part count (left by an earlier split of the same domain). */
export async function removeOtherParts(dir: string, count: number): Promise<void> {
  const keep = new RegExp(`^part-\\d{5}-of-${String(count).padStart(5, '0')}$`);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (/^part-\d{5}-of-\d{5}$/.test(name) && !keep.test(name)) {
      await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}
