// `btx tokenize --tokenizer DIR --data NAME=PATH [...] --out DIR [--part i/n]`: each domain's text
// -> token shards + manifest.json in OUT/NAME/ (docs/stage-contract.md), skipped when current.
// As the tokenize stage it reads the same BTX_* variables and writes a termination message; with
// --part-bytes (the operator's first pod of a domain) a domain too big for one pod is not tokenized
// but answered as a `split`, and the operator runs it as an Indexed Job of that many parts.
import { ENV, type TokenizeSplit, type TokenizeSummary } from '../api/stageContract.js';
import { type CommandSpec, type Flags, UsageError } from './flags.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';
import type { Part } from '../trainer/corpus.js';
import { domainState, partsFor, tokenizeDomain } from '../trainer/tokenize.js';
import { readManifest, type TokenManifest } from '../trainer/tokenShards.js';
import { byteTokenizer, loadTokenizer } from '../trainer/tokenizer.js';
import { hostPath } from '../util/containerPaths.js';

export const command: CommandSpec = {
  name: 'btx tokenize',
  usage:
    'btx tokenize --data NAME=PATH [...] --out DIR [--tokenizer CHECKPOINT_DIR] [--part i/n | --part-bytes N]',
  about: `Tokenizes each domain once into OUT/NAME/ (token shards + manifest.json) with the tokenizer of a
checkpoint folder (its tokenizer.json; default: the built-in byte tokenizer). Current shards (same
source files by size and mtime, same tokenizer) are kept. --part i/n tokenizes one of n parts (an
Indexed Job's pod: JOB_COMPLETION_INDEX with BTX_PARTS=n); the last part merges the manifest.
--part-bytes N (the operator's first pod of a domain): a stale domain with more bytes of sources is
not tokenized but answered as a split into ceil(bytes / N) parts (at most --max-parts).`,
  flags: [
    {
      name: 'data',
      value: 'NAME=PATH',
      env: ENV.data,
      repeatable: true,
      help: 'a domain: a .txt/.md/.jsonl file or a folder of them',
    },
    { name: 'out', value: 'DIR', env: ENV.tokens, help: 'folder for NAME/manifest.json + shards (required)' },
    {
      name: 'tokenizer',
      value: 'DIR',
      env: ENV.tokenizer,
      help: 'checkpoint folder with tokenizer.json (default: the byte tokenizer)',
    },
    { name: 'part', value: 'I/N', env: ENV.part, help: 'tokenize part I (0-based) of N' },
    { name: 'parts', value: 'N', env: ENV.parts, help: 'N parts, this pod being JOB_COMPLETION_INDEX' },
    {
      name: 'part-bytes',
      value: 'BYTES',
      env: ENV.partBytes,
      help: 'without --part: a stale domain with more bytes of sources is not tokenized but answered as a split',
    },
    {
      name: 'max-parts',
      value: 'N',
      env: ENV.maxParts,
      help: 'the most parts a split asks for (default 16)',
    },
  ],
};

function parsePart(f: Flags): Part | undefined {
  const raw = f.string('part');
  if (raw !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
    if (!m || Number(m[1]) >= Number(m[2])) {
      throw new UsageError(`--part must be I/N with 0 <= I < N, got '${raw}'`);
    }
    return { index: Number(m[1]), count: Number(m[2]) };
  }
  const index = process.env.JOB_COMPLETION_INDEX;
  if (!f.has('parts')) return undefined;
  const count = f.number('parts', 1, { integer: true, min: 1 });
  if (index === undefined || !/^\d+$/.test(index) || Number(index) >= count) {
    throw new Error(
      `btx tokenize: --parts ${count} needs JOB_COMPLETION_INDEX in 0..${count - 1}, got '${index}'`,
    );
  }
  return { index: Number(index), count };
}

function counts(m: TokenManifest): Pick<TokenizeSummary, 'documents' | 'tokens' | 'bytes' | 'heldOutTokens'> {
  return { documents: m.documents, tokens: m.tokens, bytes: m.bytes, heldOutTokens: m.heldOutTokens };
}

export async function run(f: Flags): Promise<number> {
  const out = f.required('out');
  const data = f.named('data').map((d) => ({ name: d.name, path: d.value }));
  if (data.length === 0) throw new UsageError(`--data NAME=PATH (or ${ENV.data}) is required`);
  const tokenizerDir = f.string('tokenizer');
  const tokenizer = tokenizerDir ? await loadTokenizer(hostPath(tokenizerDir)) : byteTokenizer();
  const part = parsePart(f);
  const partBytes = part ? undefined : f.optionalNumber('part-bytes', { integer: true, min: 1 });
  const maxParts = f.number('max-parts', 16, { integer: true, min: 1 });
  const summaries: TokenizeSummary[] = [];
  const splits: TokenizeSplit[] = [];
  for (const d of data) {
    const req = {
      name: d.name,
      dataPath: d.path,
      hostDataPath: hostPath(d.path),
      tokensDir: hostPath(out),
      tokenizer,
    };
    const direct = await readManifest(req.hostDataPath);
    if (direct) {
      // The data path is a tokenized folder already (a manifest.json of `btx tokenize`): nothing to do
      // but check that it speaks this tokenizer (the stages read it where it is).
      if (direct.tokenizerSha256 !== tokenizer.sha256)
        throw new Error(
          `domain ${d.name}: ${d.path} holds token shards of tokenizer sha256 ${direct.tokenizerSha256.slice(0, 16)}..., not ${tokenizer.sha256.slice(0, 16)}...; point it at the text or tokenize it again with this tokenizer`,
        );
      summaries.push({ domain: d.name, ...counts(direct), reused: true });
      process.stdout.write(`${d.name.padEnd(16)} tokenized folder  tokens ${direct.tokens}\n`);
      continue;
    }
    if (partBytes !== undefined) {
      const state = await domainState(req);
      const parts = partsFor(state.bytes, partBytes, maxParts);
      if (!state.current && parts > 1) {
        splits.push({ domain: d.name, bytes: state.bytes, parts });
        process.stdout.write(
          `${d.name.padEnd(16)} split    ${(state.bytes / 1e6).toFixed(1)} MB of sources > --part-bytes ${partBytes}: ${parts} parts\n`,
        );
        continue;
      }
    }
    const r = await tokenizeDomain({ ...req, ...(part ? { part } : {}) });
    const m = r.manifest;
    summaries.push({
      domain: d.name,
      ...(part && part.count > 1 ? { part: `${part.index}/${part.count}` } : {}),
      ...counts(m),
      reused: r.reused,
    });
    process.stdout.write(
      `${d.name.padEnd(16)} ${r.reused ? 'current ' : 'written '} documents ${m.documents}  tokens ${m.tokens}  ` +
        `held-out ${m.heldOutTokens}  ${(m.bytes / 1e6).toFixed(1)} MB  ${r.seconds.toFixed(1)} s  ${m.dtype}\n`,
    );
  }
  if (runningAsStage())
    await writeTerminationMessage({
      checkpoint: out,
      tokenized: summaries,
      ...(splits.length > 0 ? { split: splits } : {}),
    });
  process.stdout.write(`tokens: ${out}\n`);
  return 0;
}
