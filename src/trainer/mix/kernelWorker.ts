// A mix worker thread (started by kernelPool.ts): combines tensor slices (combineKernel.ts) and
// keeps the running sha256 of output files, so the main thread only reads, copies and writes.
// Every buffer it is given lives in a SharedArrayBuffer: nothing is copied between threads.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { FloatDType } from '../safetensors.js';
import { combineRange, type Combination } from './combineKernel.js';

/** A byte range of shared memory. */
export interface SharedBytes {
  buffer: SharedArrayBuffer;
  byteOffset: number;
  byteLength: number;
}

export type KernelRequest =
  | {
      id: number;
      op: 'combine';
      inputs: (SharedBytes & { dtype: FloatDType })[];
      how: Combination;
      out: SharedBytes;
      outDtype: FloatDType;
      from: number;
      to: number;
    }
  | { id: number; op: 'hashUpdate'; file: number; bytes: SharedBytes }
  | { id: number; op: 'hashDigest'; file: number };

export type KernelReply =
  { id: number; ok: true; digest?: string } | { id: number; ok: false; error: string };

const bytesOf = (s: SharedBytes) => new Uint8Array(s.buffer, s.byteOffset, s.byteLength);

const hashes = new Map<number, Hash>();

function handle(req: KernelRequest): KernelReply {
  switch (req.op) {
    case 'combine':
      combineRange(
        req.inputs.map((i) => ({ bytes: bytesOf(i), dtype: i.dtype })),
        req.how,
        bytesOf(req.out),
        req.outDtype,
        req.from,
        req.to,
      );
      return { id: req.id, ok: true };
    case 'hashUpdate': {
      let hash = hashes.get(req.file);
      if (!hash) hashes.set(req.file, (hash = createHash('sha256')));
      hash.update(bytesOf(req.bytes));
      return { id: req.id, ok: true };
    }
    case 'hashDigest': {
      const digest = (hashes.get(req.file) ?? createHash('sha256')).digest('hex');
      hashes.delete(req.file);
      return { id: req.id, ok: true, digest };
    }
  }
}

parentPort?.on('message', (req: KernelRequest) => {
  let reply: KernelReply;
  try {
    reply = handle(req);
  } catch (err) {
    reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(reply);
});
