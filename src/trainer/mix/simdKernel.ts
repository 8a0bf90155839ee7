// The mix's mean of BF16/F32 inputs to a BF16/F32 output (the paper's rule, and most of the bytes a mix
// combines) with WebAssembly SIMD: four float32 lanes per instruction instead of V8's one. The module
// is a few hundred bytes emitted below, instruction by instruction, so nothing is built or fetched.
// Profile before it (4 BF16 experts, 2 cores): the JS block loops (combineKernel.ts) were the largest
// CPU item of the mix, ~0.65 of ~1.0 CPU s. Same arithmetic, same order: float32 add and divide are
// correctly rounded in a lane exactly as V8 rounds `acc[k] += x` (a double op, then float32; double
// rounding is innocuous for +, / at 53 >= 2 x 24 + 2 bits), and the BF16 encode is the same integer
// round-to-nearest-even, so the bytes are those of the JS kernel (tested against it on every bit
// pattern class). F16 inputs or outputs and the weighted rule stay on the JS kernel. Two shapes: buffers
// in an arena (simdArena: the mix's slot buffers) are read and written in place by one fused pass per
// slice, from a module emitted for the inputs' dtypes; any other buffers go through the kernel's own
// memory block by block, one pass per input.

import { webAssembly } from '../../util/webAssembly.js';

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')];

// Instructions (core, then 0xfd-prefixed SIMD), each as its bytes.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const i32 = (v: number) => [0x41, ...sleb(v)];
const I32_ADD = [0x6a];
const I32_SHL = [0x74];
const I32_GE_U = [0x4f];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
/** memarg: alignment hint 1 byte (always valid), offset. */
const V128_LOAD = (offset = 0) => simd(0x00, 0, ...uleb(offset));
const V128_LOAD16X4_U = simd(0x04, 0, 0);
const V128_STORE = simd(0x0b, 0, 0);
const splat32 = (v: number) =>
  simd(0x0c, ...[0, 1, 2, 3].flatMap(() => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]));
const I32X4_GT_S = simd(0x3b);
const V128_AND = simd(0x4e);
const V128_OR = simd(0x50);
const V128_BITSELECT = simd(0x52);
const I16X8_NARROW_I32X4_U = simd(0x86);
const I32X4_SHL = simd(0xab);
const I32X4_SHR_U = simd(0xad);
const I32X4_ADD = simd(0xae);
const F32X4_SPLAT = simd(0x13);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);
const F32X4_DIV = simd(0xe7);
const I32X4_EXTEND_LOW_I16X8_U = simd(0xa9);
const I32X4_EXTEND_HIGH_I16X8_U = simd(0xaa);
const V128_STORE_AT = (offset: number) => simd(0x0b, 0, ...uleb(offset));
const f32 = (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)];

/**
 * The float32 bits in local `x` rounded to bfloat16 bits (still in i32 lanes, left on the stack): NaN ->
 * (x >>> 16) | 0x40, else (x + 0x7fff + ((x >>> 16) & 1)) >>> 16.
 */
const bf16Round = (x: number) => [
  ...get(x),
  ...i32(16),
  ...I32X4_SHR_U,
  ...splat32(0x40),
  ...V128_OR,
  ...get(x),
  ...splat32(0x7fff),
  ...I32X4_ADD,
  ...get(x),
  ...i32(16),
  ...I32X4_SHR_U,
  ...splat32(1),
  ...V128_AND,
  ...I32X4_ADD,
  ...i32(16),
  ...I32X4_SHR_U,
  ...get(x),
  ...splat32(0x7fffffff),
  ...V128_AND,
  ...splat32(0x7f800000),
  ...I32X4_GT_S,
  ...V128_BITSELECT,
];

/** `base + (i << shift)`: the address of element i of an array of 2^shift-byte elements at `base`. */
const addr = (base: number, i: number, shift: number) => [
  ...get(base),
  ...get(i),
  ...i32(shift),
  ...I32_SHL,
  ...I32_ADD,
];

/**
 * A function of (param0, param1, param2 = element count, ...) whose body runs `step` for element
 * index i = 0, stride, 2 x stride... while i < count; local `i` is the index after the params.
 */
function loopFunction(params: number[], extraLocals: number[], stride: number, step: number[]) {
  const i = params.length;
  const body = [
    ...[0x02, 0x40], // block
    ...[0x03, 0x40], // loop
    ...get(i),
    ...get(2),
    ...I32_GE_U,
    ...[0x0d, 1], // br_if out of the block
    ...step,
    ...get(i),
    ...i32(stride),
    ...I32_ADD,
    ...set(i),
    ...[0x0c, 0], // br to the loop
    0x0b,
    0x0b,
    0x0b, // end of function
  ];
  const locals = [[1, I32], ...extraLocals.map((t) => [1, t])];
  const code = [...vec(locals), ...body];
  return { type: [0x60, ...vec(params.map((p) => [p])), 0], code: [...uleb(code.length), ...code] };
}

