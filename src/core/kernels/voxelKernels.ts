/**
 * SIMD kernels (WebAssembly, voxels.wat) for the passes over every voxel of a 16-bit volume:
 * value range with padding excluded, and adding an intercept in place. Runs are copied into the
 * module's memory in chunks, worked on, and (for in-place work) copied back; a copy costs far
 * less than the scalar loop it replaces. Where WebAssembly SIMD is missing, `null` is returned
 * and callers use their scalar code.
 */
import { VOXELS_WASM_BASE64 } from './voxels.wasm.js';

const CHUNK = 128 * 1024; // voxels per call
const DATA = 64; // byte offset of the data in the module's memory

interface Kernel {
  i16: Int16Array;
  u16: Uint16Array;
  out: Int32Array;
  range16: (n: number, lo: number, hi: number, flip: number) => void;
  add16: (n: number, add: number, lo: number, hi: number, pad: number, flip: number) => void;
}

let kernel: Kernel | null | undefined;

function load(): Kernel | null {
  if (kernel !== undefined) return kernel;
  try {
    const bytes = Uint8Array.from(atob(VOXELS_WASM_BASE64), (c) => c.charCodeAt(0));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const memory = instance.exports.memory as WebAssembly.Memory;
    const need = DATA + CHUNK * 2;
    if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
    kernel = {
      i16: new Int16Array(memory.buffer, DATA, CHUNK),
      u16: new Uint16Array(memory.buffer, DATA, CHUNK),
      out: new Int32Array(memory.buffer, 0, 3),
      range16: instance.exports.range_16 as Kernel['range16'],
      add16: instance.exports.add_16 as Kernel['add16'],
    };
  } catch {
    kernel = null;
  }
  return kernel;
}

const toSigned16 = (v: number): number => (v << 16) >> 16;

/** Padding range in the kernel's signed (flipped) terms; [1, 0] (empty) when none applies. */
function kernelPadding(padding: readonly [number, number] | undefined, unsigned: boolean): [number, number] {
  if (!padding) return [1, 0];
  const [rangeLo, rangeHi] = unsigned ? [0, 65535] : [-32768, 32767];
  const lo = Math.max(Math.ceil(padding[0]), rangeLo);
  const hi = Math.min(Math.floor(padding[1]), rangeHi);
  if (lo > hi) return [1, 0];
  return unsigned ? [toSigned16(lo ^ 0x8000), toSigned16(hi ^ 0x8000)] : [lo, hi];
}

/**
 * Range of `data[start .. start + count)` outside the padding range, and the padding count;
 * min and max are NaN when every value is padding. Null when the kernel is not available.
 */
export function range16(
  data: Int16Array | Uint16Array,
  start: number,
  count: number,
  padding?: readonly [number, number],
): { min: number; max: number; paddingCount: number } | null {
  const k = load();
  if (!k) return null;
  const unsigned = data instanceof Uint16Array;
  const [lo, hi] = kernelPadding(padding, unsigned);
  const flip = unsigned ? 0x8000 : 0;
  let min = Infinity;
  let max = -Infinity;
  let paddingCount = 0;
  for (let s = start, end = start + count; s < end; s += CHUNK) {
    const n = Math.min(CHUNK, end - s);
    (unsigned ? k.u16 : k.i16).set(data.subarray(s, s + n) as never);
    k.range16(n, lo, hi, flip);
    paddingCount += k.out[2];
    if (k.out[2] === n) continue;
    const a = unsigned ? k.out[0] + 32768 : k.out[0];
    const b = unsigned ? k.out[1] + 32768 : k.out[1];
    if (a < min) min = a;
    if (b > max) max = b;
  }
  return min <= max ? { min, max, paddingCount } : { min: NaN, max: NaN, paddingCount };
}

/**
 * In place over the bytes of `data[start .. start + count)`: each 16-bit value v becomes
 * v + add (wrapping, so the caller must know the results fit the target 16-bit type), and
 * values in the padding range become `pad`. `unsigned` says how to compare with the padding.
 * Returns false when the kernel is not available.
 */
export function add16InPlace(
  data: Int16Array | Uint16Array,
  start: number,
  count: number,
  add: number,
  unsigned: boolean,
  padding: readonly [number, number] | undefined,
  pad: number,
): boolean {
  const k = load();
  if (!k) return false;
  const [lo, hi] = kernelPadding(padding, unsigned);
  const flip = unsigned ? 0x8000 : 0;
  const words = new Uint16Array(data.buffer, data.byteOffset, data.length);
  for (let s = start, end = start + count; s < end; s += CHUNK) {
    const n = Math.min(CHUNK, end - s);
    k.u16.set(words.subarray(s, s + n));
    k.add16(n, toSigned16(add), lo, hi, toSigned16(pad), flip);
    words.set(k.u16.subarray(0, n), s);
  }
  return true;
}
