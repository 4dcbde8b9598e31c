// Fast f32x4 transcendental functions for the float32 kernels (relative error ~1e-7 for
// exp/sigmoid/erf, ~3e-7 for tanh; ONNX outputs are compared at relative L2 1e-4).
// Scalars go through the same code (`sexp`, `stanh`, `serf`: splat, compute, take lane 0).

// @ts-ignore: decorator
@inline const EXP_HI: f32 = 88.72283;
// @ts-ignore: decorator
@inline const EXP_LO: f32 = -103.972;
// @ts-ignore: decorator
@inline const INF_BITS: u32 = 0x7f800000;

/**
 * e^x, lane-wise (Cephes expf: range reduction by ln 2, degree-6 polynomial). Rounding and the
 * 2^n scale use the 1.5 * 2^23 "magic number" trick (no float->int conversion).
 */
// @ts-ignore: decorator
@inline
export function vexp(x0: v128): v128 {
  let x = f32x4.pmin(f32x4.pmax(x0, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const magic = f32x4.splat(12582912.0);
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), magic);
  const fx = f32x4.sub(t, magic);
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375)));
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(x, x);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), x), f32x4.splat(1.0));
  // bits(t) = bits(magic) + n; scale by 2^(n>>1) * 2^(n - (n>>1)) so that n = 128 and
  // denormal results (n < -126) stay exact
  const n = i32x4.sub(t, magic);
  const h = i32x4.shr_s(n, 1);
  const s1 = i32x4.shl(i32x4.add(h, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(n, h), i32x4.splat(127)), 23);
  y = f32x4.mul(f32x4.mul(y, s1), s2);
  // overflow to +inf, underflow to 0 (NaN passes through the clamps and the polynomial)
  y = v128.bitselect(i32x4.splat(INF_BITS), y, f32x4.gt(x0, f32x4.splat(EXP_HI)));
  return v128.andnot(y, f32x4.lt(x0, f32x4.splat(EXP_LO)));
}

/** e^x for x <= 0 (softmax after subtracting the row max): no overflow handling, one 2^n scale. */
// @ts-ignore: decorator
@inline
export function vexpNonPos(x0: v128): v128 {
  const lo = f32x4.splat(-87.33654);
  let x = f32x4.pmax(x0, lo);
  const magic = f32x4.splat(12582912.0);
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), magic);
  const fx = f32x4.sub(t, magic);
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375)));
  x = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(x, x);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, x), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), x), f32x4.splat(1.0));
  // bits(t) = bits(magic) + n with n in [-126, 0]
  y = f32x4.mul(y, i32x4.shl(i32x4.add(t, i32x4.splat(127 - 0x4b400000)), 23));
  return v128.andnot(y, f32x4.lt(x0, lo));
}

/** 1 / (1 + e^-x) */
// @ts-ignore: decorator
@inline
export function vsigmoid(x: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(x))));
}

/**
 * tanh: the rational approximation of Eigen / MLAS (odd degree-13 over even degree-6 on
 * [-7.9053, 7.9053], where float32 tanh reaches +-1); relative error ~3e-7.
 */
// @ts-ignore: decorator
@inline
export function vtanh(x0: v128): v128 {
  const x = f32x4.pmin(f32x4.pmax(x0, f32x4.splat(-7.90531110763549805)), f32x4.splat(7.90531110763549805));
  const x2 = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(x2, f32x4.splat(-2.76076847742355e-16)), f32x4.splat(2.00018790482477e-13));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-8.60467152213735e-11));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(5.12229709037114e-08));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(1.48572235717979e-05));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(6.37261928875436e-04));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(4.89352455891786e-03));
  p = f32x4.mul(x, p);
  let q = f32x4.add(f32x4.mul(x2, f32x4.splat(1.19825839466702e-06)), f32x4.splat(1.18534705686654e-04));
  q = f32x4.add(f32x4.mul(x2, q), f32x4.splat(2.26843463243900e-03));
  q = f32x4.add(f32x4.mul(x2, q), f32x4.splat(4.89352518554385e-03));
  return f32x4.div(p, q);
}

/**
 * erf: the rational approximation of Eigen (odd degree-13 over even degree-8 on [-4, 4], where
 * float32 erf reaches +-1); relative error ~1e-7.
 */
// @ts-ignore: decorator
@inline
export function verf(x0: v128): v128 {
  const x = f32x4.pmin(f32x4.pmax(x0, f32x4.splat(-4.0)), f32x4.splat(4.0));
  const x2 = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(x2, f32x4.splat(-2.72614225801306e-10)), f32x4.splat(2.77068142495902e-08));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-2.10102402082508e-06));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-5.69250639462346e-05));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-7.34990630326855e-04));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-2.95459980854025e-03));
  p = f32x4.add(f32x4.mul(x2, p), f32x4.splat(-1.60960333262415e-02));
  p = f32x4.mul(x, p);
  let q = f32x4.add(f32x4.mul(x2, f32x4.splat(-1.45660718464996e-05)), f32x4.splat(-2.13374055278905e-04));
  q = f32x4.add(f32x4.mul(x2, q), f32x4.splat(-1.68282697438203e-03));
  q = f32x4.add(f32x4.mul(x2, q), f32x4.splat(-7.37332916720468e-03));
  q = f32x4.add(f32x4.mul(x2, q), f32x4.splat(-1.42647390514189e-02));
  return f32x4.div(p, q);
}

/** Gelu (exact): 0.5 x (1 + erf(x / sqrt 2)). */
// @ts-ignore: decorator
@inline
export function vgelu(x: v128): v128 {
  const e = verf(f32x4.mul(x, f32x4.splat(0.7071067811865476)));
  return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), f32x4.add(e, f32x4.splat(1.0)));
}

/** Gelu (tanh approximation): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
// @ts-ignore: decorator
@inline
export function vgeluTanh(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const u = f32x4.mul(f32x4.add(x, f32x4.mul(x3, f32x4.splat(0.044715))), f32x4.splat(0.7978845608028654));
  return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), f32x4.add(vtanh(u), f32x4.splat(1.0)));
}

export function sexp(x: f32): f32 {
  return f32x4.extract_lane(vexp(f32x4.splat(x)), 0);
}

export function stanh(x: f32): f32 {
  return f32x4.extract_lane(vtanh(f32x4.splat(x)), 0);
}

export function serf(x: f32): f32 {
  return f32x4.extract_lane(verf(f32x4.splat(x)), 0);
}
