// The WebAssembly text of our single-precision matrix product (gemm.ts compiles it), generated for a
// micro-kernel height (rows of A per tile) and for fused or separate multiply-add.
//
// The shape is the classic packed GEMM: B is packed once into panels of 8 columns (k rows of two
// v128 each, zero-padded past n), A is packed block by block into `rows`-row strips (k groups of
// `rows` floats, zero-padded past m), and the micro-kernel keeps a rows x 8 tile of C in
// 2 x rows v128 accumulators while it walks k: per step two vector loads of B, one broadcast load
// per row of A, and 2 x rows multiply-adds. Packing makes every load sequential and lets A and B be
// read through any strides (transposed operands cost nothing extra). Everything, loops included, is
// inside the module: one call per product.
//
// Measured on this machine (AMD EPYC, one thread, best of 7 interleaved, 1024^3 to 2048x688x256):
// 6-row tiles with f32x4.relaxed_madd 34-41 GFLOP/s, 4-row tiles with mul+add 23-27; XNNPACK's
// wasm-simd kernel behind tfjs-backend-wasm's matMul 12-17 in the same runs. The loop is not
// unrolled: V8's scheduler hoisted an unrolled body's loads and spilled accumulators (unroll 2:
// 17-19 GFLOP/s). Six rows is the most that fits: 12 accumulators + 2 of B + 1 broadcast = 15 of
// the 15 xmm registers V8 allocates on x64.

import { add, forLoop, get, i32, min, mul, range, set } from './watText.js';

/** Rows of the micro-kernel's tile for each arithmetic: 6 with fused multiply-add, 4 without. */
export const TILE_ROWS = { fma: 6, separate: 4 } as const;

/** Bytes of one packed panel row (8 float32). */
export const PANEL_BYTES = 32;

/**
 * The module: imports `env.memory` (tfjs-backend-wasm's), exports
 * `gemm(a, ars, acs, b, brs, bcs, c, ldc, m, k, n, mc, kc, scratch, accumulate)`: C (m x n, row
 * stride ldc bytes) = A (m x k, element (i, p) at a + i*ars + p*acs bytes) times B (k x n, (p, j)
 * at b + p*brs + j*bcs), plus C when `accumulate`, in blocks of mc rows and kc of k, through `scratch` bytes:
 * ceil(n/8) * kc * 32 of packed B, mc * kc * 4 of packed A, rows * 32 of tile.
 */