// acc, src: byte addresses; n: element count, a multiple of 4 (8 for toBf16).
const FUNCTIONS: Record<string, ReturnType<typeof loopFunction>> = {
  /** acc[i] = bf16 src[i] as float32 (a bit shift). */
  setBf16: loopFunction([I32, I32, I32], [], 4, [
    ...addr(0, 3, 2),
    ...addr(1, 3, 1),
    ...V128_LOAD16X4_U,
    ...i32(16),
    ...I32X4_SHL,
    ...V128_STORE,
  ]),
  /** acc[i] += bf16 src[i]. */
  addBf16: loopFunction([I32, I32, I32], [], 4, [
    ...addr(0, 3, 2),
    ...addr(0, 3, 2),
    ...V128_LOAD(),
    ...addr(1, 3, 1),
    ...V128_LOAD16X4_U,
    ...i32(16),
    ...I32X4_SHL,
    ...F32X4_ADD,
    ...V128_STORE,
  ]),
  /** acc[i] += f32 src[i]. */
  addF32: loopFunction([I32, I32, I32], [], 4, [
    ...addr(0, 3, 2),
    ...addr(0, 3, 2),
    ...V128_LOAD(),
    ...addr(1, 3, 2),
    ...V128_LOAD(),
    ...F32X4_ADD,
    ...V128_STORE,
  ]),
  /** acc[i] /= d (param 1 unused, so every function has the count third). */
  divide: loopFunction([I32, I32, I32, F32], [], 4, [
    ...addr(0, 4, 2),
    ...addr(0, 4, 2),
    ...V128_LOAD(),
    ...get(3),
    ...F32X4_SPLAT,
    ...F32X4_DIV,
    ...V128_STORE,
  ]),
  /** dst[i] = acc[i] as bf16 (bf16Round). */
  toBf16: loopFunction([I32, I32, I32], [V128], 8, [
    ...addr(1, 3, 1),
    ...[0, 16].flatMap((offset) => [...addr(0, 3, 2), ...V128_LOAD(offset), ...set(4), ...bf16Round(4)]),
    ...I16X8_NARROW_I32X4_U,
    ...V128_STORE,
  ]),
};

/**
 * The mean of n inputs of the given dtypes in one pass, eight elements at a time held in two
 * registers (no accumulator in memory, no pass per input): (dst, src0, count, src1, ..., src[n-1]),
 * count a multiple of 8. The same float32 adds in input order, the same divide and rounding as the
 * passes above. Measured on the bench's mix (perf): the passes took ~55 ms for 20M elements of 4
 * BF16 inputs; microbench, 2.0 CPU ns per element for the passes, 1.35 fused (1.0 with the multiply).
 */
function fusedMeanFunctions(
  dtypes: readonly ('F32' | 'BF16')[],
): Record<string, ReturnType<typeof loopFunction>> {
  const n = dtypes.length;
  const params = [I32, I32, I32, ...Array.from({ length: n - 1 }, () => I32)];
  const i = params.length;
  const [t, lo, hi] = [i + 1, i + 2, i + 3];
  const src = (k: number) => (k === 0 ? 1 : 2 + k);
  /** acc = x (the first input: a bit copy, so -0 and NaN payloads stay) or acc + x, x on the stack. */
  const accumulate = (k: number, acc: number, x: number[]) =>
    k === 0 ? [...x, ...set(acc)] : [...get(acc), ...x, ...F32X4_ADD, ...set(acc)];
  const sum = dtypes
    .map((dtype, k) =>
      dtype === 'F32'
        ? [
            ...accumulate(k, lo, [...addr(src(k), i, 2), ...V128_LOAD(0)]),
            ...accumulate(k, hi, [...addr(src(k), i, 2), ...V128_LOAD(16)]),
          ]
        : [
            ...addr(src(k), i, 1),
            ...V128_LOAD(),
            ...set(t),
            ...accumulate(k, lo, [...get(t), ...I32X4_EXTEND_LOW_I16X8_U, ...i32(16), ...I32X4_SHL]),
            ...accumulate(k, hi, [...get(t), ...I32X4_EXTEND_HIGH_I16X8_U, ...i32(16), ...I32X4_SHL]),
          ],
    )
    .flat();
  // x / n, or x * (1 / n) when n is a power of two: 1 / n is then exact, and both are the correctly
  // rounded value of the same real number, so the bits are the same (NaNs and subnormals included);
  // the multiply is several times cheaper than the divide.
  const pow2 = (n & (n - 1)) === 0;
  const divide =
    n > 1
      ? [lo, hi].flatMap((acc) => [
          ...get(acc),
          ...f32(pow2 ? 1 / n : n),
          ...F32X4_SPLAT,
          ...(pow2 ? F32X4_MUL : F32X4_DIV),
          ...set(acc),
        ])
      : [];
  const locals = [V128, V128, V128];
  return {
    toBf16: loopFunction(params, locals, 8, [
      ...sum,
      ...divide,
      ...addr(0, i, 1),
      ...bf16Round(lo),
      ...bf16Round(hi),
      ...I16X8_NARROW_I32X4_U,
      ...V128_STORE,
    ]),
    toF32: loopFunction(params, locals, 8, [
      ...sum,
      ...divide,
      ...addr(0, i, 2),
      ...get(lo),
      ...V128_STORE,
      ...addr(0, i, 2),
      ...get(hi),
      ...V128_STORE_AT(16),
    ]),
  };
}

