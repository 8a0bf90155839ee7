import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../../src/trainer/tfjs.js';
import { compileGemm, rowMajor, transposed, type Gemm } from '../../src/trainer/gemm.js';
import { wasmGemm } from '../../src/trainer/matMulKernel.js';
import { addressOf, wasmModule } from '../../src/trainer/wasmHeap.js';
import { mulberry32 } from '../../src/trainer/prng.js';
import { backend } from './trainerFixtures.js';

before(backend);

const random = mulberry32(11);
const values = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);

/** a (m x k) @ b (k x n) in float64, and the sum of |a||b| per entry (the scale of float32 error). */
function reference(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const [out, scale] = [new Float64Array(m * n), new Float64Array(m * n)];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < k; p++) {
        out[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
        scale[i * n + j]! += Math.abs(a[i * k + p]! * b[p * n + j]!);
      }
    }
  }
  return { out, scale };
}

function assertClose(got: ArrayLike<number>, want: { out: Float64Array; scale: Float64Array }, what: string) {
  for (let i = 0; i < want.out.length; i++) {
    const tolerance = 1e-6 * (want.scale[i]! + 1);
    assert.ok(
      Math.abs(got[i]! - want.out[i]!) <= tolerance,
      `${what}: entry ${i} ${got[i]} vs ${want.out[i]}`,
    );
  }
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

// Edges of the 6- and 4-row tiles and of the 8-column panels; k from 0 to past two blocks of 256,
// m past a block of rows; blocks of k after the first add into C, the partial panel's tile too.
const SHAPES: [m: number, k: number, n: number][] = [
  [1, 1, 1],
  [7, 3, 11],
  [6, 8, 8],
  [4, 16, 16],
  [13, 17, 9],
  [25, 64, 33],
  [5, 1, 24],
  [3, 0, 5],
  [70, 900, 10],
  [9, 517, 12],
  [200, 300, 9],
];

/** transposeA, transposeB: every way the operands can be stored. */
const LAYOUTS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

async function variants(): Promise<Gemm[]> {
  const wasm = wasmModule(tf.backend());
  return [await compileGemm(wasm, false), await compileGemm(wasm, true)];
}

test('gemm: both variants equal a float64 product within float32 rounding, through every stride layout, and write only C', async () => {
  for (const gemm of await variants()) {
    for (const [m, k, n] of SHAPES) {
      const [a, b] = [values(m * k), values(k * n)];
      const want = reference(a, b, m, k, n);
      for (const [ta, tb] of LAYOUTS) {
        // Operands as stored (transposed where asked); C inside a larger tensor, guarded on both sides.
        const aStored = tf.tensor1d(ta ? transpose(a, m, k) : a);
        const bStored = tf.tensor1d(tb ? transpose(b, k, n) : b);
        const guard = 16;
        const c = tf.fill([m * n + 2 * guard], 7.5);
        const [aAt, bAt, cAt] = [aStored, bStored, c].map((t) => addressOf(tf.backend(), t)) as [
          number,
          number,
          number,
        ];
        gemm.product(
          ta ? transposed(aAt, m) : rowMajor(aAt, k),
          tb ? transposed(bAt, k) : rowMajor(bAt, n),
          { at: cAt + 4 * guard, ldc: 4 * n },
          m,
          k,
          n,
        );
        const got = c.dataSync();
        const what = `fma ${gemm.fma} ${m}x${k}x${n} transposeA ${ta} transposeB ${tb}`;
        assertClose(got.subarray(guard, guard + m * n), want, what);
        assert.ok(
          got.subarray(0, guard).every((v) => v === 7.5),
          `${what}: wrote before C`,
        );
        assert.ok(
          got.subarray(guard + m * n).every((v) => v === 7.5),
          `${what}: wrote after C`,
        );
        tf.dispose([aStored, bStored, c]);
      }
    }
  }
});

test('gemm: a row stride wider than n writes the tile rows in place and leaves the gaps alone', async () => {
  for (const gemm of await variants()) {
    const [m, k, n, ldc] = [9, 5, 11, 14];
    const [a, b] = [values(m * k), values(k * n)];
    const want = reference(a, b, m, k, n);
    const [at, bt, c] = [tf.tensor1d(a), tf.tensor1d(b), tf.fill([m * ldc], -3)];
    const addr = (t: tf.Tensor) => addressOf(tf.backend(), t);
    gemm.product(rowMajor(addr(at), k), rowMajor(addr(bt), n), { at: addr(c), ldc: 4 * ldc }, m, k, n);
    const got = c.dataSync();
    const inside = Float32Array.from({ length: m * n }, (_, i) => got[Math.floor(i / n) * ldc + (i % n)]!);
    assertClose(inside, want, `fma ${gemm.fma}`);
    for (let r = 0; r < m; r++) {
      assert.ok(
        got.subarray(r * ldc + n, (r + 1) * ldc).every((v) => v === -3),
        `row ${r} gap`,
      );
    }
    tf.dispose([at, bt, c]);
  }
});

test('gemm: accumulate adds the product to C, partial panels and blocks of k included', async () => {
  for (const gemm of await variants()) {
    for (const [m, k, n] of [
      [7, 3, 11],
      [13, 300, 9],
    ] as const) {
      const [a, b, c0] = [values(m * k), values(k * n), values(m * n)];
      const want = reference(a, b, m, k, n);
      want.out.forEach((v, i) => (want.out[i] = v + c0[i]!));
      want.scale.forEach((v, i) => (want.scale[i] = v + Math.abs(c0[i]!)));
      const [at, bt, c] = [tf.tensor1d(a), tf.tensor1d(b), tf.tensor1d(c0)];
      const addr = (t: tf.Tensor) => addressOf(tf.backend(), t);
      gemm.product(rowMajor(addr(at), k), rowMajor(addr(bt), n), { at: addr(c), ldc: 4 * n, accumulate: true }, m, k, n); // prettier-ignore
      assertClose(c.dataSync(), want, `fma ${gemm.fma} ${m}x${k}x${n}`);
      tf.dispose([at, bt, c]);
    }
  }
});

test('tf.matMul on wasm goes through the GEMM: flags, batches and broadcast batches against float64', () => {
  assert.ok(wasmGemm(), 'the wasm backend installed the GEMM');
  const [m, k, n, batch] = [5, 7, 9, 3];
  const as = [...Array(batch).keys()].map(() => values(m * k));
  const bs = [...Array(batch).keys()].map(() => values(k * n));
  const stack3 = (xs: Float32Array[], rows: number, cols: number, t: boolean) =>
    tf.tensor(Float32Array.from(xs.flatMap((x) => [...(t ? transpose(x, rows, cols) : x)])), [xs.length, t ? cols : rows, t ? rows : cols]) as tf.Tensor3D; // prettier-ignore
  for (const [ta, tb] of LAYOUTS) {
    const out = tf.matMul(stack3(as, m, k, ta), stack3(bs, k, n, tb), ta, tb);
    assert.deepEqual(out.shape, [batch, m, n]);
    const got = out.dataSync();
    for (let i = 0; i < batch; i++) {
      assertClose(got.subarray(i * m * n, (i + 1) * m * n), reference(as[i]!, bs[i]!, m, k, n), `batch ${i} ${ta} ${tb}`); // prettier-ignore
    }
  }
  // One a for every b (batch 1 broadcast), 2-D and rank 4.
  const broadcast = tf.matMul(stack3([as[0]!], m, k, false), stack3(bs, k, n, false)).dataSync();
  for (let i = 0; i < batch; i++) {
    assertClose(
      broadcast.subarray(i * m * n, (i + 1) * m * n),
      reference(as[0]!, bs[i]!, m, k, n),
      `broadcast ${i}`,
    );
  }
  const plain = tf.matMul(tf.tensor2d(as[1]!, [m, k]), tf.tensor2d(bs[1]!, [k, n]));
  assertClose(plain.dataSync(), reference(as[1]!, bs[1]!, m, k, n), '2-D');
  const rank4 = tf.matMul(tf.reshape(stack3(as, m, k, false), [1, batch, m, k]), tf.reshape(stack3(bs, k, n, false), [1, batch, k, n])); // prettier-ignore
  assert.deepEqual(rank4.shape, [1, batch, m, n]);
  assertClose(rank4.dataSync().subarray(0, m * n), reference(as[0]!, bs[0]!, m, k, n), 'rank 4');
  // [2, 1] against [3] batch dimensions (the backend's own kernel returns half of this output).
  const mixed = tf.matMul(
    tf.reshape(stack3(as.slice(0, 2), m, k, false), [2, 1, m, k]),
    stack3(bs, k, n, false),
  );
  assert.deepEqual(mixed.shape, [2, batch, m, n]);
  const mixedValues = mixed.dataSync();
  assertClose(mixedValues.subarray((batch + 2) * m * n, (batch + 3) * m * n), reference(as[1]!, bs[2]!, m, k, n), 'mixed'); // prettier-ignore
});
