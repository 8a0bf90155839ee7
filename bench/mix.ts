// `btx mix` throughput against `cp` of the same input files, interleaved in one run (cp, mix, cp,
// mix...) on 4 synthetic BF16 Llama-shaped experts of ~58 MB each, so the ratio holds up on a busy
// machine. The mix runs as the real CLI in its own process, which prints its time, peak RSS and CPU
// seconds; the CPU seconds (median) say what a change costs whatever the machine's load.
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from '../src/util/log.js';
import { writeLlamaCheckpoint, type LlamaShape } from '../test/trainer/mixFixtures.js';

const SHAPE: LlamaShape = { vocab: 8000, hidden: 1024, intermediate: 2752, layers: 1, heads: 8 };
const EXPERTS = 4;
// 5: on the shared 2-core machine one round in three or four is slowed by someone else's job mid-mix;
// the median of 5 rides that out, of 3 not always (a round, the CLI's start included, is ~2-3 s).
const ROUNDS = Number(process.env.BTX_BENCH_MIX_ROUNDS ?? 5);
const BTX = fileURLToPath(new URL('../bin/btx.js', import.meta.url));

async function filesOf(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of dirs)
    for (const f of await readdir(d)) if (f.endsWith('.safetensors')) out.push(join(d, f));
  return out;
}

async function sizeOf(files: string[]): Promise<number> {
  let total = 0;
  for (const f of files) total += (await stat(f)).size;
  return total;
}

/** Read every byte of the files in 16 MB reads (warms the page cache, so every row reads from it). */
async function plainRead(files: string[]): Promise<void> {
  const buf = Buffer.allocUnsafeSlow(16 * 1024 * 1024);
  for (const f of files) {
    const h = await open(f, 'r');
    try {
      while ((await h.read(buf, 0, buf.length, null)).bytesRead > 0);
    } finally {
      await h.close();
    }
  }
}

interface MixRun {
  /** The mix's own time (from its summary): process start-up excluded, worker start-up included. */
  seconds: number;
  bytesRead: number;
  peakRssMB: number;
  /** CPU seconds of the mix process during the mix (every thread, user + system). */
  cpuSeconds: number;
}

/** `btx mix` in a child process; its summary line gives seconds, bytes and peak RSS. */
function runMix(experts: string[], out: string, extra: string[]): Promise<MixRun> {
  const args = [BTX, 'mix', ...experts.flatMap((e) => ['--expert', e]), '--out', out, '--no-verify'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BTX_LOG_LEVEL: 'warn' },
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const m = /read ([\d.]+) MB, wrote [\d.]+ MB in ([\d.]+) s .*peak RSS (\d+) MB, CPU ([\d.]+) s/.exec(
        text,
      );
      if (code !== 0 || !m) return reject(new Error(`btx mix exited ${code}:\n${text}`));
      resolve({
        bytesRead: Number(m[1]) * 1e6,
        seconds: Number(m[2]),
        peakRssMB: Number(m[3]),
        cpuSeconds: Number(m[4]),
      });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function bench(): Promise<void> {
  const level = log.level;
  log.level = 'warn';
  const root = await mkdtemp(join(tmpdir(), 'btx-bench-mix-'));
  try {
    const dirs: string[] = [];
    for (let e = 0; e < EXPERTS; e++) {
      dirs.push(
        await writeLlamaCheckpoint(join(root, `expert-${e}`), SHAPE, {
          dtype: 'BF16',
          seed: e + 1,
          shardSize: e % 2 === 0 ? undefined : 20_000_000,
        }),
      );
    }
    const inputs = await filesOf(dirs);
    const inputBytes = await sizeOf(inputs);
    console.log(
      `inputs: ${EXPERTS} BF16 experts, ${(inputBytes / 1e6).toFixed(0)} MB in ${inputs.length} files; ${ROUNDS} rounds of cp then btx mix`,
    );
    await plainRead(inputs);

    const cpMBs: number[] = [];
    const mixMBs: number[] = [];
    const ratios: number[] = [];
    const rss: number[] = [];
    const cpuSeconds: number[] = [];
    const cpCpuSeconds: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const copyDir = join(root, 'copy');
      await mkdir(copyDir);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      for (const [i, f] of inputs.entries()) await copyFile(f, join(copyDir, `${i}.safetensors`));
      const cp = inputBytes / 1e6 / ((performance.now() - t0) / 1000);
      const cpCpu = process.cpuUsage(cpu0);
      cpCpuSeconds.push((cpCpu.user + cpCpu.system) / 1e6);
      await rm(copyDir, { recursive: true });
      const mix = await runMix(dirs, join(root, 'mixed'), ['--shard-size', '50MB']);
      await rm(join(root, 'mixed'), { recursive: true });
      const mixRate = mix.bytesRead / 1e6 / mix.seconds;
      cpMBs.push(cp);
      mixMBs.push(mixRate);
      ratios.push(mixRate / cp);
      rss.push(mix.peakRssMB);
      cpuSeconds.push(mix.cpuSeconds);
    }
    const f32 = await runMix(dirs, join(root, 'mixed-f32'), ['--dtype', 'f32']);

    const row = (name: string, xs: number[], extra = '') =>
      console.log(
        `${name.padEnd(34)}${median(xs).toFixed(0).padStart(8)} MB/s (${xs.map((x) => x.toFixed(0)).join(', ')})${extra}`,
      );
    console.log(`${''.padEnd(34)}   input MB/s, median (each round)`);
    const cpu = (xs: number[]) => `CPU ${median(xs).toFixed(2)} s`;
    row('cp of the inputs (fs.copyFile)', cpMBs, `, ${cpu(cpCpuSeconds)}`);
    row('btx mix -> BF16 (same dtype)', mixMBs, `, peak RSS ${Math.max(...rss)} MB, ${cpu(cpuSeconds)}`);
    row(
      'btx mix -> F32 (convert)',
      [f32.bytesRead / 1e6 / f32.seconds],
      `, peak RSS ${f32.peakRssMB} MB, ${cpu([f32.cpuSeconds])}`,
    );
    console.log(
      `ratio: btx mix (BF16) input MB/s = ${median(ratios).toFixed(2)}x cp of the same files (median of ${ROUNDS} interleaved rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}; target >= 0.3x)`,
    );
  } finally {
    log.level = level;
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
