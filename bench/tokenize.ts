// `btx tokenize` throughput and peak memory against a plain read of the same files, in one run, on a
// .jsonl corpus generated on the fly (BTX_BENCH_TOKENIZE_MB, default 512 MB). Each measurement is a
// child process (`btx tokenize` itself, or a plain 1 MiB-chunk read), its peak RSS sampled from
// /proc/<pid>/status (VmHWM) every 50 ms, so Node's own start-up memory is in the number too.
// The Llama 3 tokenizer runs on the first BTX_BENCH_TOKENIZE_LLAMA_MB (default 64) of the corpus.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { llama3TokenizerDir } from '../scripts/llama3TokenizerDir.js';

const BIN = new URL('../bin/btx.js', import.meta.url).pathname;
const WORDS = (
  'the of and to in is that for it as with was on be by this are from at an or which not have had one ' +
  'model token expert router domain data shard window résumé naïve café 日本語 データ 🤗 const let return ' +
  'function(x) { if (x > 0) return x * 2; } 3.14159 42 2026-11-29 https://example.org/a?b=c'
).split(' ');

/** A .jsonl corpus of about `megabytes` MB, written in 1 MB pieces (never held in memory). */
async function writeCorpus(path: string, megabytes: number): Promise<number> {
  const out = createWriteStream(path);
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  let written = 0;
  while (written < megabytes * 1e6) {
    const lines: string[] = [];
    let chunk = 0;
    while (chunk < 1e6) {
      const n = 20 + Math.floor(rand() * 400);
      const words = Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]!);
      const line = `${JSON.stringify({ text: words.join(' ') })}\n`;
      lines.push(line);
      chunk += Buffer.byteLength(line);
    }
    if (!out.write(lines.join(''))) await once(out, 'drain');
    written += chunk;
  }
  out.end();
  await once(out, 'finish');
  return (await stat(path)).size;
}

/** Run a child; wall seconds and peak RSS (MiB) from VmHWM, sampled while it runs. */
async function measure(args: string[]): Promise<{ seconds: number; peakMiB: number; stdout: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString().slice(-2000)));
  let peakKiB = 0;
  const sample = async () => {
    try {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kib = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peakKiB = Math.max(peakKiB, kib);
    } catch {
      // exited between samples
    }
  };
  const timer = setInterval(() => void sample(), 50);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(timer);
  if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${stderr}`);
  return { seconds: (performance.now() - started) / 1000, peakMiB: peakKiB / 1024, stdout };
}

/** `btx tokenize --data DOMAIN --out OUT [...extra]`, measured as its own process. */
function tokenize(domain: string, out: string, extra: string[] = []): ReturnType<typeof measure> {
  return measure([BIN, 'tokenize', ...extra, '--data', domain, '--out', out]);
}

const PLAIN_READ = `
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1 << 20);
const fd = fs.openSync(process.argv[1], 'r');
let n = 0, r;
while ((r = fs.readSync(fd, buf, 0, buf.length, null)) > 0) n += r;
console.log(n);
`;

function row(what: string, mb: number, r: { seconds: number; peakMiB: number }, tokens?: number): string {
  const tps =
    tokens !== undefined ? `${(tokens / r.seconds / 1e6).toFixed(2).padStart(8)} M` : ''.padStart(10);
  return `${what.padEnd(34)} ${(mb / r.seconds).toFixed(1).padStart(9)} ${tps} ${r.seconds.toFixed(1).padStart(8)} ${r.peakMiB.toFixed(0).padStart(9)}`;
}

function tokensOf(stdout: string): number {
  return Number(/tokens (\d+)/.exec(stdout)?.[1] ?? NaN);
}

export async function bench(): Promise<void> {
  const megabytes = Number(process.env.BTX_BENCH_TOKENIZE_MB ?? 512);
  const llamaMegabytes = Number(process.env.BTX_BENCH_TOKENIZE_LLAMA_MB ?? 64);
  const root = await mkdtemp(join(tmpdir(), 'btx-bench-tokenize-'));
  try {
    const big = join(root, 'big.jsonl');
    const size = await writeCorpus(big, megabytes);
    const small = join(root, 'small.jsonl');
    const smallSize = await writeCorpus(small, llamaMegabytes);
    const mb = size / 1e6;
    const smallMb = smallSize / 1e6;
    console.log(
      `corpus: ${mb.toFixed(0)} MB .jsonl (${smallMb.toFixed(0)} MB for Llama 3), generated in ${root}`,
    );
    console.log(
      `${''.padEnd(34)} ${'MB/s'.padStart(9)} ${'tokens/s'.padStart(10)} ${'wall s'.padStart(8)} ${'peak MiB'.padStart(9)}`,
    );
    // Interleaved: plain read, tokenize, plain read, so a change of machine load shows in the baseline.
    const read1 = await measure(['-e', PLAIN_READ, big]);
    console.log(row(`plain read (${mb.toFixed(0)} MB)`, mb, read1));
    const bytes = await tokenize(`big=${big}`, join(root, 'tokens-bytes'));
    console.log(row(`btx tokenize, byte tokenizer`, mb, bytes, tokensOf(bytes.stdout)));
    const read2 = await measure(['-e', PLAIN_READ, small]);
    console.log(row(`plain read (${smallMb.toFixed(0)} MB)`, smallMb, read2));
    const llama = await tokenize(`small=${small}`, join(root, 'tokens-llama3'), [
      '--tokenizer',
      llama3TokenizerDir(),
    ]);
    console.log(
      row(`btx tokenize, Llama 3 (${smallMb.toFixed(0)} MB)`, smallMb, llama, tokensOf(llama.stdout)),
    );
    const again = await tokenize(`big=${big}`, join(root, 'tokens-bytes'));
    console.log(row('btx tokenize again (shards current)', mb, again));
    console.log(
      `peak RSS of tokenize over ${mb.toFixed(0)} MB: ${bytes.peakMiB.toFixed(0)} MiB with the byte tokenizer, ` +
        `${llama.peakMiB.toFixed(0)} MiB with Llama 3 over ${smallMb.toFixed(0)} MB (plain read: ${read1.peakMiB.toFixed(0)} MiB; ` +
        `target < 300 MiB)`,
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
