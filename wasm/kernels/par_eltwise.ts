// Elementwise float32 kernels split over the threads (threads.ts) when large: unary ops by
// element ranges, binary ops by element ranges (one row) or by rows (broadcast rows, their
// offsets computed on the main instance first), softmax by rows, per-channel affine
// (BatchNormalization) by planes. Each element is computed exactly as on one
// thread. Task code reads only linear memory.
import { binRowF32, selRowU32 } from "./eltwise";
import { unaryF32, unaryTestF32 } from "../ops/math/unary";
import { softmaxRowF32 } from "./reduce";
import { layerNormRowF32 } from "../ops/norm";
import {
  parallelFor, perTask, slotScratch, taskArgs, TASK_AFFINE_PLANES, TASK_BINARY_ROWS, TASK_FUSED, TASK_LAYERNORM,
  TASK_SOFTMAX, TASK_UNARY, TASK_UNARY_TEST, TASK_WHERE, threadCount,
} from "./threads";

/** Below this many elements an elementwise op runs on one thread. */
const PAR_MIN_ELEMENTS: i32 = 1 << 16;

/** Tasks for `n` elements on `nt` threads: a few per thread, 8-element aligned chunks. */
function chunkOf(n: i32, nt: i32): i32 {
  return (perTask(n, nt) + 7) & ~7;
}

/** unaryF32 (ops/math/unary.ts), split by ranges when large. */
export function unaryF32Par(code: i32, px: usize, po: usize, n: i32, a0: f32, a1: f32): void {
  const nt = threadCount();
  if (nt < 2 || n < PAR_MIN_ELEMENTS) {
    unaryF32(code, px, po, n, a0, a1);
    return;
  }
  const chunk = chunkOf(n, nt);
  const a = taskArgs();
  store<i32>(a, code);
  store<usize>(a, px, 4);
  store<usize>(a, po, 8);
  store<i32>(a, n, 12);
  store<f32>(a, a0, 16);
  store<f32>(a, a1, 20);
  store<i32>(a, chunk, 24);
  parallelFor(TASK_UNARY, (n + chunk - 1) / chunk);
}

export function unaryTask(a: usize, t: i32): void {
  const n = load<i32>(a, 12);
  const chunk = load<i32>(a, 24);
  const lo = t * chunk;
  const m = n - lo < chunk ? n - lo : chunk;
  const off = <usize>lo << 2;
  unaryF32(load<i32>(a), load<usize>(a, 4) + off, load<usize>(a, 8) + off, m, load<f32>(a, 16), load<f32>(a, 20));
}

let rowOffs: usize = 0;
let rowOffsCap: usize = 0;

/**
 * `rows` float32 rows of `inner` elements: out row r = op(a + offA[r], b + offB[r]) with strides
 * sa, sb; offs(r) gives the element offsets (the broadcast iterator, advanced on this thread).
 * Returns false (nothing done) when the op is too small to split.
 */
export function binRowsF32Par(op: i32, rows: i32, inner: i32, a: usize, sa: i32, b: usize, sb: i32, o: usize,
  offs: usize): bool {
  const nt = threadCount();
  if (nt < 2 || <i64>rows * <i64>inner < <i64>PAR_MIN_ELEMENTS) return false;
  const args = taskArgs();
  store<i32>(args, op);
  store<usize>(args, a, 4);
  store<i32>(args, sa, 8);
  store<usize>(args, b, 12);
  store<i32>(args, sb, 16);
  store<usize>(args, o, 20);
  store<i32>(args, inner, 24);
  store<usize>(args, offs, 28);
  if (rows == 1) {
    // one long row: element ranges (offsets of row 0 at offs)
    const chunk = chunkOf(inner, nt);
    store<i32>(args, 0, 32);
    store<i32>(args, chunk, 36);
    parallelFor(TASK_BINARY_ROWS, (inner + chunk - 1) / chunk);
  } else {
    const per = perTask(rows, nt);
    store<i32>(args, rows, 32);
    store<i32>(args, per, 36);
    parallelFor(TASK_BINARY_ROWS, (rows + per - 1) / per);
  }
  return true;
}

