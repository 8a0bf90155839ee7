// The WebAssembly text of the step's row-wise kernels (rowKernels.ts compiles it): RMSNorm forward
// and backward, softmax's gradient, the rotary embedding, a scaling and AdamW's update, four float32 lanes at a time with a scalar tail for widths
// that are not a multiple of 4.
//
// They were JavaScript loops over the tensors' wasm memory (every element read as a double and
// written back as a float): ~10 ns an element here under load. Row sums are float32 in four lanes
// (the JavaScript summed in float64), as tfjs's own mean and PyTorch sum them.
import { add, forLoop, get, i32, mul, set } from './watText.js';

const load = (at: string) => `(v128.load ${at})`;
const store = (at: string, v: string) => `(v128.store ${at} ${v})`;
const f32Load = (at: string) => `(f32.load ${at})`;
const f32Store = (at: string, v: string) => `(f32.store ${at} ${v})`;
const vadd = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
const vsub = (a: string, b: string) => `(f32x4.sub ${a} ${b})`;
const vmul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const fadd = (a: string, b: string) => `(f32.add ${a} ${b})`;
const fsub = (a: string, b: string) => `(f32.sub ${a} ${b})`;
const fmul = (a: string, b: string) => `(f32.mul ${a} ${b})`;
const ZERO = '(v128.const f32x4 0 0 0 0)';
/** The sum of a vector's four lanes. */
const lanes = (v: string) =>
  fadd(fadd(`(f32x4.extract_lane 0 ${v})`, `(f32x4.extract_lane 1 ${v})`), fadd(`(f32x4.extract_lane 2 ${v})`, `(f32x4.extract_lane 3 ${v})`)); // prettier-ignore
const splat = (name: string) => `(f32x4.splat ${get(name)})`;
const splatOneMinus = (name: string) => `(f32x4.splat (f32.sub (f32.const 1) ${get(name)}))`;
/** Byte address of element `j` (an i32 expression) of the row at `base`. */
const at = (base: string, j = get('j')) => add(get(base), `(i32.shl ${j} ${i32(2)})`);
/** The vector part of a row (j in steps of 4 up to d4), then the scalar tail up to `width`. */
const row = (width: string, vector: string[], scalar: string[]) =>
  forLoop('j', i32(0), get('d4'), i32(4), ...vector) + forLoop('j', get('d4'), width, i32(1), ...scalar);
/** Each pointer moved on by one row of d floats. */
const nextRow = (...pointers: string[]) =>
  pointers.map((p) => set(p, add(get(p), `(i32.shl ${get('d')} ${i32(2)})`)));
/** result = the sum over a row of a[j] * b[j] (lanes of 4, then the tail; locals acc, j, d4, d). */
const rowDot = (result: string, a: string, b: string) => [
  set('acc', ZERO),
  forLoop('j', i32(0), get('d4'), i32(4), set('acc', vadd(get('acc'), vmul(load(at(a)), load(at(b)))))),
  set(result, lanes(get('acc'))),
  forLoop(
    'j',
    get('d4'),
    get('d'),
    i32(1),
    set(result, fadd(get(result), fmul(f32Load(at(a)), f32Load(at(b))))),
  ),
];
/** 1 / sqrt(ss / d + eps), RMSNorm's scale of a row with sum of squares ss. */
const rsqrtMean = `(f32.div (f32.const 1) (f32.sqrt ${fadd(`(f32.div ${get('ss')} (f32.convert_i32_s ${get('d')}))`, get('eps'))}))`; // prettier-ignore

/** y = x * rsqrt(mean(x^2) + eps) * w, row by row of x [n, d]. */
const rmsNorm = `
  (func (export "rmsNorm") (param $x i32) (param $w i32) (param $y i32) (param $n i32) (param $d i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $d4 i32) (local $acc v128) (local $ss f32) (local $s f32) (local $sv v128)
    ${set('d4', `(i32.and ${get('d')} ${i32(-4)})`)}
    ${forLoop(
      'r',
      i32(0),
      get('n'),
      i32(1),
      ...rowDot('ss', 'x', 'x'),
      set('s', rsqrtMean),
      set('sv', `(f32x4.splat ${get('s')})`),
      row(
        get('d'),
        [store(at('y'), vmul(vmul(load(at('x')), get('sv')), load(at('w'))))],
        [f32Store(at('y'), fmul(fmul(f32Load(at('x')), get('s')), f32Load(at('w'))))],
      ),
      ...nextRow('x', 'y'),
    )}
  )`;

/**
 * With s = rsqrt(mean(x^2) + eps) per row and g = dy * w: dx = s * dy * w - (s^3 mean(g * x)) * x,
 * dw = sum over rows of dy * x * s (dw is zeroed first).
 */
