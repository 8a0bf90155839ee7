// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__: {string: string}}, then
// the tensors' bytes. The reader reads only the header, then one tensor (or a slice of one) by file
// offset; the writer takes every tensor's name, dtype and shape up front, so it can write the header
// first and then stream the bytes in order, hashing them as they go.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';

if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');

/** Float dtypes we read and write; values are always float32 in memory. */
export type FloatDType = 'F32' | 'F16' | 'BF16';
/** Every dtype the reader accepts (integers and bools pass through as bytes). */
export type SafetensorsDType = FloatDType | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isFloatDType(dtype: string): dtype is FloatDType {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/** The safetensors library refuses headers above 100 MB; so do we (a corrupt length is usually huge). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** File offset of the data section (8 + header length). */
  dataStart: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'SafetensorsError';
  }
}

export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensorByteLength(dtype: SafetensorsDType, shape: readonly number[]): number {
  return numElements(shape) * DTYPE_BYTES[dtype];
}

// ---------------------------------------------------------------------------------------------
// Float conversions. Scalar versions are the reference; the array versions do the same per element.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 -> IEEE half bits, round to nearest even, subnormals, overflow to inf, NaN stays NaN. */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16Bits(scratchU32[0]!);
}

export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Below 2^-25 (half the smallest subnormal) everything rounds to zero.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and out of the largest exponent gives inf: both right.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  return f32BitsToBf16Bits(scratchU32[0]!);
}

export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * IEEE half bits -> float32 bits by integer shifts (no table, no float arithmetic): exact for every
 * half, NaN payloads and signs kept. Normal halves only rebias the exponent; subnormals are
 * normalised by their leading bit.
 */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return (sign | 0x7f800000 | ((em & 0x3ff) << 13)) >>> 0;
  // Normal: exponent + (127 - 15), mantissa shifted into place (112 << 23 = 0x38000000).
  if (em >= 0x0400) return (sign | ((em << 13) + 0x38000000)) >>> 0;
  if (em === 0) return sign >>> 0;
  // Subnormal m * 2^-24 with the leading bit at p: 1.f * 2^(p-24), biased exponent 103 + p.
  const p = 31 - Math.clz32(em);
  return (sign | ((103 + p) << 23) | (((em << (10 - p)) & 0x3ff) << 13)) >>> 0;
}

/** A view of `bytes` as the typed array `T`, copying only when the offset is misaligned. */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/** Encode float32 values as little-endian bytes of `dtype`. */
export function encodeFloats(values: Float32Array, dtype: FloatDType, into?: Uint8Array): Uint8Array {
  const src = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const bytes = values.length * DTYPE_BYTES[dtype];
  if (into && (into.byteLength < bytes || into.byteOffset % 2 !== 0)) {
    throw new Error(`encodeFloats: output buffer of ${into.byteLength} bytes cannot hold ${bytes}`);
  }
  if (dtype === 'F32') {
    const out = into ? into.subarray(0, bytes) : new Uint8Array(bytes);
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return out;
  }
  const out = into
    ? new Uint16Array(into.buffer, into.byteOffset, values.length)
    : new Uint16Array(values.length);
  if (dtype === 'BF16') for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(src[i]!);
  else for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(src[i]!);
  return new Uint8Array(out.buffer, out.byteOffset, bytes);
}

/**
 * Decode little-endian bytes of a float dtype (or an integer/bool dtype, numerically) to float32,
 * into the front of `into` when given (streaming callers reuse one), else a new array.
 */