/** A grow-only buffer for `rows` pairs of i32 row offsets (main instance). */
export function rowOffsets(rows: i32): usize {
  const bytes = <usize>rows << 3;
  if (bytes > rowOffsCap) {
    if (rowOffs != 0) heap.free(rowOffs);
    rowOffs = heap.alloc(bytes);
    rowOffsCap = bytes;
  }
  return rowOffs;
}

export function binaryRowsTask(args: usize, t: i32): void {
  const op = load<i32>(args);
  const a = load<usize>(args, 4);
  const sa = load<i32>(args, 8);
  const b = load<usize>(args, 12);
  const sb = load<i32>(args, 16);
  const o = load<usize>(args, 20);
  const inner = load<i32>(args, 24);
  const offs = load<usize>(args, 28);
  const rows = load<i32>(args, 32);
  const per = load<i32>(args, 36);
  if (rows == 0) {
    const lo = t * per;
    const m = inner - lo < per ? inner - lo : per;
    const oa = <usize>load<i32>(offs) + <usize>(lo * sa);
    const ob = <usize>load<i32>(offs, 4) + <usize>(lo * sb);
    binRowF32(op, a + (oa << 2), sa, b + (ob << 2), sb, o + (<usize>lo << 2), m);
    return;
  }
  const r0 = t * per;
  const r1 = rows - r0 < per ? rows : r0 + per;
  for (let r = r0; r < r1; r++) {
    const p = offs + (<usize>r << 3);
    binRowF32(op, a + (<usize>load<i32>(p) << 2), sa, b + (<usize>load<i32>(p, 4) << 2), sb,
      o + ((<usize>r * <usize>inner) << 2), inner);
  }
}

/** Softmax (or LogSoftmax) of `outer` contiguous float32 rows of `len`, split by rows when large. */
export function softmaxRowsPar(px: usize, po: usize, outer: i32, len: i32, log: bool): bool {
  const nt = threadCount();
  if (nt < 2 || outer < 2 || <i64>outer * <i64>len < <i64>PAR_MIN_ELEMENTS / 4) return false;
  const per = perTask(outer, nt);
  const a = taskArgs();
  store<usize>(a, px);
  store<usize>(a, po, 4);
  store<i32>(a, outer, 8);
  store<i32>(a, len, 12);
  store<i32>(a, log ? 1 : 0, 16);
  store<i32>(a, per, 20);
  parallelFor(TASK_SOFTMAX, (outer + per - 1) / per);
  return true;
}

export function softmaxTask(a: usize, t: i32): void {
  const outer = load<i32>(a, 8);
  const len = load<i32>(a, 12);
  const per = load<i32>(a, 20);
  const r0 = t * per;
  const r1 = outer - r0 < per ? outer : r0 + per;
  for (let r = r0; r < r1; r++) {
    const off = (<usize>r * <usize>len) << 2;
    softmaxRowF32(load<usize>(a) + off, load<usize>(a, 4) + off, len, load<i32>(a, 16) != 0);
  }
}

/**
 * y = x * a[k] + b[k] over `planes` contiguous float32 planes of `sp` elements, plane p in channel
 * k = p % c (BatchNormalization at inference); ab holds (a, b) f32 pairs per channel. Split by
 * planes when large; returns false (nothing done) when too small.
 */
export function affinePlanesPar(px: usize, po: usize, planes: i32, c: i32, sp: i32, ab: usize): bool {
  const nt = threadCount();
  if (nt < 2 || planes < 2 || <i64>planes * <i64>sp < <i64>PAR_MIN_ELEMENTS) return false;
  const per = perTask(planes, nt);
  const a = taskArgs();
  store<usize>(a, px);
  store<usize>(a, po, 4);
  store<i32>(a, planes, 8);
  store<i32>(a, c, 12);
  store<i32>(a, sp, 16);
  store<usize>(a, ab, 20);
  store<i32>(a, per, 24);
  parallelFor(TASK_AFFINE_PLANES, (planes + per - 1) / per);
  return true;
}

