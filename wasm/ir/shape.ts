// A tensor shape: element type, lens and strides (in elements). Standard shapes are
// row-major contiguous; views (transposed, broadcast) carry other strides. The executor
// only ever hands kernels standard shapes.
import { dtypeName, dtypeSize } from "./dtype";

export class Shape {
  dtype: i32;
  lens: Array<i32>;
  strides: Array<i32>;

  constructor(dtype: i32, lens: Array<i32>, strides: Array<i32>) {
    this.dtype = dtype;
    this.lens = lens;
    this.strides = strides;
  }

  /** A row-major contiguous shape. */
  static standard(dtype: i32, lens: Array<i32>): Shape {
    return new Shape(dtype, lens.slice(0), standardStrides(lens));
  }

  /** A scalar (rank 0). */
  static scalar(dtype: i32): Shape {
    return new Shape(dtype, new Array<i32>(0), new Array<i32>(0));
  }

  rank(): i32 {
    return this.lens.length;
  }

  elements(): i32 {
    let n: i32 = 1;
    for (let i = 0; i < this.lens.length; i++) n *= unchecked(this.lens[i]);
    return n;
  }

  elementSize(): i32 {
    return dtypeSize(this.dtype);
  }

  /** Bytes of a standard tensor of this shape. */
  bytes(): i32 {
    return this.elements() * dtypeSize(this.dtype);
  }

  isStandard(): bool {
    const s = standardStrides(this.lens);
    for (let i = 0; i < s.length; i++) {
      if (this.lens[i] != 1 && s[i] != this.strides[i]) return false;
    }
    return true;
  }

  equals(o: Shape): bool {
    if (this.dtype != o.dtype || this.lens.length != o.lens.length) return false;
    for (let i = 0; i < this.lens.length; i++) {
      if (this.lens[i] != o.lens[i] || this.strides[i] != o.strides[i]) return false;
    }
    return true;
  }

  sameLens(o: Shape): bool {
    if (this.lens.length != o.lens.length) return false;
    for (let i = 0; i < this.lens.length; i++) if (this.lens[i] != o.lens[i]) return false;
    return true;
  }

  withDtype(dt: i32): Shape {
    return Shape.standard(dt, this.lens);
  }

  /** "float32[1,3,224,224]" */
  toString(): string {
    let s = dtypeName(this.dtype) + "[";
    for (let i = 0; i < this.lens.length; i++) {
      if (i > 0) s += ",";
      s += this.lens[i].toString();
    }
    return s + "]";
  }
}

export function standardStrides(lens: Array<i32>): Array<i32> {
  const n = lens.length;
  const s = new Array<i32>(n);
  let acc: i32 = 1;
  for (let i = n - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= lens[i];
  }
  return s;
}

/** Numpy-style broadcast of two lens; null when incompatible. */
export function broadcastLens(a: Array<i32>, b: Array<i32>): Array<i32> | null {
  const n = a.length > b.length ? a.length : b.length;
  const out = new Array<i32>(n);
  for (let i = 0; i < n; i++) {
    const ai = i - (n - a.length);
    const bi = i - (n - b.length);
    const x: i32 = ai >= 0 ? a[ai] : 1;
    const y: i32 = bi >= 0 ? b[bi] : 1;
    if (x == y || y == 1) out[i] = x;
    else if (x == 1) out[i] = y;
    else return null;
  }
  return out;
}
