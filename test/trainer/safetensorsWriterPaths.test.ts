// The safetensors writer's two paths for a chunk (staged when small, written where it is when large)
// and its background datasyncs: whatever the mix of chunk sizes and however slow the hasher, the file
// holds the bytes in order and its sha256 is that of the file on disk; a caller may reuse a buffer
// as soon as its write returns; a long file is datasynced while it is written, not only at close.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  SafetensorsWriter,
  buildHeader,
  type ChunkHasher,
  type TensorSpec,
} from '../../src/trainer/safetensors.js';

const dir = await mkdtemp(join(tmpdir(), 'btx-safetensors-paths-'));
after(() => rm(dir, { recursive: true, force: true }));

function patterned(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let s = seed;
  for (let i = 0; i < bytes; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** A sha256 that finishes each update a few milliseconds later, as one on another thread would. */
function slowHasher(): ChunkHasher {
  const hash = createHash('sha256');
  return {
    update: async (bytes) => {
      const copy = bytes.slice();
      await new Promise((r) => setTimeout(r, 3));
      hash.update(copy);
    },
    digest: () => Promise.resolve(hash.digest('hex')),
  };
}

test('small and large chunks in any mix land in order, hashed in order, and buffers are free on return', async () => {
  // Sizes around the 256 KiB line between staged and direct chunks, and around the 8 MB staging size.
  const sizes = [100, 3 * 1024 * 1024, 7, 262_143, 262_144, 5000, 1_000_001, 12, 9 * 1024 * 1024, 64];
  const chunks = sizes.map((n, i) => patterned(n, i + 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  for (const hasher of [undefined, slowHasher()]) {
    const path = join(dir, `mixed-${hasher ? 'slow' : 'local'}.safetensors`);
    const specs: TensorSpec[] = [{ name: 'x', dtype: 'U8', shape: [total] }];
    const w = await SafetensorsWriter.create(path, specs, hasher ? { hasher } : {});
    const header = buildHeader(specs).byteLength;
    for (const c of chunks) {
      const buffer = c.slice();
      await w.writeBytes('x', buffer);
      buffer.fill(0xee); // reused at once: what was written must not change
    }
    const written = await w.close();
    const file = await readFile(path);
    assert.equal(file.byteLength, header + total);
    let at = header;
    for (const [i, c] of chunks.entries()) {
      assert.ok(
        Buffer.from(c).equals(file.subarray(at, at + c.byteLength)),
        `chunk ${i} (${c.byteLength} bytes)`,
      );
      at += c.byteLength;
    }
    assert.equal(written.bytes, file.byteLength);
    assert.equal(written.sha256, createHash('sha256').update(file).digest('hex'));
  }
});

test('a large chunk is in the file when its write returns; small ones wait in staging', async () => {
  const path = join(dir, 'direct.safetensors');
  const big = patterned(1024 * 1024, 5);
  const small = patterned(1000, 6);
  // Room for more than the chunks: the 8 MB staging buffer does not fill up and flush by itself.
  const specs: TensorSpec[] = [{ name: 'x', dtype: 'U8', shape: [small.length + big.length + 16e6] }];
  const w = await SafetensorsWriter.create(path, specs);
  const dataStart = buildHeader(specs).byteLength;
  const reader = await open(path, 'r');
  try {
    await w.writeBytes('x', small);
    const seen = Buffer.alloc(small.length);
    await reader.read(seen, 0, small.length, dataStart);
    assert.ok(!seen.equals(small), 'a small chunk is staged, not yet written');
    await w.writeBytes('x', big);
    const onDisk = Buffer.alloc(big.length);
    await reader.read(onDisk, 0, onDisk.length, dataStart + small.length);
    assert.ok(onDisk.equals(big), 'the large chunk is in the file, after the staged bytes');
    await w.abort();
  } finally {
    await reader.close();
  }
});

test('a long file is datasynced in the background while it is written, and fully synced by close', async () => {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync(): Promise<void>; sync(): Promise<void> };
  await probe.close();
  const { datasync, sync } = proto;
  const events: string[] = [];
  proto.datasync = async function (this: object) {
    events.push('datasync');
    await datasync.call(this);
  };
  proto.sync = async function (this: object) {
    events.push('sync');
    await sync.call(this);
  };
  try {
    const chunk = patterned(4 * 1024 * 1024, 9);
    const path = join(dir, 'long.safetensors');
    const w = await SafetensorsWriter.create(path, [{ name: 'x', dtype: 'U8', shape: [5 * chunk.length] }]);
    for (let i = 0; i < 5; i++) {
      await w.writeBytes('x', chunk);
      events.push('write');
    }
    events.push('close');
    await w.close();
    const firstSync = events.indexOf('datasync');
    assert.ok(firstSync >= 0 && firstSync < events.indexOf('close'), events.join(', '));
    assert.equal(events.at(-1), 'sync', `close ends with a full fsync: ${events.join(', ')}`);
  } finally {
    proto.datasync = datasync;
    proto.sync = sync;
  }
});