export function affinePlanesTask(args: usize, t: i32): void {
  const planes = load<i32>(args, 8);
  const c = load<i32>(args, 12);
  const sp = load<i32>(args, 16);
  const ab = load<usize>(args, 20);
  const per = load<i32>(args, 24);
  const p0 = t * per;
  const p1 = planes - p0 < per ? planes : p0 + per;
  for (let p = p0; p < p1; p++) {
    const k = p % c;
    const fa = load<f32>(ab + (<usize>k << 3)), fb = load<f32>(ab + (<usize>k << 3), 4);
    const va = f32x4.splat(fa), vb = f32x4.splat(fb);
    const off = (<usize>p * <usize>sp) << 2;
    const px = load<usize>(args) + off, po = load<usize>(args, 4) + off;
    let i: i32 = 0;
    for (; i + 4 <= sp; i += 4) {
      v128.store(po + (<usize>i << 2), f32x4.add(f32x4.mul(v128.load(px + (<usize>i << 2)), va), vb));
    }
    for (; i < sp; i++) store<f32>(po + (<usize>i << 2), load<f32>(px + (<usize>i << 2)) * fa + fb);
  }
}

/**
 * float32 LayerNormalization of `outer` contiguous rows of n (ops/norm.ts layerNormRowF32; ps, pb:
 * scale and bias, n floats each; pm, pv: the optional stash outputs of type sdt), split by rows
 * when large; returns false (nothing done) when too small.
 */
export function layerNormRowsPar(px: usize, po: usize, outer: i32, n: i32, eps: f32, ps: usize, pb: usize, pm: usize,
  pv: usize, sdt: i32): bool {
  const nt = threadCount();
  if (nt < 2 || outer < 2 || <i64>outer * <i64>n < <i64>PAR_MIN_ELEMENTS / 4) return false;
  const per = perTask(outer, nt);
  const a = taskArgs();
  store<usize>(a, px);
  store<usize>(a, po, 4);
  store<i32>(a, outer, 8);
  store<i32>(a, n, 12);
  store<f32>(a, eps, 16);
  store<usize>(a, ps, 20);
  store<usize>(a, pb, 24);
  store<usize>(a, pm, 28);
  store<usize>(a, pv, 32);
  store<i32>(a, sdt, 36);
  store<i32>(a, per, 40);
  parallelFor(TASK_LAYERNORM, (outer + per - 1) / per);
  return true;
}

export function layerNormTask(a: usize, t: i32): void {
  const outer = load<i32>(a, 8);
  const per = load<i32>(a, 40);
  const r0 = t * per;
  const r1 = outer - r0 < per ? outer : r0 + per;
  for (let r = r0; r < r1; r++) {
    layerNormRowF32(load<usize>(a), load<usize>(a, 4), load<i32>(a, 12), load<f32>(a, 16), load<usize>(a, 20),
      load<usize>(a, 24), load<usize>(a, 28), load<usize>(a, 32), load<i32>(a, 36), r);
  }
}

/** unaryTestF32 (IsNaN, IsInf: float32 in, bool bytes out), split by ranges when large. */
export function unaryTestF32Par(code: i32, px: usize, po: usize, n: i32, detectPos: bool, detectNeg: bool): void {
  const nt = threadCount();
  if (nt < 2 || n < PAR_MIN_ELEMENTS) {
    unaryTestF32(code, px, po, n, detectPos, detectNeg);
    return;
  }
  const chunk = (chunkOf(n, nt) + 15) & ~15;
  const a = taskArgs();
  store<i32>(a, code);
  store<usize>(a, px, 4);
  store<usize>(a, po, 8);
  store<i32>(a, n, 12);
  store<i32>(a, (detectPos ? 1 : 0) | (detectNeg ? 2 : 0), 16);
  store<i32>(a, chunk, 20);
  parallelFor(TASK_UNARY_TEST, (n + chunk - 1) / chunk);
}

export function unaryTestTask(a: usize, t: i32): void {
  const n = load<i32>(a, 12);
  const flags = load<i32>(a, 16);
  const chunk = load<i32>(a, 20);
  const lo = t * chunk;
  const m = n - lo < chunk ? n - lo : chunk;
  unaryTestF32(load<i32>(a), load<usize>(a, 4) + (<usize>lo << 2), load<usize>(a, 8) + <usize>lo, m,
    (flags & 1) != 0, (flags & 2) != 0);
}