/** The largest memory the module accepts, in 64 KiB pages (4 GiB, wasm32's whole address space). */
const MAX_PAGES = 65536;
const PAGE = 65536;

/**
 * The module imports its memory ("env" "memory", shared), so one module serves both the kernel's
 * own scratch memory and arenas (simdArena) whose buffers the mix reads into directly.
 */
function moduleBytes(functions: Record<string, ReturnType<typeof loopFunction>> = FUNCTIONS): Uint8Array {
  const fns = Object.entries(functions);
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(fns.map(([, f]) => f.type))),
    // import env.memory: a shared memory (limits flag 3) of 1 to MAX_PAGES pages.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(MAX_PAGES)]])),
    ...section(3, vec(fns.map((_, i) => uleb(i)))),
    ...section(7, vec(fns.map(([n], i) => [...name(n), 0x00, ...uleb(i)]))),
    ...section(10, vec(fns.map(([, f]) => f.code))),
  ]);
}

const wasm = webAssembly;

interface Exports {
  setBf16(acc: number, src: number, n: number): void;
  addBf16(acc: number, src: number, n: number): void;
  addF32(acc: number, src: number, n: number): void;
  divide(acc: number, unused: number, n: number, d: number): void;
  toBf16(acc: number, dst: number, n: number): void;
}

/** (dst, src0, count, src1, ..., src[n-1]), see fusedMeanFunctions. */
type FusedMean = (dst: number, src0: number, count: number, ...rest: number[]) => void;

interface FusedExports {
  toBf16: FusedMean;
  toF32: FusedMean;
}

/** An instance and its memory. */
interface Kernel {
  fns: Exports;
  buffer: SharedArrayBuffer;
  mem: Uint8Array;
  memory: object;
  /** The fused means over this memory, by their inputs' dtypes, instantiated when first used. */
  fused: Map<string, FusedExports>;
}

/** Elements per call; every memory starts with acc (float32), one input block (<= 4 bytes each) and the output. */
export const SIMD_BLOCK = 4096;
const ACC = 0;
const SRC = SIMD_BLOCK * 4;
const DST = SIMD_BLOCK * 8;
/** The scratch blocks above, in whole pages; an arena's buffers start after them. */
const SCRATCH_BYTES = PAGE;
/** Arena buffers start on cache-line boundaries. */
const ALIGN = 64;

let compiled: object | null | undefined;
/** The fused-mean modules, by their inputs' dtypes ("BF16,BF16,F32"). */
const compiledFused = new Map<string, object>();

function compiledModule(): object | null {
  if (compiled !== undefined) return compiled;
  const bytes = moduleBytes();
  compiled = wasm?.validate(bytes) ? new wasm.Module(bytes) : null;
  return compiled;
}

function instantiate(pages: number): Kernel | null {
  const module = compiledModule();
  if (!module || !wasm) return null;
  const memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
  const fns = new wasm.Instance(module, { env: { memory } }).exports as Exports;
  return { fns, buffer: memory.buffer, mem: new Uint8Array(memory.buffer), memory, fused: new Map() };
}

/** The fused means of inputs of these dtypes over the kernel's memory (compiled once per dtype list). */
function fusedMean(k: Kernel, dtypes: readonly ('F32' | 'BF16')[]): FusedExports {
  const key = dtypes.join(',');
  let fns = k.fused.get(key);
  if (fns) return fns;
  let module = compiledFused.get(key);
  if (!module) {
    module = new wasm!.Module(moduleBytes(fusedMeanFunctions(dtypes)));
    compiledFused.set(key, module);
  }
  fns = new wasm!.Instance(module, { env: { memory: k.memory } }).exports as FusedExports;
  k.fused.set(key, fns);
  return fns;
}

