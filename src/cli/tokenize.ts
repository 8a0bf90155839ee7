// `btx tokenize --tokenizer DIR --data NAME=PATH [...] --out DIR [--part i/n]`: each domain's text
// -> token shards + manifest.json in OUT/NAME/ (docs/stage-contract.md), skipped when current.
// As the tokenize stage it reads the same BTX_* variables and writes a termination message.
import { ENV, type TokenizeSummary } from '../api/stageContract.js';
import { type CommandSpec, type Flags, UsageError } from './flags.js';
import { runningAsStage, writeTerminationMessage } from '../trainer/progress.js';
import type { Part } from '../trainer/corpus.js';
import { tokenizeDomain } from '../trainer/tokenize.js';
import { byteTokenizer, loadTokenizer } from '../trainer/tokenizer.js';
import { hostPath } from '../util/containerPaths.js';

export const command: CommandSpec = {
  name: 'btx tokenize',
  usage: 'btx tokenize --data NAME=PATH [...] --out DIR [--tokenizer CHECKPOINT_DIR] [--part i/n]',
  about: `Tokenizes each domain once into OUT/NAME/ (token shards + manifest.json) with the tokenizer of a
checkpoint folder (its tokenizer.json; default: the built-in byte tokenizer). Current shards (same
source files by size and mtime, same tokenizer) are kept. --part i/n tokenizes one of n parts (an
Indexed Job's pod: JOB_COMPLETION_INDEX with BTX_PARTS=n); the last part merges the manifest.`,
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

export async function run(f: Flags): Promise<number> {
  const out = f.required('out');
  const data = f.named('data').map((d) => ({ name: d.name, path: d.value }));
  if (data.length === 0) throw new UsageError(`--data NAME=PATH (or ${ENV.data}) is required`);
  const tokenizerDir = f.string('tokenizer');
  const tokenizer = tokenizerDir ? await loadTokenizer(hostPath(tokenizerDir)) : byteTokenizer();
  const part = parsePart(f);
  const summaries: TokenizeSummary[] = [];
  for (const d of data) {
    const r = await tokenizeDomain({
      name: d.name,
      dataPath: d.path,
      hostDataPath: hostPath(d.path),
      tokensDir: hostPath(out),
      tokenizer,
      ...(part ? { part } : {}),
    });
    const m = r.manifest;
    summaries.push({
      domain: d.name,
      ...(part && part.count > 1 ? { part: `${part.index}/${part.count}` } : {}),
      documents: m.documents,
      tokens: m.tokens,
      bytes: m.bytes,
      heldOutTokens: m.heldOutTokens,
      reused: r.reused,
    });
    process.stdout.write(
      `${d.name.padEnd(16)} ${r.reused ? 'current ' : 'written '} documents ${m.documents}  tokens ${m.tokens}  ` +
        `held-out ${m.heldOutTokens}  ${(m.bytes / 1e6).toFixed(1)} MB  ${r.seconds.toFixed(1)} s  ${m.dtype}\n`,
    );
  }
  if (runningAsStage()) await writeTerminationMessage({ checkpoint: out, tokenized: summaries });
  process.stdout.write(`tokens: ${out}\n`);
  return 0;
}