export function gemmWat(fma: boolean): string {
  const rows = fma ? TILE_ROWS.fma : TILE_ROWS.separate;
  const madd = (x: string, b: string, c: string) =>
    fma
      ? `(f32x4.relaxed_madd ${get(x)} ${get(b)} ${get(c)})`
      : `(f32x4.add (f32x4.mul ${get(x)} ${get(b)}) ${get(c)})`;
  const tile = range(rows);

  // C tile (rows x 8) = packed A strip (k x rows) times packed B panel (k x 8), plus C's tile when
  // `acc` (a later block of k); loads and stores the first `mr` rows only (a strip at the bottom
  // edge of C is zero-padded past them).
  const micro = `
  (func $micro (param $ap i32) (param $bp i32) (param $c i32) (param $ldc i32) (param $k i32) (param $mr i32) (param $acc i32)
    (local $b0 v128) (local $b1 v128) (local $x v128) (local $cr i32)
    ${tile.map((r) => `(local $c${r}_0 v128) (local $c${r}_1 v128)`).join(' ')}
    (if ${get('acc')} (then
      ${set('cr', get('c'))}
      (block $loaded
        ${tile
          .map(
            (r) => `(br_if $loaded (i32.le_s ${get('mr')} ${i32(r)}))
        ${set(`c${r}_0`, `(v128.load ${get('cr')})`)} ${set(`c${r}_1`, `(v128.load offset=16 ${get('cr')})`)}
        ${set('cr', add(get('cr'), get('ldc')))}`,
          )
          .join('\n')})))
    (block $done (loop $step
      (br_if $done (i32.le_s ${get('k')} ${i32(0)}))
      ${set('b0', `(v128.load ${get('bp')})`)}
      ${set('b1', `(v128.load offset=16 ${get('bp')})`)}
      ${tile
        .map((r) =>
          [
            set('x', `(v128.load32_splat offset=${r * 4} ${get('ap')})`),
            set(`c${r}_0`, madd('x', 'b0', `c${r}_0`)),
            set(`c${r}_1`, madd('x', 'b1', `c${r}_1`)),
          ].join(' '),
        )
        .join('\n')}
      ${set('ap', add(get('ap'), i32(rows * 4)))}
      ${set('bp', add(get('bp'), i32(PANEL_BYTES)))}
      ${set('k', `(i32.sub ${get('k')} ${i32(1)})`)}
      (br $step)))
    ${tile
      .map(
        (r) => `(br_if 0 (i32.le_s ${get('mr')} ${i32(r)}))
      (v128.store ${get('c')} ${get(`c${r}_0`)}) (v128.store offset=16 ${get('c')} ${get(`c${r}_1`)})
      ${set('c', add(get('c'), get('ldc')))}`,
      )
      .join('\n')}
  )`;

  // Gathers `count` floats `stride` bytes apart from src into dst, dst+4, ...: the body of one step of
  // a full strip or panel, unrolled (a loop with a select per element measured ~3x slower packing a
  // transposed operand, which the attention kernel's dk and dv products are).
  const gather = (count: number, stride: string) =>
    range(count)
      .map(
        (r) =>
          `(f32.store offset=${r * 4} ${get('dst')} (f32.load ${r === 0 ? get('src') : add(get('src'), mul(i32(r), stride))}))`,
      )
      .join('\n');

  // One strip: rows [0, mr) of A as k groups of `rows` floats, zeros past mr.
  const packA = `
  (func $packA (param $a i32) (param $rs i32) (param $cs i32) (param $mr i32) (param $k i32) (param $dst i32)
    (local $p i32) (local $r i32) (local $src i32)
    (if (i32.eq ${get('mr')} ${i32(rows)})
      (then ${forLoop(
        'p',
        i32(0),
        get('k'),
        i32(1),
        set('src', add(get('a'), mul(get('p'), get('cs')))),
        gather(rows, get('rs')),
        set('dst', add(get('dst'), i32(rows * 4))),
      )})
      (else ${forLoop(
        'p',
        i32(0),
        get('k'),
        i32(1),
        set('src', add(get('a'), mul(get('p'), get('cs')))),
        forLoop(
          'r',
          i32(0),
          i32(rows),
          i32(1),
          `(f32.store ${get('dst')} (select (f32.load ${get('src')}) (f32.const 0) (i32.lt_s ${get('r')} ${get('mr')})))`,
          set('dst', add(get('dst'), i32(4))),
          // Past the last real row, keep reading that row (in bounds) and store zeros.
          set(
            'src',
            add(
              get('src'),
              `(select ${get('rs')} ${i32(0)} (i32.lt_s ${add(get('r'), i32(1))} ${get('mr')}))`,
            ),
          ),
        ),
      )}))
  )`;

  // All of B as panels of 8 columns, panel j/8 at dst + j*k*4: a contiguous full row of 8 is copied
  // as two vectors, a strided one (B transposed) gathered, a partial last panel element by element.
  const packB = `
  (func $packB (param $b i32) (param $rs i32) (param $cs i32) (param $k i32) (param $n i32) (param $dst i32)
    (local $j i32) (local $p i32) (local $jj i32) (local $src i32) (local $w i32)
    ${forLoop(
      'j',
      i32(0),
      get('n'),
      i32(8),
      set('w', `(i32.sub ${get('n')} ${get('j')})`),
      forLoop(
        'p',
        i32(0),
        get('k'),
        i32(1),
        set('src', add(get('b'), add(mul(get('p'), get('rs')), mul(get('j'), get('cs'))))),
        `(if (i32.ge_s ${get('w')} ${i32(8)})
          (then
            (if (i32.eq ${get('cs')} ${i32(4)})
              (then
                (v128.store ${get('dst')} (v128.load ${get('src')}))
                (v128.store offset=16 ${get('dst')} (v128.load offset=16 ${get('src')})))
              (else ${gather(8, get('cs'))})))
          (else ${forLoop(
            'jj',
            i32(0),
            i32(8),
            i32(1),
            `(f32.store ${add(get('dst'), `(i32.shl ${get('jj')} ${i32(2)})`)}
               (select (f32.load ${get('src')}) (f32.const 0) (i32.lt_s ${get('jj')} ${get('w')})))`,
            `(if (i32.lt_s ${add(get('jj'), i32(1))} ${get('w')}) (then ${set('src', add(get('src'), get('cs')))}))`,
          )}))`,
        set('dst', add(get('dst'), i32(PANEL_BYTES))),
      ),
    )}
  )`;

  // Blocks of kc of the k dimension (a strip of A and a panel of B, 6 and 8 x kc floats, stay in
  // L1 together; with all of k = 2048 they did not, 13 against 27-33 GFLOP/s), each product of a
  // block after the first added to C. Within a block of k: blocks of mc rows of A (packed once,
  // then reused against every panel of B, so the block stays in L2 while a panel stays in L1); a
  // partial last panel goes through the tile (C's columns copied in first when adding).
  const stripAt = `(i32.add ${get('pa')} (i32.shl ${mul(`(i32.sub ${get('i')} ${get('ic')})`, get('kb'))} ${i32(2)}))`;
  const tileCopy = (toTile: boolean) => {
    const cAt = add(add(get('cp'), mul(get('r'), get('ldc'))), `(i32.shl ${get('jj')} ${i32(2)})`);
    const tAt = add(get('tile'), add(`(i32.shl ${get('r')} ${i32(5)})`, `(i32.shl ${get('jj')} ${i32(2)})`));
    const [to, from] = toTile ? [tAt, cAt] : [cAt, tAt];
    return forLoop(
      'r',
      i32(0),
      get('mr'),
      i32(1),
      forLoop('jj', i32(0), get('w'), i32(1), `(f32.store ${to} (f32.load ${from}))`),
    );
  };
  const gemm = `
  (func (export "gemm") (param $a i32) (param $ars i32) (param $acs i32) (param $b i32) (param $brs i32) (param $bcs i32)
      (param $c i32) (param $ldc i32) (param $m i32) (param $k i32) (param $n i32) (param $mc i32) (param $kc i32)
      (param $scratch i32) (param $accumulate i32)
    (local $pa i32) (local $tile i32) (local $pc i32) (local $kb i32) (local $acc i32) (local $ic i32) (local $iend i32)
    (local $i i32) (local $j i32) (local $mr i32) (local $w i32) (local $bp i32) (local $cp i32) (local $r i32) (local $jj i32)
    ${set('pa', add(get('scratch'), mul(`(i32.shl (i32.shr_u ${add(get('n'), i32(7))} ${i32(3)}) ${i32(5)})`, get('kc'))))}
    ${set('tile', add(get('pa'), `(i32.shl ${mul(get('mc'), get('kc'))} ${i32(2)})`))}
    ;; At least one block of k, so that k = 0 still writes C (zeros).
    (loop $pc_next
      ${set('kb', min(get('kc'), `(i32.sub ${get('k')} ${get('pc')})`))}
      ${set('acc', `(i32.or ${get('accumulate')} (i32.gt_s ${get('pc')} ${i32(0)}))`)}
      (call $packB ${add(get('b'), mul(get('pc'), get('brs')))} ${get('brs')} ${get('bcs')} ${get('kb')} ${get('n')} ${get('scratch')})
      ${forLoop(
        'ic',
        i32(0),
        get('m'),
        get('mc'),
        set('iend', min(get('m'), add(get('ic'), get('mc')))),
        forLoop(
          'i',
          get('ic'),
          get('iend'),
          i32(rows),
          `(call $packA ${add(add(get('a'), mul(get('i'), get('ars'))), mul(get('pc'), get('acs')))} ${get('ars')} ${get('acs')}
             ${min(i32(rows), `(i32.sub ${get('iend')} ${get('i')})`)} ${get('kb')} ${stripAt})`,
        ),
        forLoop(
          'j',
          i32(0),
          get('n'),
          i32(8),
          set('w', `(i32.sub ${get('n')} ${get('j')})`),
          set('bp', add(get('scratch'), mul(`(i32.shl ${get('j')} ${i32(2)})`, get('kb')))),
          forLoop(
            'i',
            get('ic'),
            get('iend'),
            i32(rows),
            set('mr', min(i32(rows), `(i32.sub ${get('iend')} ${get('i')})`)),
            set('cp', add(get('c'), add(mul(get('i'), get('ldc')), `(i32.shl ${get('j')} ${i32(2)})`))),
            `(if (i32.ge_s ${get('w')} ${i32(8)})
              (then (call $micro ${stripAt} ${get('bp')} ${get('cp')} ${get('ldc')} ${get('kb')} ${get('mr')} ${get('acc')}))
              (else
                (if ${get('acc')} (then ${tileCopy(true)}))
                (call $micro ${stripAt} ${get('bp')} ${get('tile')} ${i32(PANEL_BYTES)} ${get('kb')} ${get('mr')} ${get('acc')})
                ${tileCopy(false)}))`,
          ),
        ),
      )}
      ${set('pc', add(get('pc'), get('kc')))}
      (br_if $pc_next (i32.lt_s ${get('pc')} ${get('k')})))
  )`;
  return `(module (import "env" "memory" (memory 1)) ${micro} ${packA} ${packB} ${gemm})`;
}
