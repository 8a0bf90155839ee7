// The mix's arithmetic on raw bytes (combineKernel.ts) and the worker threads that run it
// (kernelPool.ts): exact conversions, the mean and weighted sums against hand-computed values,
// the in-place SIMD mean over arena buffers (simdKernel.ts) against the copying one, and the sha256
// a worker computes against node:crypto on this thread.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { combineRange, type Combination, type CombineInput } from '../../src/trainer/mix/combineKernel.js';
import { KernelPool } from '../../src/trainer/mix/kernelPool.js';
import { simdArena } from '../../src/trainer/mix/simdKernel.js';
import {
  bf16BitsToF32,
  f16BitsToF32,
  f16BitsToF32Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  type FloatDType,
} from '../../src/trainer/safetensors.js';

function bytesOf(a: Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function sharedF32(values: number[]): Float32Array {
  const a = new Float32Array(new SharedArrayBuffer(values.length * 4));
  a.set(values);
  return a;
}

test('F16 -> F32 by shifts gives the exact value of every one of the 65,536 halves', () => {
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    bits[0] = f16BitsToF32Bits(h);
    const want = f16BitsToF32(h);
    if (Number.isNaN(want)) {
      assert.ok(Number.isNaN(f[0]!), `half 0x${h.toString(16)} is NaN`);
      assert.equal(bits[0]! >>> 31, h >>> 15, `NaN sign of 0x${h.toString(16)}`);
      assert.equal((bits[0]! >>> 13) & 0x3ff, h & 0x3ff, `NaN payload of 0x${h.toString(16)}`);
    } else {
      assert.ok(Object.is(f[0], want), `half 0x${h.toString(16)}: ${f[0]} vs ${want}`);
    }
  }
});

test('every half and every bfloat16 goes F16/BF16 -> F32 -> F16/BF16 through the kernel unchanged', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const dtype of ['F16', 'BF16'] as const) {
    const f32 = new Uint8Array(65536 * 4);
    combineRange([{ bytes: bytesOf(all), dtype }], { kind: 'mean' }, f32, 'F32', 0, 65536);
    const back = new Uint16Array(65536);
    combineRange([{ bytes: f32, dtype: 'F32' }], { kind: 'mean' }, bytesOf(back), dtype, 0, 65536);
    for (let h = 0; h < 65536; h++) {
      const nan =
        dtype === 'F16'
          ? (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0
          : (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      // A NaN comes back a NaN of the same sign (quieted), as the scalar encoders do.
      if (nan) assert.equal(back[h]! & 0x8000, h & 0x8000, `${dtype} NaN 0x${h.toString(16)}`);
      else assert.equal(back[h], h, `${dtype} 0x${h.toString(16)}`);
    }
  }
});

test('mean and weighted sums match hand-computed values, across dtypes and block edges', () => {
  // Three inputs in three dtypes; all values exact in each, so the sums are exact too.
  const a = [1, 2, -4, 0.5];
  const b = [3, 6, 4, 1.5];
  const c = [2, 1, 0, -8];
  const f16 = new Uint16Array([0x4000, 0x3c00, 0x0000, 0xc800]); // 2, 1, 0, -8
  const bf16 = new Uint16Array([0x4040, 0x40c0, 0x4080, 0x3fc0]); // 3, 6, 4, 1.5
  const inputs: CombineInput[] = [
    { bytes: bytesOf(new Float32Array(a)), dtype: 'F32' },
    { bytes: bytesOf(bf16), dtype: 'BF16' },
    { bytes: bytesOf(f16), dtype: 'F16' },
  ];
  const out = new Float32Array(4);
  combineRange(inputs, { kind: 'mean' }, bytesOf(out), 'F32', 0, 4);
  assert.deepEqual(
    [...out],
    [0, 1, 2, 3].map((i) => (a[i]! + b[i]! + c[i]!) / 3),
  );
  assert.deepEqual([...out], [2, 3, 0, -2]);
  // Weights 1/2, 1/4, 1/4: 0.5*a + 0.25*b + 0.25*c.
  combineRange(inputs, { kind: 'weighted', weights: [0.5, 0.25, 0.25] }, bytesOf(out), 'F32', 0, 4);
  assert.deepEqual([...out], [1.75, 2.75, -1, -1.375]);
  // A range leaves the rest of the output alone.
  out.fill(99);
  combineRange(inputs, { kind: 'mean' }, bytesOf(out), 'F32', 1, 3);
  assert.deepEqual([...out], [99, 3, 0, 99]);

  // Past one block (4096): element i of input k is i + k, so the mean of 2 inputs is i + 0.5.
  const n = 10_000;
  const x = new Float32Array(n).map((_, i) => i);
  const y = new Float32Array(n).map((_, i) => i + 1);
  const mean = new Float32Array(n);
  combineRange(
    [
      { bytes: bytesOf(x), dtype: 'F32' },
      { bytes: bytesOf(y), dtype: 'F32' },
    ],
    { kind: 'mean' },
    bytesOf(mean),
    'F32',
    0,
    n,
  );
  for (let i = 0; i < n; i++) assert.equal(mean[i], i + 0.5, `element ${i}`);
});

