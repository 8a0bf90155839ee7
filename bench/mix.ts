// `btx mix` throughput against plain reading (and plain copying) of the same input files, measured
// side by side in one run on 4 synthetic BF16 Llama-shaped experts of ~58 MB each.
import { copyFile, mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mixExperts } from '../src/trainer/mix/mixExperts.js';
import { log } from '../src/util/log.js';
import { writeLlamaCheckpoint, type LlamaShape } from '../test/trainer/mixFixtures.js';

const SHAPE: LlamaShape = { vocab: 8000, hidden: 1024, intermediate: 2752, layers: 1, heads: 8 };
const EXPERTS = 4;

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

/** Read every byte of the files in 16 MB reads: the floor any mix has to pay. */
async function plainRead(files: string[]): Promise<number> {
  const buf = Buffer.allocUnsafeSlow(16 * 1024 * 1024);
  let total = 0;
  for (const f of files) {
    const h = await open(f, 'r');
    try {
      for (;;) {
        const { bytesRead } = await h.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        total += bytesRead;
      }
    } finally {
      await h.close();
    }
  }
  return total;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, (performance.now() - t0) / 1000];
}

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
    const mb = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(0).padStart(6);
    console.log(
      `inputs: ${EXPERTS} BF16 experts, ${(inputBytes / 1e6).toFixed(0)} MB in ${inputs.length} files`,
    );

    await plainRead(inputs); // warm the page cache so every row reads from the same place
    const [, readS] = await timed(() => plainRead(inputs));
    const copyDir = join(root, 'copy');
    await mkdir(copyDir);
    const [, copyS] = await timed(async () => {
      for (const [i, f] of inputs.entries()) await copyFile(f, join(copyDir, `${i}.safetensors`));
    });
    await rm(copyDir, { recursive: true });
    const [summary, mixS] = await timed(() =>
      mixExperts({ experts: dirs.map((dir) => ({ dir })), out: join(root, 'mixed'), shardSize: 50_000_000 }),
    );
    const [summaryF32, mixF32S] = await timed(() =>
      mixExperts({ experts: dirs.map((dir) => ({ dir })), out: join(root, 'mixed-f32'), dtype: 'F32' }),
    );

    console.log('                                input MB/s   (read+write MB/s)   time');
    console.log(
      `plain read of the inputs          ${mb(inputBytes, readS)}                        ${readS.toFixed(2)} s`,
    );
    console.log(
      `plain copy (fs.copyFile)          ${mb(inputBytes, copyS)}      (${mb(2 * inputBytes, copyS)})            ${copyS.toFixed(2)} s`,
    );
    console.log(
      `btx mix -> BF16 (same dtype)      ${mb(summary.bytesRead, mixS)}      (${mb(summary.bytesRead + summary.bytesWritten, mixS)})            ${mixS.toFixed(2)} s`,
    );
    console.log(
      `btx mix -> F32 (convert)          ${mb(summaryF32.bytesRead, mixF32S)}      (${mb(summaryF32.bytesRead + summaryF32.bytesWritten, mixF32S)})            ${mixF32S.toFixed(2)} s`,
    );
    console.log(
      `ratio: btx mix (BF16) runs at ${((summary.bytesRead / mixS / (inputBytes / readS)) * 100).toFixed(0)}% of plain-read input throughput` +
        ` (${summary.tensorsStacked} tensors stacked, ${summary.tensorsAveraged} averaged, ${summary.shards} shards)`,
    );
  } finally {
    log.level = level;
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