export function decodeToFloat32(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  into?: Float32Array,
): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} values`);
  }
  const n = bytes.byteLength / size;
  const src = aligned(bytes, size);
  if (into && into.length < n) throw new Error(`decode: ${n} values do not fit in ${into.length}`);
  const out = into ? into.subarray(0, n) : new Float32Array(n);
  switch (dtype) {
    case 'F32':
      out.set(new Float32Array(src.buffer, src.byteOffset, n));
      break;
    case 'BF16': {
      const h = new Uint16Array(src.buffer, src.byteOffset, n);
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = h[i]! << 16;
      break;
    }
    case 'F16': {
      const h = new Uint16Array(src.buffer, src.byteOffset, n);
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = f16BitsToF32Bits(h[i]!);
      break;
    }
    case 'F64':
      out.set(new Float64Array(src.buffer, src.byteOffset, n));
      break;
    case 'I64': {
      const v = new BigInt64Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]!);
      break;
    }
    case 'I32':
      out.set(new Int32Array(src.buffer, src.byteOffset, n));
      break;
    case 'I16':
      out.set(new Int16Array(src.buffer, src.byteOffset, n));
      break;
    case 'I8':
      out.set(new Int8Array(src.buffer, src.byteOffset, n));
      break;
    case 'U8':
    case 'BOOL':
      out.set(src);
      break;
  }
  return out;
}

/**
 * sum[i] += value i of `bytes` (a float dtype), with float32 rounding: the mix's inner loop, fused so
 * no decoded copy is allocated per input.
 */
export function addFloatsInto(sum: Float32Array, bytes: Uint8Array, dtype: FloatDType): void {
  const n = sum.length;
  if (bytes.byteLength !== n * DTYPE_BYTES[dtype]) {
    throw new Error(`${bytes.byteLength} bytes of ${dtype} do not hold ${n} values`);
  }
  const src = aligned(bytes, DTYPE_BYTES[dtype]);
  if (dtype === 'F32') {
    const v = new Float32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) sum[i] += v[i]!;
    return;
  }
  const h = new Uint16Array(src.buffer, src.byteOffset, n);
  const bits = new Uint32Array(1);
  const value = new Float32Array(bits.buffer);
  if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) {
      bits[0] = h[i]! << 16;
      sum[i] += value[0]!;
    }
  } else {
    for (let i = 0; i < n; i++) {
      bits[0] = f16BitsToF32Bits(h[i]!);
      sum[i] += value[0]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Header

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and check a header JSON against the size of the data section that follows it. */
export function parseHeader(
  file: string,
  json: string,
  dataStart: number,
  fileSize: number,
): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(file, 'header is not a JSON object');
  }
  const dataSize = fileSize - dataStart;
  const tensors: TensorInfo[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      }
      metadata = {};
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof e !== 'object' || e === null)
      throw new SafetensorsError(file, `tensor ${name}: not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) {
      throw new SafetensorsError(file, `tensor ${name}: unsupported dtype ${JSON.stringify(e.dtype)}`);
    }
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegativeInteger)) {
      throw new SafetensorsError(file, `tensor ${name}: shape must be an array of non-negative integers`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      throw new SafetensorsError(file, `tensor ${name}: data_offsets must be [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const shape = e.shape as number[];
    const expected = tensorByteLength(dtype, shape);
    if (end < begin || end - begin !== expected) {
      throw new SafetensorsError(
        file,
        `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ${dtype}${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    if (end > dataSize) {
      throw new SafetensorsError(
        file,
        `tensor ${name}: data ends at byte ${end} of the data section but the file has only ${dataSize} (truncated?)`,
      );
    }
    tensors.push({ name, dtype, shape, begin, end });
  }
  return { tensors, metadata, dataStart };
}

// ---------------------------------------------------------------------------------------------
// Reader

/** Reads a safetensors file lazily: the header on open, then tensors (or slices) by offset. */
export class SafetensorsReader {
  private readonly byName: Map<string, TensorInfo>;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
    readonly fileSize: number,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size < 8) {
        throw new SafetensorsError(path, `truncated: ${size} bytes, too short for the 8-byte header length`);
      }
      const lenBuf = Buffer.alloc(8);
      await readFully(handle, lenBuf, 0, path);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(
          path,
          `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt?)`,
        );
      }
      const n = Number(headerLen);
      if (8 + n > size) {
        throw new SafetensorsError(
          path,
          `truncated: header length ${n} but only ${size - 8} bytes follow it`,
        );
      }
      const headerBuf = Buffer.alloc(n);
      await readFully(handle, headerBuf, 8, path);
      const header = parseHeader(path, headerBuf.toString('utf8'), 8 + n, size);
      return new SafetensorsReader(path, handle, header, size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  get tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named ${name}`);
    return t;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /**
   * Raw little-endian bytes of elements [start, start+count) of a tensor (default: all of it),
   * read into `into` when given (large enough, reused by streaming callers), else a new buffer.
   */
  async readBytes(name: string, start = 0, count?: number, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    const size = DTYPE_BYTES[t.dtype];
    const total = (t.end - t.begin) / size;
    const n = count ?? total - start;
    if (start < 0 || n < 0 || start + n > total) {
      throw new SafetensorsError(
        this.path,
        `tensor ${name}: elements [${start}, ${start + n}) out of range 0..${total}`,
      );
    }
    if (into && into.byteLength < n * size) {
      throw new SafetensorsError(
        this.path,
        `tensor ${name}: buffer of ${into.byteLength} bytes < ${n * size}`,
      );
    }
    // allocUnsafeSlow: an ArrayBuffer of its own, offset 0, so typed views over it are aligned.
    const buf = into ? into.subarray(0, n * size) : Buffer.allocUnsafeSlow(n * size);
    await readFully(this.handle, buf, this.header.dataStart + t.begin + start * size, this.path);
    return buf;
  }

  /** A tensor (or a slice of its elements) as float32. */
  async readFloat32(name: string, start = 0, count?: number): Promise<Float32Array> {
    return decodeToFloat32(await this.readBytes(name, start, count), this.info(name).dtype);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

async function readFully(handle: FileHandle, buf: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await handle.read(buf, done, buf.byteLength - done, position + done);
    if (bytesRead === 0)
      throw new SafetensorsError(path, `unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

export interface WrittenFile {
  path: string;
  bytes: number;
  sha256: string;
}

/** Header bytes (length prefix included) for tensors laid out in the given order. */
export function buildHeader(specs: readonly TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const s of specs) {
    if (s.name === '__metadata__' || s.name in header)
      throw new Error(`duplicate or reserved tensor name ${s.name}`);
    const len = tensorByteLength(s.dtype, s.shape);
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const jsonLen = Buffer.byteLength(json);
  json += ' '.repeat((8 - ((8 + jsonLen) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(out, 8);
  return out;
}

/**
 * Each of the writer's two staging buffers; one fills while the other is being written. They only
 * gather chunks under DIRECT_BYTES (headers, norms, routers), so 1 MB does: at 8 MB, allocating and
 * zeroing 16 MB per shard file was ~1% of `btx mix`'s CPU samples (perf: memset), plus its page faults.
 */
const STAGING_BYTES = 1024 * 1024;
/**
 * Chunks at least this long skip the staging buffers: they are hashed and written at their file
 * offset from the caller's own buffer, and the write call returns once both are done. Profile of
 * `btx mix` (4 BF16 experts, 2 cores): copying its slices into staging took 80 of the main thread's
 * ~520 ms.
 */
const DIRECT_BYTES = 256 * 1024;
/** Written bytes between background datasyncs (see syncBehind). */
const SYNC_BEHIND_BYTES = 8 * 1024 * 1024;

/**
 * The sha256 of a file's bytes, fed in order. `update` resolves once the hasher is done with the
 * bytes (the writer reuses the buffer after that), so a hasher may work on another thread: the mix
 * hashes on a worker while this thread writes and fills the next buffer. The writer's own buffers
 * (staging, encoded floats) are backed by a SharedArrayBuffer, so no copy crosses threads; a large
 * chunk is handed over in the caller's buffer as it is (the mix's are shared too).
 */
export interface ChunkHasher {
  update(bytes: Uint8Array): Promise<void>;
  digest(): Promise<string>;
}

/** The default hasher: node:crypto on this thread. */
export function localHasher(): ChunkHasher {
  const hash = createHash('sha256');
  return {
    update: (bytes) => {
      hash.update(bytes);
      return Promise.resolve();
    },
    digest: () => Promise.resolve(hash.digest('hex')),
  };
}

export interface WriterOptions {
  metadata?: Record<string, string>;
  /** Default: {@link localHasher}. */
  hasher?: ChunkHasher;
}

/**
 * Streams one safetensors file: the header is written on create, then every tensor's bytes in the
 * declared order (whole, or in consecutive chunks). close() checks that every byte came, fsyncs and
 * returns the file's sha256, computed on the way out so nobody re-reads it. Small chunks are copied
 * into one of two staging buffers; a full one is written (and hashed) while the caller fills the
 * other. Large ones (DIRECT_BYTES) are written where they are. Either way the caller may reuse its
 * arrays as soon as a write call returns.
 */
export class SafetensorsWriter {
  private index = 0;
  private writtenInTensor = 0;
  private position = 0;
  private readonly staging: Buffer[];
  private active = 0;
  private fill = 0;
  private inflight: Promise<void> = Promise.resolve();
  /** A datasync started while writing (syncBehind), or undefined. */
  private syncing: Promise<void> | undefined;
  /** The first background datasync's failure, thrown by close(): a later fsync may not report it. */
  private syncFailure: unknown;
  /** Bytes handed to writes when the last datasync started. */
  private syncStartedAt = 0;
  private encodeScratch: Uint8Array | undefined;
  private readonly lengths: number[];

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly specs: readonly TensorSpec[],
    headerBytes: number,
    private readonly hasher: ChunkHasher,
  ) {
    this.lengths = specs.map((s) => tensorByteLength(s.dtype, s.shape));
    const size = Math.min(STAGING_BYTES, headerBytes + this.lengths.reduce((a, b) => a + b, 0));
    // Shared memory, so a hasher on another thread reads the bytes where they are.
    this.staging = [0, 1].map(() => Buffer.from(new SharedArrayBuffer(size)));
  }

  static async create(
    path: string,
    specs: readonly TensorSpec[],
    opts: WriterOptions = {},
  ): Promise<SafetensorsWriter> {
    const header = buildHeader(specs, opts.metadata);
    const handle = await open(path, 'w');
    const writer = new SafetensorsWriter(
      path,
      handle,
      specs,
      header.byteLength,
      opts.hasher ?? localHasher(),
    );
    await writer.stage(header);
    writer.skipEmpty();
    return writer;
  }

  /** The tensor whose bytes come next, or undefined when all are written. */
  get next(): TensorSpec | undefined {
    return this.specs[this.index];
  }

  /** Append raw little-endian bytes of `name` (the whole tensor or its next chunk). */
  async writeBytes(name: string, bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength === 0) return;
    const spec = this.specs[this.index];
    if (!spec || spec.name !== name) {
      throw new SafetensorsError(
        this.path,
        `tensor ${name} written out of order; expected ${spec?.name ?? 'no more tensors'}`,
      );
    }
    const remaining = this.lengths[this.index]! - this.writtenInTensor;
    if (bytes.byteLength > remaining) {
      throw new SafetensorsError(
        this.path,
        `tensor ${name}: ${bytes.byteLength} bytes given, only ${remaining} left`,
      );
    }
    await this.push(bytes);
    this.writtenInTensor += bytes.byteLength;
    if (this.writtenInTensor === this.lengths[this.index]) {
      this.index++;
      this.writtenInTensor = 0;
      this.skipEmpty();
    }
  }

  /** Zero-length tensors have nothing to write; step over them. */
  private skipEmpty(): void {
    while (this.index < this.specs.length && this.lengths[this.index] === 0) this.index++;
  }

  /** Append float32 values of `name`, encoded to the tensor's declared float dtype. */
  async writeFloat32(name: string, values: Float32Array): Promise<void> {
    const spec = this.specs[this.index];
    if (spec && spec.name === name && !isFloatDType(spec.dtype)) {
      throw new SafetensorsError(
        this.path,
        `tensor ${name} is ${spec.dtype}; write its bytes with writeBytes`,
      );
    }
    const dtype = (spec?.dtype ?? 'F32') as FloatDType;
    const bytes = values.length * DTYPE_BYTES[dtype];
    // One encode buffer per writer, reused: writeBytes has copied it out when it returns.
    if (!this.encodeScratch || this.encodeScratch.byteLength < bytes) {
      const size = Math.max(bytes, this.encodeScratch?.byteLength ?? 0);
      this.encodeScratch = new Uint8Array(new SharedArrayBuffer(size));
    }
    await this.writeBytes(name, encodeFloats(values, dtype, this.encodeScratch));
  }

  private async push(bytes: Uint8Array): Promise<void> {
    if (bytes.byteLength >= DIRECT_BYTES) {
      // The staged bytes go first (flush hands them to the hasher before it returns), so the hasher
      // still sees the file in order; the two writes may then run at once, at their own offsets.
      await this.flush();
      const position = this.position;
      this.position += bytes.byteLength;
      await Promise.all([this.hasher.update(bytes), writeFully(this.handle, bytes, position)]);
      this.syncBehind();
      return;
    }
    await this.stage(bytes);
  }

  /** Copy bytes into the staging buffers, writing each one out as it fills. */
  private async stage(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.byteLength) {
      const buf = this.staging[this.active]!;
      const n = Math.min(buf.length - this.fill, bytes.byteLength - offset);
      buf.set(bytes.subarray(offset, offset + n), this.fill);
      this.fill += n;
      offset += n;
      if (this.fill === buf.length) await this.flush();
    }
  }

  /** Start writing the active buffer and switch to the other, once its earlier write is done. */
  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    const bytes = this.staging[this.active]!.subarray(0, this.fill);
    const position = this.position;
    this.position += this.fill;
    await this.inflight;
    // Hashing and writing the same buffer at once; the buffer is free again when both are done.
    const write = Promise.all([this.hasher.update(bytes), writeFully(this.handle, bytes, position)]).then(
      () => this.syncBehind(),
    );
    write.catch(() => undefined); // surfaced by the next await of inflight
    this.inflight = write;
    this.active ^= 1;
    this.fill = 0;
  }

  /**
   * Once SYNC_BEHIND_BYTES more have been written, a datasync starts in the background (one at a
   * time), so the disk takes the file as it comes and close()'s fsync has only the tail left: `btx mix`
   * (4 BF16 experts) waited 35-65 ms at the end for its last 14 MB shard to reach the disk.
   */
  private syncBehind(): void {
    if (this.syncing || this.position - this.syncStartedAt < SYNC_BEHIND_BYTES) return;
    this.syncStartedAt = this.position;
    const sync: Promise<void> = this.handle
      .datasync()
      .catch((err: unknown) => {
        this.syncFailure ??= err;
      })
      .finally(() => {
        if (this.syncing === sync) this.syncing = undefined;
      });
    this.syncing = sync;
  }

  async close(): Promise<WrittenFile> {
    try {
      if (this.index < this.specs.length) {
        throw new SafetensorsError(
          this.path,
          `closed before tensor ${this.specs[this.index]!.name} was written`,
        );
      }
      await this.flush();
      await this.inflight;
      await this.syncing;
      if (this.syncFailure !== undefined) throw this.syncFailure;
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
    return { path: this.path, bytes: this.position, sha256: await this.hasher.digest() };
  }

  /** Close without the completeness check (error paths); the caller deletes the file. */
  async abort(): Promise<void> {
    await this.inflight.catch(() => undefined);
    await this.syncing;
    await this.handle.close().catch(() => undefined);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Write a whole safetensors file from in-memory float32 tensors. */
export async function writeSafetensors(
  path: string,
  tensors: readonly { name: string; shape: number[]; data: Float32Array }[],
  dtype: FloatDType = 'F32',
  metadata?: Record<string, string>,
): Promise<WrittenFile> {
  const writer = await SafetensorsWriter.create(
    path,
    tensors.map((t) => ({ name: t.name, dtype, shape: t.shape })),
    metadata ? { metadata } : {},
  );
  try {
    for (const t of tensors) {
      if (t.data.length !== numElements(t.shape)) {
        throw new SafetensorsError(
          path,
          `tensor ${t.name}: ${t.data.length} values for shape ${JSON.stringify(t.shape)}`,
        );
      }
      if (t.data.length > 0) await writer.writeFloat32(t.name, t.data);
    }
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.close();
}

/** Read every tensor of a safetensors file as float32. */
export async function readSafetensors(path: string): Promise<{
  tensors: { name: string; dtype: SafetensorsDType; shape: number[]; data: Float32Array }[];
  metadata: Record<string, string>;
}> {
  const reader = await SafetensorsReader.open(path);
  try {
    const tensors = [];
    for (const t of reader.tensors) {
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await reader.readFloat32(t.name) });
    }
    return { tensors, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}