const rmsNormGrad = `
  (func (export "rmsNormGrad") (param $dy i32) (param $x i32) (param $w i32) (param $dx i32) (param $dw i32)
      (param $n i32) (param $d i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $d4 i32) (local $accS v128) (local $accD v128) (local $ss f32) (local $dot f32)
    (local $s f32) (local $k f32) (local $sv v128) (local $kv v128) (local $dyv v128) (local $xv v128)
    ${set('d4', `(i32.and ${get('d')} ${i32(-4)})`)}
    ${forLoop('j', i32(0), get('d'), i32(1), f32Store(at('dw'), '(f32.const 0)'))}
    ${forLoop(
      'r',
      i32(0),
      get('n'),
      i32(1),
      set('accS', ZERO),
      set('accD', ZERO),
      forLoop(
        'j',
        i32(0),
        get('d4'),
        i32(4),
        set('xv', load(at('x'))),
        set('accS', vadd(get('accS'), vmul(get('xv'), get('xv')))),
        set('accD', vadd(get('accD'), vmul(vmul(load(at('dy')), load(at('w'))), get('xv')))),
      ),
      set('ss', lanes(get('accS'))),
      set('dot', lanes(get('accD'))),
      forLoop(
        'j',
        get('d4'),
        get('d'),
        i32(1),
        set('ss', fadd(get('ss'), fmul(f32Load(at('x')), f32Load(at('x'))))),
        set('dot', fadd(get('dot'), fmul(fmul(f32Load(at('dy')), f32Load(at('w'))), f32Load(at('x'))))),
      ),
      set('s', rsqrtMean),
      set(
        'k',
        `(f32.div ${fmul(fmul(fmul(get('s'), get('s')), get('s')), get('dot'))} (f32.convert_i32_s ${get('d')}))`,
      ),
      set('sv', `(f32x4.splat ${get('s')})`),
      set('kv', `(f32x4.splat ${get('k')})`),
      row(
        get('d'),
        [
          set('dyv', load(at('dy'))),
          set('xv', load(at('x'))),
          store(at('dx'), vsub(vmul(vmul(get('sv'), get('dyv')), load(at('w'))), vmul(get('kv'), get('xv')))),
          store(at('dw'), vadd(load(at('dw')), vmul(vmul(get('dyv'), get('xv')), get('sv')))),
        ],
        [
          f32Store(at('dx'), fsub(fmul(fmul(get('s'), f32Load(at('dy'))), f32Load(at('w'))), fmul(get('k'), f32Load(at('x'))))), // prettier-ignore
          f32Store(
            at('dw'),
            fadd(f32Load(at('dw')), fmul(fmul(f32Load(at('dy')), f32Load(at('x'))), get('s'))),
          ),
        ],
      ),
      ...nextRow('dy', 'x', 'dx'),
    )}
  )`;

/** ds = p * (ds - rowsum(p * ds)) in place, for `rows` rows of `d` (softmax's gradient). */
const softmaxGrad = `
  (func (export "softmaxGrad") (param $p i32) (param $ds i32) (param $rows i32) (param $d i32)
    (local $r i32) (local $j i32) (local $d4 i32) (local $acc v128) (local $dot f32) (local $dv v128)
    ${set('d4', `(i32.and ${get('d')} ${i32(-4)})`)}
    ${forLoop(
      'r',
      i32(0),
      get('rows'),
      i32(1),
      ...rowDot('dot', 'p', 'ds'),
      set('dv', `(f32x4.splat ${get('dot')})`),
      row(
        get('d'),
        [store(at('ds'), vmul(load(at('p')), vsub(load(at('ds')), get('dv'))))],
        [f32Store(at('ds'), fmul(f32Load(at('p')), fsub(f32Load(at('ds')), get('dot'))))],
      ),
      ...nextRow('p', 'ds'),
    )}
  )`;

/**
 * Rotary embedding (HF rotate_half) of x [rows, width] into out, heads of headDim side by side, row
 * r at position r mod seqLen of the [seqLen, headDim / 2] tables: out[i] = x[i] c - x[i + half] s,
 * out[i + half] = x[i + half] c + x[i] s, with s = sign * sin (sign -1: the backward pass).
 */