test('the mean is float32 arithmetic in input order, rounded like the sequential float32 sum', () => {
  // 1 + 2^-24 rounds to 1 in float32; 2^-24 + 2^-24 does not vanish: order matters, and is kept.
  const tiny = 2 ** -24;
  const inputs = [1, tiny, tiny].map((v) => ({
    bytes: bytesOf(new Float32Array([v])),
    dtype: 'F32' as const,
  }));
  const out = new Float32Array(1);
  combineRange(inputs, { kind: 'mean' }, bytesOf(out), 'F32', 0, 1);
  assert.equal(out[0], Math.fround(Math.fround(Math.fround(1 + tiny) + tiny) / 3));
  assert.equal(out[0], Math.fround(1 / 3));
});

/**
 * Random raw values of a dtype: every bit pattern, so NaN, infinities and subnormals turn up too;
 * for F32 every 5th value is a bfloat16 rounding tie or its neighbours (low 16 bits 0x7fff..0x8001)
 * and every 97th a NaN with a low payload.
 */
function randomBits(dtype: FloatDType, n: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(n * (dtype === 'F32' ? 4 : 2));
  let x = seed;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  if (dtype === 'F32') {
    const low = new Uint16Array(bytes.buffer);
    for (let i = 0; i < n; i += 5) low[2 * i] = 0x7fff + (i % 3);
    // NaNs whose payload is all in the low 16 bits: truncated to bfloat16 they would read infinity.
    const bits = new Uint32Array(bytes.buffer);
    for (let i = 3; i < n; i += 97) bits[i] = i % 2 === 0 ? 0x7f800001 : 0xff800001;
  }
  return bytes;
}

/** Element i of raw bytes of a dtype, as a number, one scalar at a time. */
function scalarAt(bytes: Uint8Array, dtype: FloatDType, i: number): number {
  if (dtype === 'F32') return new Float32Array(bytes.buffer, bytes.byteOffset)[i]!;
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset)[i]!;
  return dtype === 'BF16' ? bf16BitsToF32(h) : f16BitsToF32(h);
}

test('the kernels equal element-by-element float32 arithmetic for every dtype mix and rule', () => {
  // The reference: one element at a time, float32 rounding after every step, the scalar encoders.
  // Means of BF16/F32 into BF16/F32 take the WebAssembly SIMD kernel, the rest the JS one.
  const n = 2 * 4096 + 301;
  const inputSets: FloatDType[][] = [
    ['F32', 'F16', 'BF16', 'F32'],
    ['BF16', 'BF16', 'BF16', 'BF16'],
    ['F32', 'BF16', 'BF16'],
    ['F32'],
    ['BF16'],
  ];
  for (const [set, dtypes] of inputSets.entries()) {
    const inputs: CombineInput[] = dtypes.map((dtype, k) => ({
      bytes: randomBits(dtype, n, 10 * set + k + 7),
      dtype,
    }));
    const weights = dtypes.map((_, k) => (k + 1) / 10);
    const rules: Combination[] = [{ kind: 'mean' }, { kind: 'weighted', weights }];
    for (const how of rules) {
      for (const outDtype of ['F32', 'F16', 'BF16'] as const) {
        const out = new Uint8Array(n * (outDtype === 'F32' ? 4 : 2));
        combineRange(inputs, how, out, outDtype, 0, n);
        for (let i = 0; i < n; i++) {
          let acc = 0;
          inputs.forEach((input, k) => {
            const x = scalarAt(input.bytes, input.dtype, i);
            const term = how.kind === 'weighted' ? Math.fround(how.weights[k]!) * x : x;
            acc = k === 0 ? Math.fround(term) : Math.fround(acc + term);
          });
          if (how.kind === 'mean') acc = Math.fround(acc / inputs.length);
          const got = scalarAt(out, outDtype, i);
          const what = `${dtypes.join('+')} ${how.kind} -> ${outDtype}, element ${i}`;
          if (Number.isNaN(acc)) assert.ok(Number.isNaN(got), what);
          else if (outDtype === 'F32') assert.ok(Object.is(got, acc), `${what}: ${got} vs ${acc}`);
          else {
            const want = outDtype === 'BF16' ? f32ToBf16Bits(acc) : f32ToF16Bits(acc);
            assert.equal(new Uint16Array(out.buffer)[i], want, what);
          }
        }
      }
    }
  }
});