/**
 * Where on 4-byte elements over `rows` rows of `inner` (kernels/eltwise.ts selRowU32): condition
 * bytes at c, x and y 4-byte elements, inner strides dc, dx, dy (0 or 1); the rows' element
 * offsets (c, x, y) at offs, 16 bytes per row. One long row splits by ranges, several by rows.
 * Returns false (nothing done) when too small.
 */
export function whereRowsPar(rows: i32, inner: i32, c: usize, dc: i32, x: usize, dx: i32, y: usize, dy: i32,
  o: usize, offs: usize): bool {
  const nt = threadCount();
  if (nt < 2 || <i64>rows * <i64>inner < <i64>PAR_MIN_ELEMENTS) return false;
  const a = taskArgs();
  store<usize>(a, c);
  store<i32>(a, dc, 4);
  store<usize>(a, x, 8);
  store<i32>(a, dx, 12);
  store<usize>(a, y, 16);
  store<i32>(a, dy, 20);
  store<usize>(a, o, 24);
  store<i32>(a, inner, 28);
  store<usize>(a, offs, 32);
  if (rows == 1) {
    const chunk = chunkOf(inner, nt);
    store<i32>(a, 0, 36);
    store<i32>(a, chunk, 40);
    parallelFor(TASK_WHERE, (inner + chunk - 1) / chunk);
  } else {
    const per = perTask(rows, nt);
    store<i32>(a, rows, 36);
    store<i32>(a, per, 40);
    parallelFor(TASK_WHERE, (rows + per - 1) / per);
  }
  return true;
}

export function whereRowsTask(a: usize, t: i32): void {
  const c = load<usize>(a);
  const dc = load<i32>(a, 4);
  const x = load<usize>(a, 8);
  const dx = load<i32>(a, 12);
  const y = load<usize>(a, 16);
  const dy = load<i32>(a, 20);
  const o = load<usize>(a, 24);
  const inner = load<i32>(a, 28);
  const offs = load<usize>(a, 32);
  const rows = load<i32>(a, 36);
  const per = load<i32>(a, 40);
  if (rows == 0) {
    const lo = t * per;
    const m = inner - lo < per ? inner - lo : per;
    selRowU32(c + <usize>load<i32>(offs) + <usize>(lo * dc), dc, x + ((<usize>load<i32>(offs, 4) + <usize>(lo * dx)) << 2),
      dx, y + ((<usize>load<i32>(offs, 8) + <usize>(lo * dy)) << 2), dy, o + (<usize>lo << 2), m);
    return;
  }
  const r0 = t * per;
  const r1 = rows - r0 < per ? rows : r0 + per;
  for (let r = r0; r < r1; r++) {
    const p = offs + (<usize>r << 4);
    selRowU32(c + <usize>load<i32>(p), dc, x + (<usize>load<i32>(p, 4) << 2), dx, y + (<usize>load<i32>(p, 8) << 2), dy,
      o + ((<usize>r * <usize>inner) << 2), inner);
  }
}

// ---- fused elementwise chains (ops/fused.ts, passes/fuse_elementwise.ts) ----

/** Bytes of one thread's block temporaries (the steps' results but the last): within L1. */
const FUSED_TMP_BYTES: i32 = 8192;
let fusedTmp: usize = 0;

/**
 * Elements per block for a chain of `nsteps` steps: the temporaries of a block fit in
 * FUSED_TMP_BYTES; a multiple of 8, so that an element takes the same kernel path (SIMD body or
 * tail) as in the unfused op.
 */
export function fusedBlock(nsteps: i32): i32 {
  const temps = nsteps > 1 ? nsteps - 1 : 1;
  const b = ((FUSED_TMP_BYTES >> 2) / temps) & ~7;
  return b > 1024 ? 1024 : b;
}

/**
 * Elements [lo, lo + m) of a fused chain. `steps`: 4 i32 per step (kind: 0 unary, 1 binary; code;
 * operand a; operand b), `params`: 2 f32 per step; an operand r >= 0 is step r's result, r < 0 is
 * external input -r-1, whose address and stride (1, or 0 for a single element) are at `ins`,
 * 8 bytes per input. Step s writes its block to tmp + s * bs floats, the last step to `out`.
 * Each step runs the unfused op's own row kernel (unaryF32, binRowF32) on the block.
 */
