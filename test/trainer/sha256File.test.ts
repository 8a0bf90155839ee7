// sha256File reads a file in 1 MB chunks into two buffers in turn (the next read overlapping the hash
// of the current chunk): every size around the chunk edges hashes as node:crypto does over the whole
// file, and a missing file is an error, not an empty hash.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sha256File } from '../../src/trainer/checkpoint.js';

const dir = await mkdtemp(join(tmpdir(), 'btx-sha256file-'));
after(() => rm(dir, { recursive: true, force: true }));

test('sha256File equals the sha256 of the whole file at every size around its 1 MB chunks', async () => {
  const MB = 1024 * 1024;
  for (const size of [0, 1, MB - 1, MB, MB + 1, 2 * MB, 3 * MB + 12_345]) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 131 + (i >>> 20)) & 0xff;
    const path = join(dir, `f-${size}`);
    await writeFile(path, bytes);
    assert.equal(await sha256File(path), createHash('sha256').update(bytes).digest('hex'), `${size} bytes`);
  }
  await assert.rejects(sha256File(join(dir, 'missing')), /ENOENT/);
});
