// Element types. The numbering is ONNX's TensorProto.DataType, so the host passes
// ONNX codes through unchanged.

export const DT_UNDEFINED: i32 = 0;
export const DT_FLOAT: i32 = 1;
export const DT_UINT8: i32 = 2;
export const DT_INT8: i32 = 3;
export const DT_UINT16: i32 = 4;
export const DT_INT16: i32 = 5;
export const DT_INT32: i32 = 6;
export const DT_INT64: i32 = 7;
export const DT_STRING: i32 = 8;
export const DT_BOOL: i32 = 9;
export const DT_FLOAT16: i32 = 10;
export const DT_DOUBLE: i32 = 11;
export const DT_UINT32: i32 = 12;
export const DT_UINT64: i32 = 13;
export const DT_BFLOAT16: i32 = 16;

/** Bytes per element; 0 for types kiln does not store (string, undefined). */
export function dtypeSize(dt: i32): i32 {
  switch (dt) {
    case DT_FLOAT: return 4;
    case DT_UINT8: return 1;
    case DT_INT8: return 1;
    case DT_UINT16: return 2;
    case DT_INT16: return 2;
    case DT_INT32: return 4;
    case DT_INT64: return 8;
    case DT_BOOL: return 1;
    case DT_FLOAT16: return 2;
    case DT_DOUBLE: return 8;
    case DT_UINT32: return 4;
    case DT_UINT64: return 8;
    case DT_BFLOAT16: return 2;
    default: return 0;
  }
}

export function dtypeName(dt: i32): string {
  switch (dt) {
    case DT_FLOAT: return "float32";
    case DT_UINT8: return "uint8";
    case DT_INT8: return "int8";
    case DT_UINT16: return "uint16";
    case DT_INT16: return "int16";
    case DT_INT32: return "int32";
    case DT_INT64: return "int64";
    case DT_STRING: return "string";
    case DT_BOOL: return "bool";
    case DT_FLOAT16: return "float16";
    case DT_DOUBLE: return "float64";
    case DT_UINT32: return "uint32";
    case DT_UINT64: return "uint64";
    case DT_BFLOAT16: return "bfloat16";
    default: return "dtype(" + dt.toString() + ")";
  }
}

export function isFloat(dt: i32): bool {
  return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16;
}

export function isInteger(dt: i32): bool {
  return dt == DT_UINT8 || dt == DT_INT8 || dt == DT_UINT16 || dt == DT_INT16 ||
    dt == DT_INT32 || dt == DT_INT64 || dt == DT_UINT32 || dt == DT_UINT64;
}

export function isSupported(dt: i32): bool {
  return dtypeSize(dt) > 0;
}

// ---- half-precision conversions (IEEE binary16 and bfloat16) ----

export function f16ToF32(h: u16): f32 {
  const s: u32 = (<u32>h & 0x8000) << 16;
  const e: u32 = (<u32>h >> 10) & 0x1f;
  const m: u32 = <u32>h & 0x3ff;
  if (e == 0) {
    if (m == 0) return reinterpret<f32>(s);
    // subnormal: m * 2^-24
    const v: f32 = <f32>m * 5.9604644775390625e-8;
    return s != 0 ? -v : v;
  }
  if (e == 31) return reinterpret<f32>(s | 0x7f800000 | (m << 13));
  return reinterpret<f32>(s | ((e + 112) << 23) | (m << 13));
}

export function f32ToF16(f: f32): u16 {
  const x: u32 = reinterpret<u32>(f);
  const s: u32 = (x >> 16) & 0x8000;
  const e: i32 = <i32>((x >> 23) & 0xff);
  let m: u32 = x & 0x7fffff;
  if (e == 255) return <u16>(s | 0x7c00 | (m != 0 ? 0x200 : 0));
  let ne: i32 = e - 112;
  if (ne >= 31) return <u16>(s | 0x7c00);
  if (ne <= 0) {
    if (ne < -10) return <u16>s;
    m = m | 0x800000;
    const shift: u32 = <u32>(14 - ne);
    let hm: u32 = m >> shift;
    const rem: u32 = m & ((1 << shift) - 1);
    const half: u32 = 1 << (shift - 1);
    if (rem > half || (rem == half && (hm & 1) != 0)) hm++;
    return <u16>(s | hm);
  }
  let hm: u32 = m >> 13;
  const rem: u32 = m & 0x1fff;
  let r: u32 = s | (<u32>ne << 10) | hm;
  if (rem > 0x1000 || (rem == 0x1000 && (hm & 1) != 0)) r++;
  return <u16>r;
}

export function bf16ToF32(h: u16): f32 {
  return reinterpret<f32>(<u32>h << 16);
}

export function f32ToBf16(f: f32): u16 {
  const x: u32 = reinterpret<u32>(f);
  if ((x & 0x7fffffff) > 0x7f800000) return <u16>((x >> 16) | 0x40);
  const r: u32 = x + 0x7fff + ((x >> 16) & 1);
  return <u16>(r >> 16);
}
