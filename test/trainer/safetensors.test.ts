import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  SafetensorsReader,
  SafetensorsWriter,
  bf16BitsToF32,
  decodeToFloat32,
  encodeFloats,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  readSafetensors,
  writeSafetensors,
} from '../../src/trainer/safetensors.js';

const dir = await mkdtemp(join(tmpdir(), 'btx-safetensors-'));
after(() => rm(dir, { recursive: true, force: true }));

function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 10;
  }
  return out;
}

test('F32 tensors round-trip bit-exactly, including NaN payloads, -0 and infinities', async () => {
  const a = randomFloats(37, 1);
  const specials = new Float32Array([0, -0, Infinity, -Infinity, NaN, 1e-45, 3.4028235e38]);
  new Uint32Array(specials.buffer)[4] = 0x7fc01234; // a NaN with a payload
  const path = join(dir, 'f32.safetensors');
  await writeSafetensors(
    path,
    [
      { name: 'a', shape: [37], data: a },
      { name: 'b.weight', shape: [7, 1], data: specials },
      { name: 'empty', shape: [0, 3], data: new Float32Array(0) },
    ],
    'F32',
    { format: 'pt' },
  );
  const { tensors, metadata } = await readSafetensors(path);
  assert.deepEqual(metadata, { format: 'pt' });
  assert.deepEqual(
    tensors.map((t) => [t.name, t.dtype, t.shape]),
    [
      ['a', 'F32', [37]],
      ['b.weight', 'F32', [7, 1]],
      ['empty', 'F32', [0, 3]],
    ],
  );
  assert.deepEqual(new Uint32Array(tensors[0]!.data.buffer), new Uint32Array(a.buffer));
  assert.deepEqual(new Uint32Array(tensors[1]!.data.buffer), new Uint32Array(specials.buffer));
});

test('F16 encoding matches hand-checked bit patterns: normals, max, subnormals, overflow, inf, NaN, ties to even', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff],
    [0.5, 0x3800],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -24 * 1023, 0x03ff], // largest subnormal
    [2 ** -25, 0x0000], // exactly half the smallest subnormal: tie -> even (0)
    [2 ** -25 * 1.5, 0x0001], // above half: rounds up
    [2 ** -24 * 1.5, 0x0002], // tie between 1 and 2 subnormal units -> even (2)
    [2 ** -24 * 2.5, 0x0002], // tie between 2 and 3 -> even (2)
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10 -> even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9 -> even
    [65519, 0x7bff], // below the rounding boundary of max
    [65520, 0x7c00], // tie past max rounds to inf
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [-0, 0x8000],
    [1e-10, 0x0000],
  ];
  for (const [value, bits] of cases) {
    assert.equal(f32ToF16Bits(value).toString(16), bits.toString(16), `f16(${value})`);
  }
  const nan = f32ToF16Bits(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
});

test('F16 decoding gives the exact values, including subnormals, inf and NaN', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc100), -2.5);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  // Every half value survives decode -> encode (NaNs stay NaN).
  const all = new Uint16Array(65536).map((_, i) => i);
  const decoded = decodeToFloat32(new Uint8Array(all.buffer), 'F16');
  const back = new Uint16Array(encodeFloats(decoded, 'F16').buffer);
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) assert.ok(Number.isNaN(decoded[h]!), `nan ${h}`);
    else assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
});

test('BF16 encoding rounds to nearest even and keeps inf and NaN', () => {
  const cases: [number, number][] = [
    [1.0, 0x3f80],
    [-2.5, 0xc020],
    [65504, 0x4780], // 65504 = 0x477fe000 rounds up to 65536
    [1 + 2 ** -8, 0x3f80], // tie -> even
    [1 + 3 * 2 ** -8, 0x3f82], // tie -> even (up)
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [3.4028235e38, 0x7f80], // max float rounds to inf
    [1e-45, 0x0000], // smallest f32 subnormal rounds to 0
    [2 ** -133, 0x0001], // a bf16 subnormal, exact
    [-0, 0x8000],
  ];
  for (const [value, bits] of cases) {
    assert.equal(f32ToBf16Bits(value).toString(16), bits.toString(16), `bf16(${value})`);
  }
  const nan = f32ToBf16Bits(NaN);
  assert.ok(Number.isNaN(bf16BitsToF32(nan)));
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0xc020), -2.5);
  assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
});

test('array encode/decode agree with the scalar reference for F16 and BF16', () => {
  const values = randomFloats(1000, 7);
  for (const [dtype, scalar, decode] of [
    ['F16', f32ToF16Bits, f16BitsToF32],
    ['BF16', f32ToBf16Bits, bf16BitsToF32],
  ] as const) {
    const bits = new Uint16Array(encodeFloats(values, dtype).buffer);
    const decoded = decodeToFloat32(new Uint8Array(bits.buffer), dtype);
    for (let i = 0; i < values.length; i++) {
      assert.equal(bits[i], scalar(values[i]!), `${dtype} encode ${i}`);
      assert.equal(decoded[i], Math.fround(decode(bits[i]!)), `${dtype} decode ${i}`);
    }
  }
});