function fusedRange(steps: usize, nsteps: i32, params: usize, ins: usize, out: usize, lo: i32, m: i32, tmp: usize,
  bs: i32): void {
  for (let s = 0; s < nsteps; s++) {
    const w = steps + (<usize>s << 4);
    const dst = s == nsteps - 1 ? out + (<usize>lo << 2) : tmp + ((<usize>s * <usize>bs) << 2);
    const ra = load<i32>(w, 8);
    let pa: usize, sa: i32;
    if (ra >= 0) {
      pa = tmp + ((<usize>ra * <usize>bs) << 2);
      sa = 1;
    } else {
      const e = ins + (<usize>(-ra - 1) << 3);
      sa = load<i32>(e, 4);
      pa = load<usize>(e) + (sa != 0 ? <usize>lo << 2 : 0);
    }
    if (load<i32>(w) == 0) {
      unaryF32(load<i32>(w, 4), pa, dst, m, load<f32>(params + (<usize>s << 3)), load<f32>(params + (<usize>s << 3), 4));
      continue;
    }
    const rb = load<i32>(w, 12);
    let pb: usize, sb: i32;
    if (rb >= 0) {
      pb = tmp + ((<usize>rb * <usize>bs) << 2);
      sb = 1;
    } else {
      const e = ins + (<usize>(-rb - 1) << 3);
      sb = load<i32>(e, 4);
      pb = load<usize>(e) + (sb != 0 ? <usize>lo << 2 : 0);
    }
    binRowF32(load<i32>(w, 4), pa, sa, pb, sb, dst, m);
  }
}

/** Blocks [b0, b1) of bs elements of a chain over n elements. */
function fusedBlocks(steps: usize, nsteps: i32, params: usize, ins: usize, out: usize, n: i32, b0: i32, b1: i32,
  tmp: usize, bs: i32): void {
  for (let b = b0; b < b1; b++) {
    const lo = b * bs;
    fusedRange(steps, nsteps, params, ins, out, lo, n - lo < bs ? n - lo : bs, tmp, bs);
  }
}

/**
 * A fused chain over n float32 elements (tables as fusedRange's), block by block, each block's
 * steps one after another while it is in cache; split by blocks over the threads when large.
 */
export function fusedF32Par(steps: usize, nsteps: i32, params: usize, ins: usize, out: usize, n: i32): void {
  const bs = fusedBlock(nsteps);
  const nb = (n + bs - 1) / bs;
  const nt = threadCount();
  if (nt < 2 || n < PAR_MIN_ELEMENTS || nb < 2) {
    if (fusedTmp == 0) fusedTmp = (heap.alloc(<usize>FUSED_TMP_BYTES + 16) + 15) & ~(<usize>15);
    fusedBlocks(steps, nsteps, params, ins, out, n, 0, nb, fusedTmp, bs);
    return;
  }
  const per = perTask(nb, nt);
  const a = taskArgs();
  store<usize>(a, steps);
  store<i32>(a, nsteps, 4);
  store<usize>(a, params, 8);
  store<usize>(a, ins, 12);
  store<usize>(a, out, 16);
  store<i32>(a, n, 20);
  store<i32>(a, bs, 24);
  store<i32>(a, nb, 28);
  store<i32>(a, per, 32);
  parallelFor(TASK_FUSED, (nb + per - 1) / per);
}

/** Task t of fusedF32Par: `per` blocks, the temporaries in the thread's A-panel scratch (idle during the job). */
export function fusedTask(c: usize, a: usize, t: i32, slot: i32): void {
  const nb = load<i32>(a, 28);
  const per = load<i32>(a, 32);
  const b0 = t * per;
  const b1 = nb - b0 < per ? nb : b0 + per;
  fusedBlocks(load<usize>(a), load<i32>(a, 4), load<usize>(a, 8), load<usize>(a, 12), load<usize>(a, 16),
    load<i32>(a, 20), b0, b1, slotScratch(c, slot, 0), load<i32>(a, 24));
}
