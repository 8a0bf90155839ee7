// Tokenize once, stream forever: a domain's sources -> token shards + manifest (tokenShards.ts),
// reused as long as the manifest says they came from the same source files (path, size, mtime) and
// the same tokenizer (sha256 of tokenizer.json). Memory stays flat whatever the corpus size: documents
// stream in (corpus.ts), go to the tokenizer in batches of ~256 KB, and ids go straight to the shard
// files (the tokenizer releases each batch's native memory: nativeMemory.ts).
// The split: a document is held out when FNV-1a(text) % 10 == 0, so held-out and train never share one.
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { log } from '../util/log.js';
import { commitTempDir, makeTempDir } from './checkpoint.js';
import {
  documentUnit,
  DOCUMENT_RULES,
  fileDocuments,
  listSources,
  partRanges,
  sourcePath,
  type DocumentUnit,
  type Part,
  type SourceFile,
} from './corpus.js';
import { InputError } from './inputError.js';
import { hashString } from './prng.js';
import {
  dtypeFor,
  isCurrent,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  mergeParts,
  partDirName,
  readManifest,
  removeOtherParts,
  ShardWriter,
  staleReason,
  totals,
  TokenStream,
  writeManifest,
  type StreamStats,
  type TokenManifest,
} from './tokenShards.js';
import type { TextTokenizer } from './tokenizer.js';

export const HELD_OUT_BUCKETS = 10;
export const SPLIT_RULE = `held out when FNV-1a 32-bit of the document's UTF-16 code units % ${HELD_OUT_BUCKETS} == 0`;
/**
 * Text per encodeBatch call: large enough for the library's threads, small enough for flat memory
 * (Llama 3, 16 MB corpus: peak RSS 187 MiB at 256 KB vs 205 MiB at 512 KB, both collected per batch).
 */
const BATCH_BYTES = 1 << 18;
const BATCH_DOCS = 4096;

export interface TokenizeRequest {
  name: string;
  /** The data path as given (container path): recorded in the manifest, part of its identity. */
  dataPath: string;
  /** Where to read it (host path). */
  hostDataPath: string;
  /** `<tokensDir>/<name>/` receives the shards (host path). */
  tokensDir: string;
  tokenizer: TextTokenizer;
  part?: Part;
  shardTokens?: number;
}

export interface TokenizeResult {
  manifest: TokenManifest;
  /** The folder holding manifest.json (the domain's, or the part's). */
  dir: string;
  reused: boolean;
  /** The whole domain's manifest once every part is done (the same as `manifest` without parts). */
  merged: TokenManifest | null;
  seconds: number;
}

/** The error for a domain too small to hold out any document (or to train on any). */
function checkSplit(name: string, path: string, train: StreamStats, heldOut: StreamStats): void {
  if (heldOut.documents === 0 || train.documents === 0) {
    const docs = train.documents + heldOut.documents;
    throw new Error(
      `domain ${name} (${path}): ${docs} documents give ${heldOut.documents} held-out and ${train.documents} ` +
        `training documents (about 1 in ${HELD_OUT_BUCKETS} is held out, by hash); it needs more documents ` +
        `(paragraphs, or lines of a file without blank lines) so that neither part is empty`,
    );
  }
}

async function tokenizeInto(
  out: string,
  req: TokenizeRequest,
  files: (SourceFile & { unit: DocumentUnit })[],
  ranges: ({ start: number; end: number } | null)[],
): Promise<{ train: StreamStats; heldOut: StreamStats; separator: number[] }> {
  const { tokenizer } = req;
  const dtype = dtypeFor(tokenizer.vocabSize);
  const separator = tokenizer.eosId !== null ? [tokenizer.eosId] : await tokenizer.encode('\n\n');
  const writers = {
    train: new ShardWriter(out, 'train', dtype, req.shardTokens),
    heldOut: new ShardWriter(out, 'heldout', dtype, req.shardTokens),
  };
  const stats = {
    train: { documents: 0, bytes: 0 },
    heldOut: { documents: 0, bytes: 0 },
  };
  const write = async (docs: string[], ids: number[][]) => {
    for (let i = 0; i < docs.length; i++) {
      const side = hashString(docs[i]!) % HELD_OUT_BUCKETS === 0 ? 'heldOut' : 'train';
      stats[side].documents++;
      stats[side].bytes += Buffer.byteLength(docs[i]!);
      await writers[side].append(ids[i]!);
      await writers[side].append(separator);
    }
  };
  // One batch is being encoded (in the library's threads) while the next one is read.
  let inflight: Promise<void> = Promise.resolve();
  let batch: string[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const docs = batch;
    batch = [];
    batchBytes = 0;
    await inflight;
    inflight = tokenizer.encodeBatch(docs).then((ids) => write(docs, ids));
  };
  let lastLog = performance.now();
  let bytesRead = 0;
  const total = files.reduce((n, f) => n + f.size, 0);
  for (const [i, f] of files.entries()) {
    const range = ranges[i];
    if (!range) continue;
    for await (const doc of fileDocuments(sourcePath(req.hostDataPath, f), f.unit, range)) {
      batch.push(doc);
      batchBytes += doc.length;
      bytesRead += doc.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_DOCS) await flush();
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        log.info('tokenize progress', { domain: req.name, megabytes: bytesRead / 1e6, of: total / 1e6 });
      }
    }
  }
  await flush();
  await inflight;
  const train = { ...stats.train, shards: await writers.train.close(), tokens: writers.train.tokens };
  const heldOut = { ...stats.heldOut, shards: await writers.heldOut.close(), tokens: writers.heldOut.tokens };
  return { train, heldOut, separator };
}