/** This thread's kernel for buffers outside any arena: their blocks are copied through its scratch. */
let scratchKernel: Kernel | null | undefined;

function kernel(): Kernel | null {
  if (scratchKernel === undefined) scratchKernel = instantiate(SCRATCH_BYTES / PAGE);
  return scratchKernel;
}

/** Arenas by their memory: a mean whose inputs and output all lie in one runs in place. */
const arenas = new WeakMap<SharedArrayBuffer, Kernel>();

export interface SimdInput {
  bytes: Uint8Array;
  dtype: 'F32' | 'BF16';
}

export function simdAvailable(): boolean {
  return kernel() !== null;
}

/**
 * Buffers of the given byte lengths (zeroed, in shared memory) in a WebAssembly memory of their own,
 * or null where SIMD is missing or they would not fit in wasm32's 2 GiB of signed addresses. A mean
 * whose inputs and output are all buffers of one arena reads and writes them where they are:
 * profile of `btx mix` (4 BF16 experts, 2 cores), copying each block into the kernel's memory and
 * its result out was ~70 of the ~520 ms the main thread spent.
 */
export function simdArena(sizes: readonly number[]): Uint8Array[] | null {
  const offsets: number[] = [];
  let end = SCRATCH_BYTES;
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < 0) throw new Error(`simd arena: bad buffer size ${size}`);
    offsets.push(end);
    end += Math.ceil(size / ALIGN) * ALIGN;
  }
  const pages = Math.ceil(end / PAGE);
  if (!compiledModule() || pages * PAGE >= 2 ** 31) return null;
  const arena = instantiate(pages);
  if (!arena) return null;
  arenas.set(arena.buffer, arena);
  return sizes.map((size, i) => new Uint8Array(arena.buffer, offsets[i], size));
}

/** One block through the kernel's scratch: inputs copied in, the result copied out. */
function copiedBlock(
  k: Kernel,
  inputs: readonly SimdInput[],
  out: Uint8Array,
  outDtype: 'F32' | 'BF16',
  start: number,
  len: number,
): void {
  const { fns, mem } = k;
  const n = inputs.length;
  // Lanes past len compute on stale bytes and are never copied out.
  const lanes = Math.ceil(len / 8) * 8;
  for (let i = 0; i < n; i++) {
    const input = inputs[i]!;
    const size = input.dtype === 'F32' ? 4 : 2;
    const block = input.bytes.subarray(start * size, (start + len) * size);
    if (input.dtype === 'F32') {
      mem.set(block, i === 0 ? ACC : SRC);
      if (i > 0) fns.addF32(ACC, SRC, lanes);
    } else {
      mem.set(block, SRC);
      if (i === 0) fns.setBf16(ACC, SRC, lanes);
      else fns.addBf16(ACC, SRC, lanes);
    }
  }
  if (n > 1) fns.divide(ACC, 0, lanes, n);
  if (outDtype === 'F32') out.set(mem.subarray(ACC, ACC + len * 4), start * 4);
  else {
    fns.toBf16(ACC, DST, lanes);
    out.set(mem.subarray(DST, DST + len * 2), start * 2);
  }
}

/**
 * Elements [from, to) of `out` = the float32 mean of the inputs' elements [from, to), in input order.
 * The caller checks the dtypes and the byte lengths.
 */
export function simdMean(
  inputs: readonly SimdInput[],
  out: Uint8Array,
  outDtype: 'F32' | 'BF16',
  from: number,
  to: number,
): void {
  const scratch = kernel();
  if (!scratch) throw new Error('WebAssembly SIMD is not available');
  const arena = out.buffer instanceof SharedArrayBuffer ? arenas.get(out.buffer) : undefined;
  const inPlace = arena !== undefined && inputs.every((i) => i.bytes.buffer === arena.buffer);
  if (inPlace) {
    // One pass over whole groups of 8, read and written where they are; the few left over copied.
    const whole = Math.floor((to - from) / 8) * 8;
    if (whole > 0) {
      const fns = fusedMean(
        arena,
        inputs.map((i) => i.dtype),
      );
      const at = (i: SimdInput) => i.bytes.byteOffset + from * (i.dtype === 'F32' ? 4 : 2);
      const rest = inputs.slice(1).map(at);
      if (outDtype === 'BF16') fns.toBf16(out.byteOffset + from * 2, at(inputs[0]!), whole, ...rest);
      else fns.toF32(out.byteOffset + from * 4, at(inputs[0]!), whole, ...rest);
    }
    if (whole < to - from) copiedBlock(arena, inputs, out, outDtype, from + whole, to - from - whole);
    return;
  }
  for (let start = from; start < to; start += SIMD_BLOCK)
    copiedBlock(scratch, inputs, out, outDtype, start, Math.min(SIMD_BLOCK, to - start));
}
