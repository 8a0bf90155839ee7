// Where the mix's arithmetic and hashing run: on this thread (the default), or on worker threads seen
// from here: `combine` splits one slice's elements between the workers, `hasher()` gives a ChunkHasher
// whose sha256 runs on one of them. Either way the file reads and writes run on libuv's thread pool.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { localHasher, type ChunkHasher, type FloatDType } from '../safetensors.js';
import { BLOCK, combineRange, type Combination, type CombineInput } from './combineKernel.js';
import type { KernelReply, KernelRequest, SharedBytes } from './kernelWorker.js';

type Request = KernelRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** The part of esbuild's API used here (esbuild comes with tsx, which runs our sources). */
interface Esbuild {
  build(opts: Record<string, unknown>): Promise<{ outputFiles: { text: string }[] }>;
}

let devSource: Promise<string> | undefined;

/**
 * The worker thread. From the compiled build it is kernelWorker.js. From the TypeScript sources (a
 * development checkout, run through tsx) it is that file bundled to one script by tsx's esbuild:
 * Node 20 passes neither the parent's loader hooks nor `--import` to a worker, and loading tsx in
 * the worker took 1.3-2.3 s on the busy 2-core machine against ~0.2 s for the bundled script.
 * The bundling is asynchronous (esbuild's own process): measured 0.3-0.5 s of blocked main thread
 * under load with buildSync, time the mix now spends opening the experts and reading.
 */
async function startWorker(): Promise<Worker> {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./kernelWorker.js', import.meta.url));
  devSource ??= (async () => {
    const esbuild = createRequire(import.meta.resolve('tsx'))('esbuild') as Esbuild;
    const built = await esbuild.build({
      entryPoints: [fileURLToPath(new URL('./kernelWorker.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      write: false,
    });
    return built.outputFiles[0]!.text;
  })();
  return new Worker(await devSource, { eval: true });
}

function shared(bytes: Uint8Array): SharedBytes {
  if (!(bytes.buffer instanceof SharedArrayBuffer))
    throw new Error('mix kernels take SharedArrayBuffer-backed bytes only');
  return { buffer: bytes.buffer, byteOffset: bytes.byteOffset, byteLength: bytes.byteLength };
}

/**
 * The bytes themselves when a worker can see them (shared memory), else a shared copy: a writer hands
 * its hasher the caller's own buffer for large chunks, which need not be shared.
 */
function inSharedMemory(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof SharedArrayBuffer) return bytes;
  const copy = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  copy.set(bytes);
  return copy;
}

class KernelThread {
  /** Starting (bundling, in a development checkout); calls wait for it. */
  private readonly worker: Promise<Worker>;
  private readonly pending = new Map<
    number,
    { resolve: (r: KernelReply) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private failure: Error | undefined;

  constructor() {
    this.worker = startWorker().then((worker) => {
      worker.on('message', (reply: KernelReply) => {
        const p = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        p?.resolve(reply);
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => this.fail(new Error(`mix worker thread exited (code ${code})`)));
      return worker;
    });
    this.worker.catch((err: unknown) =>
      this.fail(new Error(`mix worker thread did not start: ${String(err)}`, { cause: err })),
    );
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  async call(req: Request): Promise<KernelReply & { ok: true }> {
    if (this.failure) throw this.failure;
    const worker = await this.worker;
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const reply = await new Promise<KernelReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...req, id });
    });
    if (!reply.ok) throw new Error(`mix worker: ${reply.error}`);
    return reply;
  }

  async terminate(): Promise<void> {
    this.failure ??= new Error('mix worker threads were stopped');
    const worker = await this.worker.catch(() => undefined);
    worker?.removeAllListeners('exit');
    await worker?.terminate();
  }
}

export class KernelPool {
  private nextFile = 0;

  private constructor(private readonly threads: KernelThread[]) {}

  /**
   * `threads` worker threads (at most the cores), or 0 (the default): combine and hash on this thread.
   * Returns at once; threads boot in the background and calls wait for them. Why 0: with the SIMD mean
   * (simdKernel.ts) a mix's arithmetic is ~0.1 CPU s per 20M averaged elements and its sha256s ~0.15 s
   * per 100 MB, less than starting the workers costs (0.2-1 s on the busy 2-core machine, esbuild's
   * process included from the sources). `npm run bench -- mix`, same run: 0.18x and 0.22x cp with two
   * workers, 0.45x, 0.37x and 0.26x without; CPU 0.74-0.82 s against 0.66 s. Reads and writes still
   * run on libuv's thread pool, beside this thread.
   */
  static start(threads = 0): KernelPool {
    if (!Number.isInteger(threads) || threads < 0)
      throw new Error(`mix threads must be an integer >= 0, got ${threads}`);
    const n = Math.min(threads, availableParallelism());
    return new KernelPool(Array.from({ length: n }, () => new KernelThread()));
  }

  /** out[0..count) = the inputs' first `count` elements combined; split across the threads. */
  async combine(
    inputs: readonly CombineInput[],
    how: Combination,
    out: Uint8Array,
    outDtype: FloatDType,
    count: number,
  ): Promise<void> {
    if (this.threads.length === 0) {
      combineRange(inputs, how, out, outDtype, 0, count);
      return;
    }
    const parts = Math.min(this.threads.length, Math.ceil(count / BLOCK));
    const per = Math.ceil(count / parts / BLOCK) * BLOCK;
    const sharedInputs = inputs.map((i) => ({ ...shared(i.bytes), dtype: i.dtype }));
    const sharedOut = shared(out);
    const calls: Promise<unknown>[] = [];
    for (let p = 0, from = 0; from < count; p++, from += per) {
      calls.push(
        this.threads[p]!.call({
          op: 'combine',
          inputs: sharedInputs,
          how,
          out: sharedOut,
          outDtype,
          from,
          to: Math.min(count, from + per),
        }),
      );
    }
    await Promise.all(calls);
  }

  /** A sha256 on one thread (files take turns), or on this one, for SafetensorsWriter. */
  hasher(): ChunkHasher {
    if (this.threads.length === 0) return localHasher();
    const file = this.nextFile++;
    const thread = this.threads[file % this.threads.length]!;
    return {
      update: async (bytes) => {
        await thread.call({ op: 'hashUpdate', file, bytes: shared(inSharedMemory(bytes)) });
      },
      digest: async () => (await thread.call({ op: 'hashDigest', file })).digest!,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}