test('a hand-built file (known layout) parses: header, metadata, F16/BF16/I64 values', async () => {
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
    y: { dtype: 'BF16', shape: [1, 2], data_offsets: [4, 8] },
    ids: { dtype: 'I64', shape: [2], data_offsets: [8, 24] },
  });
  const data = Buffer.alloc(24);
  data.writeUInt16LE(0x3c00, 0); // 1.0
  data.writeUInt16LE(0xc100, 2); // -2.5
  data.writeUInt16LE(0x3f80, 4); // 1.0
  data.writeUInt16LE(0x4049, 6); // 3.140625
  data.writeBigInt64LE(7n, 8);
  data.writeBigInt64LE(-3n, 16);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  const path = join(dir, 'hand.safetensors');
  await writeFile(path, Buffer.concat([len, Buffer.from(header), data]));
  const reader = await SafetensorsReader.open(path);
  try {
    assert.deepEqual(reader.metadata, { format: 'pt' });
    assert.deepEqual([...(await reader.readFloat32('x'))], [1, -2.5]);
    assert.deepEqual([...(await reader.readFloat32('y'))], [1, 3.140625]);
    assert.deepEqual(reader.info('y').shape, [1, 2]);
    assert.deepEqual([...(await reader.readFloat32('ids'))], [7, -3]);
    assert.deepEqual([...(await reader.readFloat32('x', 1, 1))], [-2.5]); // a slice by element offset
  } finally {
    await reader.close();
  }
});

test('headers that are truncated, oversized or inconsistent are rejected with clear errors', async () => {
  const cases: [string, Buffer, RegExp][] = [];
  cases.push(['short', Buffer.from([1, 2, 3]), /too short for the 8-byte header length/]);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(1n << 40n);
  cases.push(['huge', huge, /exceeds the 104857600-byte limit/]);
  const cut = Buffer.alloc(8 + 10);
  cut.writeBigUInt64LE(100n);
  cases.push(['cut', cut, /truncated: header length 100 but only 10 bytes follow/]);
  const mk = (json: string, dataBytes: number) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataBytes)]);
  };
  cases.push(['notjson', mk('{"a":', 0), /header is not valid JSON/]);
  cases.push([
    'shortdata',
    mk('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8),
    /tensor w: data ends at byte 16 .* only 8 \(truncated\?\)/,
  ]);
  cases.push([
    'badsize',
    mk('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}', 12),
    /tensor w: data_offsets \[0, 12\] hold 12 bytes, F32\[4\] needs 16/,
  ]);
  cases.push([
    'baddtype',
    mk('{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1),
    /tensor w: unsupported dtype "F8_E4M3"/,
  ]);
  for (const [name, bytes, pattern] of cases) {
    const path = join(dir, `${name}.safetensors`);
    await writeFile(path, bytes);
    await assert.rejects(SafetensorsReader.open(path), (err: Error) => {
      assert.match(err.message, pattern, name);
      assert.ok(err.message.includes(path), `${name}: names the file`);
      return true;
    });
  }
});

test('the streaming writer takes tensors in chunks, in order, and refuses out-of-order writes', async () => {
  const path = join(dir, 'stream.safetensors');
  const w = await SafetensorsWriter.create(path, [
    { name: 'a', dtype: 'BF16', shape: [4] },
    { name: 'b', dtype: 'F16', shape: [2] },
  ]);
  await assert.rejects(w.writeFloat32('b', new Float32Array([1, 2])), /written out of order; expected a/);
  await w.writeFloat32('a', new Float32Array([1, 2]));
  await w.writeFloat32('a', new Float32Array([3, 4]));
  await w.writeFloat32('b', new Float32Array([-2.5, 65504]));
  const written = await w.close();
  const bytes = await readFile(path);
  assert.equal(written.bytes, bytes.byteLength);
  const { createHash } = await import('node:crypto');
  assert.equal(written.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.equal((8 + Number(bytes.readBigUInt64LE(0))) % 8, 0, 'data section is 8-byte aligned');
  const { tensors } = await readSafetensors(path);
  assert.deepEqual([...tensors[0]!.data], [1, 2, 3, 4]);
  assert.deepEqual([...tensors[1]!.data], [-2.5, 65504]);

  const incomplete = await SafetensorsWriter.create(join(dir, 'incomplete.safetensors'), [
    { name: 'a', dtype: 'F32', shape: [2] },
  ]);
  await incomplete.writeFloat32('a', new Float32Array([1]));
  await assert.rejects(incomplete.close(), /closed before tensor a was written/);
});