const rotary = `
  (func (export "rotary") (param $x i32) (param $out i32) (param $cos i32) (param $sin i32) (param $rows i32)
      (param $width i32) (param $headDim i32) (param $seqLen i32) (param $sign f32)
    (local $r i32) (local $h i32) (local $i i32) (local $half i32) (local $h4 i32) (local $ct i32) (local $st i32)
    (local $lo i32) (local $hi i32) (local $olo i32) (local $ohi i32) (local $signs v128) (local $c v128) (local $s v128)
    (local $a v128) (local $b v128)
    ${set('half', `(i32.shr_u ${get('headDim')} ${i32(1)})`)}
    ${set('h4', `(i32.and ${get('half')} ${i32(-4)})`)}
    ${set('signs', `(f32x4.splat ${get('sign')})`)}
    ${forLoop(
      'r',
      i32(0),
      get('rows'),
      i32(1),
      set(
        'ct',
        add(
          get('cos'),
          `(i32.shl ${mul(`(i32.rem_u ${get('r')} ${get('seqLen')})`, get('half'))} ${i32(2)})`,
        ),
      ),
      set('st', add(get('sin'), `(i32.sub ${get('ct')} ${get('cos')})`)),
      forLoop(
        'h',
        i32(0),
        get('width'),
        get('headDim'),
        set('lo', add(get('x'), `(i32.shl ${add(mul(get('r'), get('width')), get('h'))} ${i32(2)})`)),
        set('hi', add(get('lo'), `(i32.shl ${get('half')} ${i32(2)})`)),
        set('olo', add(get('out'), `(i32.sub ${get('lo')} ${get('x')})`)),
        set('ohi', add(get('olo'), `(i32.shl ${get('half')} ${i32(2)})`)),
        forLoop(
          'i',
          i32(0),
          get('h4'),
          i32(4),
          set('c', load(at('ct', get('i')))),
          set('s', vmul(load(at('st', get('i'))), get('signs'))),
          set('a', load(at('lo', get('i')))),
          set('b', load(at('hi', get('i')))),
          store(at('olo', get('i')), vsub(vmul(get('a'), get('c')), vmul(get('b'), get('s')))),
          store(at('ohi', get('i')), vadd(vmul(get('b'), get('c')), vmul(get('a'), get('s')))),
        ),
        forLoop(
          'i',
          get('h4'),
          get('half'),
          i32(1),
          f32Store(at('olo', get('i')), fsub(fmul(f32Load(at('lo', get('i'))), f32Load(at('ct', get('i')))), fmul(f32Load(at('hi', get('i'))), fmul(f32Load(at('st', get('i'))), get('sign'))))), // prettier-ignore
          f32Store(at('ohi', get('i')), fadd(fmul(f32Load(at('hi', get('i'))), f32Load(at('ct', get('i')))), fmul(f32Load(at('lo', get('i'))), fmul(f32Load(at('st', get('i'))), get('sign'))))), // prettier-ignore
        ),
      ),
    )}
  )`;

/** x *= factor over `count` floats, in place. */
const scale = `
  (func (export "scale") (param $x i32) (param $count i32) (param $factor f32)
    (local $j i32) (local $d4 i32) (local $fv v128)
    ${set('d4', `(i32.and ${get('count')} ${i32(-4)})`)}
    ${set('fv', `(f32x4.splat ${get('factor')})`)}
    ${row(get('count'), [store(at('x'), vmul(load(at('x')), get('fv')))], [f32Store(at('x'), fmul(f32Load(at('x')), get('factor')))])}
  )`;

/**
 * One AdamW step over `count` parameters, in place on the moments m and v: with g' = g * clip,
 * m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2, out = w * keep - stepSize * m / (sqrt(v) + eps).
 */
const adamw = `
  (func (export "adamw") (param $w i32) (param $g i32) (param $out i32) (param $m i32) (param $v i32) (param $count i32)
      (param $clip f32) (param $keep f32) (param $stepSize f32) (param $beta1 f32) (param $beta2 f32) (param $eps f32)
    (local $j i32) (local $d4 i32) (local $gv v128) (local $mv v128) (local $vv v128) (local $gs f32) (local $ms f32) (local $vs f32)
    ${set('d4', `(i32.and ${get('count')} ${i32(-4)})`)}
    ${row(
      get('count'),
      [
        set('gv', vmul(load(at('g')), splat('clip'))),
        set('mv', vadd(vmul(splat('beta1'), load(at('m'))), vmul(splatOneMinus('beta1'), get('gv')))),
        set(
          'vv',
          vadd(vmul(splat('beta2'), load(at('v'))), vmul(vmul(splatOneMinus('beta2'), get('gv')), get('gv'))),
        ),
        store(at('m'), get('mv')),
        store(at('v'), get('vv')),
        store(at('out'), vsub(vmul(load(at('w')), splat('keep')), `(f32x4.div ${vmul(splat('stepSize'), get('mv'))} ${vadd(`(f32x4.sqrt ${get('vv')})`, splat('eps'))})`)), // prettier-ignore
      ],
      [
        set('gs', fmul(f32Load(at('g')), get('clip'))),
        set(
          'ms',
          fadd(fmul(get('beta1'), f32Load(at('m'))), fmul(fsub('(f32.const 1)', get('beta1')), get('gs'))),
        ),
        set('vs', fadd(fmul(get('beta2'), f32Load(at('v'))), fmul(fmul(fsub('(f32.const 1)', get('beta2')), get('gs')), get('gs')))), // prettier-ignore
        f32Store(at('m'), get('ms')),
        f32Store(at('v'), get('vs')),
        f32Store(at('out'), fsub(fmul(f32Load(at('w')), get('keep')), `(f32.div ${fmul(get('stepSize'), get('ms'))} ${fadd(`(f32.sqrt ${get('vs')})`, get('eps'))})`)), // prettier-ignore
      ],
    )}
  )`;

/** The module: imports `env.memory` (tfjs-backend-wasm's); arguments are byte addresses and sizes. */
export const ROW_KERNELS_WAT = `(module (import "env" "memory" (memory 1)) ${rmsNorm} ${rmsNormGrad} ${softmaxGrad} ${rotary} ${scale} ${adamw})`;
