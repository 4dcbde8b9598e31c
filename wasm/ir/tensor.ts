// A tensor at compute time: a standard shape and a pointer into linear memory.
// The element accessors convert between types; they are for shape arithmetic, folding
// and small ops. Hot kernels use raw load/store on `ptr`.
import {
  bf16ToF32, DT_BFLOAT16, DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_FLOAT16, DT_INT16, DT_INT32,
  DT_INT64, DT_INT8, DT_UINT16, DT_UINT32, DT_UINT64, DT_UINT8, f16ToF32, f32ToBf16, f32ToF16,
} from "./dtype";
import { Shape } from "./shape";

export class Tensor {
  shape: Shape;
  ptr: usize;

  constructor(shape: Shape, ptr: usize) {
    this.shape = shape;
    this.ptr = ptr;
  }

  /** A new zero-filled tensor owned by the caller (free with `heap.free(ptr)`). */
  static alloc(shape: Shape): Tensor {
    const n = <usize>shape.bytes();
    const p = heap.alloc(n > 0 ? n : 1);
    memory.fill(p, 0, n);
    return new Tensor(shape, p);
  }

  elements(): i32 {
    return this.shape.elements();
  }

  dtype(): i32 {
    return this.shape.dtype;
  }

  getAsF64(i: i32): f64 {
    const p = this.ptr;
    switch (this.shape.dtype) {
      case DT_FLOAT: return <f64>load<f32>(p + (<usize>i << 2));
      case DT_DOUBLE: return load<f64>(p + (<usize>i << 3));
      case DT_FLOAT16: return <f64>f16ToF32(load<u16>(p + (<usize>i << 1)));
      case DT_BFLOAT16: return <f64>bf16ToF32(load<u16>(p + (<usize>i << 1)));
      case DT_INT8: return <f64>load<i8>(p + <usize>i);
      case DT_UINT8: return <f64>load<u8>(p + <usize>i);
      case DT_BOOL: return <f64>load<u8>(p + <usize>i);
      case DT_INT16: return <f64>load<i16>(p + (<usize>i << 1));
      case DT_UINT16: return <f64>load<u16>(p + (<usize>i << 1));
      case DT_INT32: return <f64>load<i32>(p + (<usize>i << 2));
      case DT_UINT32: return <f64>load<u32>(p + (<usize>i << 2));
      case DT_INT64: return <f64>load<i64>(p + (<usize>i << 3));
      case DT_UINT64: return <f64>load<u64>(p + (<usize>i << 3));
      default: return 0;
    }
  }

  getAsI64(i: i32): i64 {
    const p = this.ptr;
    switch (this.shape.dtype) {
      case DT_INT64: return load<i64>(p + (<usize>i << 3));
      case DT_UINT64: return <i64>load<u64>(p + (<usize>i << 3));
      case DT_INT32: return <i64>load<i32>(p + (<usize>i << 2));
      case DT_UINT32: return <i64>load<u32>(p + (<usize>i << 2));
      case DT_INT16: return <i64>load<i16>(p + (<usize>i << 1));
      case DT_UINT16: return <i64>load<u16>(p + (<usize>i << 1));
      case DT_INT8: return <i64>load<i8>(p + <usize>i);
      case DT_UINT8: return <i64>load<u8>(p + <usize>i);
      case DT_BOOL: return <i64>load<u8>(p + <usize>i);
      default: return <i64>this.getAsF64(i);
    }
  }

  setFromF64(i: i32, v: f64): void {
    const p = this.ptr;
    switch (this.shape.dtype) {
      case DT_FLOAT: store<f32>(p + (<usize>i << 2), <f32>v); break;
      case DT_DOUBLE: store<f64>(p + (<usize>i << 3), v); break;
      case DT_FLOAT16: store<u16>(p + (<usize>i << 1), f32ToF16(<f32>v)); break;
      case DT_BFLOAT16: store<u16>(p + (<usize>i << 1), f32ToBf16(<f32>v)); break;
      case DT_BOOL: store<u8>(p + <usize>i, v != 0 ? 1 : 0); break;
      default: this.setFromI64(i, isFinite(v) ? <i64>v : 0);
    }
  }

  setFromI64(i: i32, v: i64): void {
    const p = this.ptr;
    switch (this.shape.dtype) {
      case DT_INT64: store<i64>(p + (<usize>i << 3), v); break;
      case DT_UINT64: store<u64>(p + (<usize>i << 3), <u64>v); break;
      case DT_INT32: store<i32>(p + (<usize>i << 2), <i32>v); break;
      case DT_UINT32: store<u32>(p + (<usize>i << 2), <u32>v); break;
      case DT_INT16: store<i16>(p + (<usize>i << 1), <i16>v); break;
      case DT_UINT16: store<u16>(p + (<usize>i << 1), <u16>v); break;
      case DT_INT8: store<i8>(p + <usize>i, <i8>v); break;
      case DT_UINT8: store<u8>(p + <usize>i, <u8>v); break;
      case DT_BOOL: store<u8>(p + <usize>i, v != 0 ? 1 : 0); break;
      default: this.setFromF64(i, <f64>v);
    }
  }

  /** All elements as i64 (for shape-like inputs). */
  toI64Array(): Array<i64> {
    const n = this.elements();
    const a = new Array<i64>(n);
    for (let i = 0; i < n; i++) a[i] = this.getAsI64(i);
    return a;
  }
}