test('bad shapes of input are refused: weights per input, buffers that hold too few values', () => {
  const one = { bytes: new Uint8Array(8), dtype: 'F32' as const };
  assert.throws(
    () => combineRange([one, one], { kind: 'weighted', weights: [1] }, new Uint8Array(8), 'F32', 0, 2),
    /1 weights for 2 inputs/,
  );
  assert.throws(() => combineRange([one], { kind: 'mean' }, new Uint8Array(8), 'F32', 0, 3), /fewer than 3/);
});

test('the worker pool splits a combine between its threads and hashes like node:crypto', async () => {
  const pool = KernelPool.start(2);
  try {
    const n = 3 * 4096 + 7; // uneven: the second thread gets the remainder
    const x = sharedF32(Array.from({ length: n }, (_, i) => i * 2));
    const y = sharedF32(Array.from({ length: n }, () => 1));
    const out = new Uint8Array(new SharedArrayBuffer(n * 2));
    await pool.combine(
      [
        { bytes: bytesOf(x), dtype: 'F32' },
        { bytes: bytesOf(y), dtype: 'F32' },
      ],
      { kind: 'weighted', weights: [0.5, 0.5] },
      out,
      'BF16',
      n,
    );
    // 0.5 * 2i + 0.5 * 1 = i + 0.5, rounded once to bfloat16, at every element (both halves).
    const bf = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) assert.equal(bf[i], f32ToBf16Bits(i + 0.5), `element ${i}`);
    const data = new Uint8Array(new SharedArrayBuffer(1_000_003));
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const hasher = pool.hasher();
    await hasher.update(data.subarray(0, 500_000));
    await hasher.update(data.subarray(500_000));
    // Not in shared memory (a writer's caller's own buffer): hashed all the same.
    const plain = Uint8Array.from({ length: 70_001 }, (_, i) => (i * 17) & 0xff);
    await hasher.update(plain);
    assert.equal(await hasher.digest(), createHash('sha256').update(data).update(plain).digest('hex'));
  } finally {
    await pool.close();
  }
});

test('a mean over arena buffers, computed in place, equals the copied one and writes only [from, to)', () => {
  // Uneven ends: the elements past the last whole group of 8 take the copying path, the rest the fused
  // one-pass kernel (multiplying by 1/n for 2, 4 and 8 inputs, dividing for 3); the copied mean they
  // are held to divides, one pass per input.
  const n = 3 * 4096 + 13;
  const from = 5;
  const to = n - 3;
  const bf16 = (k: number) => Array.from({ length: k }, () => 'BF16' as const);
  const sets: ('F32' | 'BF16')[][] = [
    bf16(4),
    bf16(3),
    bf16(2),
    bf16(8),
    bf16(1),
    ['F32', 'BF16', 'F32'],
    ['BF16', 'F32'],
    ['F32', 'F32', 'F32', 'F32'],
    ['F32'],
  ];
  for (const [s, dtypes] of sets.entries()) {
    for (const outDtype of ['F32', 'BF16'] as const) {
      const sizes = [...dtypes.map((d) => n * (d === 'F32' ? 4 : 2)), n * (outDtype === 'F32' ? 4 : 2)];
      const arena = simdArena(sizes);
      assert.ok(arena, 'WebAssembly SIMD is available here');
      const inputs = dtypes.map((dtype, k) => {
        const bytes = arena[k]!;
        bytes.set(randomBits(dtype, n, 100 * s + k));
        return { bytes, dtype };
      });
      const out = arena[dtypes.length]!;
      out.fill(0xab);
      const copies = inputs.map((i) => ({ bytes: i.bytes.slice(), dtype: i.dtype }));
      const before = inputs.map((i) => i.bytes.slice());
      combineRange(inputs, { kind: 'mean' }, out, outDtype, from, to);
      const want = new Uint8Array(out.byteLength).fill(0xab);
      combineRange(copies, { kind: 'mean' }, want, outDtype, from, to);
      const what = `${dtypes.join('+')} -> ${outDtype}`;
      assert.ok(Buffer.from(out).equals(want), what);
      inputs.forEach((i, k) =>
        assert.ok(Buffer.from(i.bytes).equals(before[k]!), `${what}: input ${k} unchanged`),
      );
    }
  }
});

test('an arena too large for 32-bit WebAssembly addresses is refused, not allocated', () => {
  assert.equal(simdArena([2 ** 30, 2 ** 30]), null);
  assert.throws(() => simdArena([-1]), /bad buffer size -1/);
});
