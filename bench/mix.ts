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

/** Wall seconds and this process's CPU seconds (the latter holds up on a busy machine). */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number, number]> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const result = await fn();
  const cpu = process.cpuUsage(c0);
  return [result, (performance.now() - t0) / 1000, (cpu.user + cpu.system) / 1e6];
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
    console.log(
      `inputs: ${EXPERTS} BF16 experts, ${(inputBytes / 1e6).toFixed(0)} MB in ${inputs.length} files`,
    );

    await plainRead(inputs); // warm the page cache so every row reads from the same place
    const rows: [string, number, number, number, number][] = [];
    const [, readS, readCpu] = await timed(() => plainRead(inputs));
    rows.push(['plain read of the inputs', inputBytes, inputBytes, readS, readCpu]);
    const copyDir = join(root, 'copy');
    await mkdir(copyDir);
    const [, copyS, copyCpu] = await timed(async () => {
      for (const [i, f] of inputs.entries()) await copyFile(f, join(copyDir, `${i}.safetensors`));
    });
    rows.push(['plain copy (fs.copyFile)', inputBytes, 2 * inputBytes, copyS, copyCpu]);
    await rm(copyDir, { recursive: true });
    const experts = dirs.map((dir) => ({ dir }));
    const [bf16, mixS, mixCpu] = await timed(() =>
      mixExperts({ experts, out: join(root, 'mixed'), shardSize: 50_000_000 }),
    );
    rows.push([
      'btx mix -> BF16 (same dtype)',
      bf16.bytesRead,
      bf16.bytesRead + bf16.bytesWritten,
      mixS,
      mixCpu,
    ]);
    const [f32, f32S, f32Cpu] = await timed(() =>
      mixExperts({ experts, out: join(root, 'mixed-f32'), dtype: 'F32' }),
    );
    rows.push(['btx mix -> F32 (convert)', f32.bytesRead, f32.bytesRead + f32.bytesWritten, f32S, f32Cpu]);

    const col = (x: string, w: number) => x.padStart(w);
    console.log(
      `${''.padEnd(30)}${col('input MB/s', 11)}${col('in+out MB/s', 13)}${col('wall s', 8)}${col('CPU s', 7)}${col('input MB per CPU s', 20)}`,
    );
    for (const [name, inBytes, allBytes, wall, cpu] of rows) {
      console.log(
        `${name.padEnd(30)}${col((inBytes / 1e6 / wall).toFixed(0), 11)}${col((allBytes / 1e6 / wall).toFixed(0), 13)}` +
          `${col(wall.toFixed(2), 8)}${col(cpu.toFixed(2), 7)}${col((inBytes / 1e6 / cpu).toFixed(0), 20)}`,
      );
    }
    console.log(
      `ratio: btx mix (BF16) input MB/s = ${((bf16.bytesRead / mixS / (inputBytes / readS)) * 100).toFixed(1)}% of plain read,` +
        ` ${((bf16.bytesRead / mixS / (inputBytes / copyS)) * 100).toFixed(0)}% of plain copy` +
        ` (${bf16.tensorsStacked} tensors stacked, ${bf16.tensorsAveraged} averaged, ${bf16.shards} output shards)`,
    );
  } finally {
    log.level = level;
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