/**
 * Make `<tokensDir>/<name>/` current for this tokenizer and these sources (or this part of it,
 * `<name>/part-i-of-n/`), reusing what is there when its manifest matches. When the last part
 * finishes, the domain's own manifest.json is merged from the parts.
 */
export async function tokenizeDomain(req: TokenizeRequest): Promise<TokenizeResult> {
  const started = performance.now();
  const part = req.part ?? { index: 0, count: 1 };
  if (
    !Number.isInteger(part.count) ||
    part.count < 1 ||
    !Number.isInteger(part.index) ||
    part.index < 0 ||
    part.index >= part.count
  ) {
    throw new Error(`part ${part.index}/${part.count}: needs 0 <= index < count`);
  }
  const domainDir = join(req.tokensDir, req.name);
  const sources = await listSources(req.hostDataPath);
  if (sources.length === 0)
    throw new InputError(`domain ${req.name}: no .txt, .md or .jsonl files under ${req.dataPath}`);
  const want = { tokenizerSha256: req.tokenizer.sha256, path: req.dataPath, files: sources };
  const split = part.count > 1;
  const dir = split ? join(domainDir, partDirName(part)) : domainDir;
  const existing = await readManifest(dir);
  const seconds = () => (performance.now() - started) / 1000;
  if (existing && isCurrent(existing, want)) {
    const merged = split ? await mergeAndCheck(domainDir, part.count, req, want) : existing;
    return { manifest: existing, dir, reused: true, merged, seconds: seconds() };
  }
  log.info('tokenizing domain', {
    domain: req.name,
    data: req.dataPath,
    part: split ? `${part.index}/${part.count}` : undefined,
    reason: staleReason(existing, want),
    files: sources.length,
    megabytes: sources.reduce((n, f) => n + f.size, 0) / 1e6,
  });
  const files: (SourceFile & { unit: DocumentUnit })[] = [];
  for (const f of sources) files.push({ ...f, unit: await documentUnit(sourcePath(req.hostDataPath, f)) });
  await mkdir(dirname(dir), { recursive: true });
  if (split) await removeOtherParts(domainDir, part.count);
  const tmp = await makeTempDir(dir);
  try {
    const { train, heldOut, separator } = await tokenizeInto(tmp, req, files, partRanges(files, part));
    if (!split) checkSplit(req.name, req.dataPath, train, heldOut);
    const manifest: TokenManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      domain: req.name,
      tokenizerSha256: req.tokenizer.sha256,
      vocabSize: req.tokenizer.vocabSize,
      dtype: dtypeFor(req.tokenizer.vocabSize),
      separator,
      documentRules: DOCUMENT_RULES,
      split: { rule: SPLIT_RULE, heldOutBuckets: HELD_OUT_BUCKETS },
      source: { path: req.dataPath, files },
      part: split ? part : null,
      parts: part.count,
      ...totals(train, heldOut),
      train,
      heldOut,
      createdAt: new Date().toISOString(),
    };
    await writeManifest(tmp, manifest);
    await commitTempDir(tmp, dir);
    const merged = split ? await mergeAndCheck(domainDir, part.count, req, want) : manifest;
    log.info('domain tokenized', {
      domain: req.name,
      documents: manifest.documents,
      tokens: manifest.tokens,
      heldOutTokens: manifest.heldOutTokens,
      seconds: seconds(),
    });
    return { manifest, dir, reused: false, merged, seconds: seconds() };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Once every part is current: write the domain's merged manifest (the last part to finish does it). */
async function mergeAndCheck(
  domainDir: string,
  count: number,
  req: TokenizeRequest,
  want: { tokenizerSha256: string; path: string; files: readonly SourceFile[] },
): Promise<TokenManifest | null> {
  const current = await readManifest(domainDir);
  if (current && current.parts === count && isCurrent(current, want)) return current;
  const merged = await mergeParts(domainDir, count, want);
  if (!merged) return null;
  checkSplit(req.name, req.dataPath, merged.train, merged.heldOut);
  await writeManifest(domainDir, merged);
  return merged;
}

/** The sources of a domain, and whether `<tokensDir>/<name>/` holds current shards of them. */
export interface DomainState {
  bytes: number;
  current: boolean;
  /** Why not current (for messages); empty when current. */
  reason: string;
}

export async function domainState(
  req: Pick<TokenizeRequest, 'name' | 'dataPath' | 'hostDataPath' | 'tokensDir' | 'tokenizer'>,
): Promise<DomainState> {
  const sources = await listSources(req.hostDataPath);
  const want = { tokenizerSha256: req.tokenizer.sha256, path: req.dataPath, files: sources };
  const existing = await readManifest(join(req.tokensDir, req.name));
  const current = existing !== null && isCurrent(existing, want);
  return {
    bytes: sources.reduce((n, f) => n + f.size, 0),
    current,
    reason: current ? '' : staleReason(existing, want),
  };
}

/**
 * How many parts a domain should be tokenized in: 1 while its sources fit in `partBytes`, else
 * ceil(bytes / partBytes), at most `maxParts`.
 */
export function partsFor(bytes: number, partBytes: number, maxParts: number): number {
  if (bytes <= partBytes) return 1;
  return Math.max(1, Math.min(maxParts, Math.ceil(bytes / partBytes)));
}

/** A tokenized domain opened for reading. */
export interface Domain {
  name: string;
  manifest: TokenManifest;
  train: TokenStream;
  heldOut: TokenStream;
  documents: number;
  heldOutDocuments: number;
}

export function openDomain(name: string, dir: string, manifest: TokenManifest): Domain {
  const train = new TokenStream(dir, manifest.train.shards, manifest.dtype);
  const heldOut = new TokenStream(dir, manifest.heldOut.shards, manifest.dtype);
  return {
    name,
    manifest,
    train,
    heldOut,
    documents: manifest.documents,
    heldOutDocuments: manifest.heldOutDocuments,
  };
}

export function closeDomain(d: Domain): void {
  d.train.close();
  d.heldOut.close();
}

/**
 * A stage's domain: `path` may be a tokenized folder (a manifest.json of `btx tokenize`, used as it
 * is once its tokenizer matches) or source text, tokenized into `<tokensDir>/<name>/` unless current
 * shards are already there. Paths: `path` as given (container), `hostPath` to read it, tokensDir on the host.
 * `tokenized` (the operator's tokenize stage ran, BTX_TOKENIZED): the shards must be there and
 * current; the stage fails naming the domain instead of tokenizing on its own.
 */
export async function loadDomain(
  name: string,
  path: string,
  hostDataPath: string,
  tokensDir: string,
  tokenizer: TextTokenizer,
  tokenized = false,
): Promise<Domain> {
  const direct = await readManifest(hostDataPath);
  if (direct) {
    if (direct.tokenizerSha256 !== tokenizer.sha256) {
      throw new Error(
        `domain ${name}: the token shards in ${path} were made with tokenizer sha256 ${direct.tokenizerSha256.slice(0, 16)}..., ` +
          `not this model's ${tokenizer.sha256.slice(0, 16)}...; tokenize the data again with the model's tokenizer`,
      );
    }
    return openDomain(name, hostDataPath, direct);
  }
  if (tokenized) {
    const dir = join(tokensDir, name);
    const state = await domainState({ name, dataPath: path, hostDataPath, tokensDir, tokenizer });
    const manifest = state.current ? await readManifest(dir) : null;
    if (!manifest) {
      throw new Error(
        `domain ${name}: the tokenize stage's shards in ${dir} are not current for ${path} (${state.reason || 'manifest gone'}); ` +
          'this stage does not tokenize on its own when the tokenize stage ran: run the tokenize stage again (a new run) or unset BTX_TOKENIZED',
      );
    }
    return openDomain(name, dir, manifest);
  }
  const { merged, dir } = await tokenizeDomain({ name, dataPath: path, hostDataPath, tokensDir, tokenizer });
  return openDomain(name, dir, merged!);
}
