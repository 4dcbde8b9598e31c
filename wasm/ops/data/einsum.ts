// Einsum: any equation with explicit or implicit output, repeated labels (diagonals),
// broadcast ellipsis. Two-operand float32 contractions that are batched matmuls
// ("bij,bjk->bik", "ij,jk", "bhqd,bhkd->bhqk") run on the SGEMM kernel (kernels/gemm.ts);
// everything else by index iteration (an odometer over output labels, then summed labels).
import { DT_FLOAT, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { Tensor } from "../../ir/tensor";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { sgemmBatched } from "../../kernels/gemm";
import { copyView, movable, stridesOf } from "./util";

const ELLIPSIS_BASE: i32 = 1000;

class EinsumPlan {
  err: string = "";
  /** label id per dim, per input */
  inLabels: Array<Array<i32>> = new Array<Array<i32>>();
  outLabels: Array<i32> = new Array<i32>();
  sumLabels: Array<i32> = new Array<i32>();
  /** size per label id (Map: label -> size) */
  sizes: Map<i32, i32> = new Map<i32, i32>();
  outLens: Array<i32> = new Array<i32>();

  size(l: i32): i32 {
    return this.sizes.has(l) ? this.sizes.get(l) : 1;
  }
}

function isLetter(c: i32): bool {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Labels of one term; ellipsis dims get ELLIPSIS_BASE + position, right-aligned to `maxE`. */
function termLabels(term: string, rank: i32, plan: EinsumPlan, maxE: i32): Array<i32> | null {
  const out = new Array<i32>();
  let letters = 0;
  let hasE = false;
  for (let i = 0; i < term.length; i++) {
    const c = term.charCodeAt(i);
    if (isLetter(c)) letters++;
    else if (c == 46) {
      if (hasE || term.substr(i, 3) != "...") {
        plan.err = "term '" + term + "' has a malformed ellipsis";
        return null;
      }
      hasE = true;
      i += 2;
    } else {
      plan.err = "term '" + term + "' has an invalid character";
      return null;
    }
  }
  const e = rank - letters;
  if (rank >= 0 && (e < 0 || (!hasE && e != 0))) {
    plan.err = "term '" + term + "' does not match an input of rank " + rank.toString();
    return null;
  }
  for (let i = 0; i < term.length; i++) {
    const c = term.charCodeAt(i);
    if (isLetter(c)) out.push(c);
    else {
      const n = rank >= 0 ? e : maxE;
      for (let k = 0; k < n; k++) out.push(ELLIPSIS_BASE + maxE - n + k);
      i += 2;
    }
  }
  return out;
}

function planEinsum(eqIn: string, shapes: Array<Array<i32>>): EinsumPlan {
  const plan = new EinsumPlan();
  let eq = "";
  for (let i = 0; i < eqIn.length; i++) if (eqIn.charCodeAt(i) != 32) eq += eqIn.charAt(i);
  const arrow = eq.indexOf("->");
  const lhs = arrow >= 0 ? eq.substring(0, arrow) : eq;
  const terms = lhs.split(",");
  if (terms.length != shapes.length) {
    plan.err = "equation '" + eqIn + "' has " + terms.length.toString() + " terms for " + shapes.length.toString() + " inputs";
    return plan;
  }
  let maxE = 0;
  for (let t = 0; t < terms.length; t++) {
    let letters = 0;
    for (let i = 0; i < terms[t].length; i++) if (isLetter(terms[t].charCodeAt(i))) letters++;
    if (terms[t].indexOf("...") >= 0 && shapes[t].length - letters > maxE) maxE = shapes[t].length - letters;
  }
  const counts = new Map<i32, i32>();
  for (let t = 0; t < terms.length; t++) {
    const labs = termLabels(terms[t], shapes[t].length, plan, maxE);
    if (labs == null) return plan;
    plan.inLabels.push(labs);
    for (let d = 0; d < labs.length; d++) {
      const l = labs[d];
      const n = shapes[t][d];
      counts.set(l, (counts.has(l) ? counts.get(l) : 0) + 1);
      if (!plan.sizes.has(l) || plan.sizes.get(l) == 1) plan.sizes.set(l, n);
      else if (n != 1 && plan.sizes.get(l) != n) {
        plan.err = "label '" + (l >= ELLIPSIS_BASE ? "..." : String.fromCharCode(l)) + "' has sizes " +
          plan.sizes.get(l).toString() + " and " + n.toString();
        return plan;
      }
    }
  }
  if (arrow >= 0) {
    const labs = termLabels(eq.substring(arrow + 2), -1, plan, maxE);
    if (labs == null) return plan;
    for (let i = 0; i < labs.length; i++) {
      if (!counts.has(labs[i])) {
        plan.err = "output label '" + String.fromCharCode(labs[i]) + "' is not in any input";
        return plan;
      }
      if (plan.outLabels.includes(labs[i])) {
        plan.err = "output label '" + String.fromCharCode(labs[i]) + "' is repeated";
        return plan;
      }
      plan.outLabels.push(labs[i]);
    }
  } else {
    for (let k = 0; k < maxE; k++) plan.outLabels.push(ELLIPSIS_BASE + k);
    for (let c = 65; c <= 122; c++) if (counts.has(c) && counts.get(c) == 1) plan.outLabels.push(c);
  }
  const keys = counts.keys();
  keys.sort();
  for (let i = 0; i < keys.length; i++) if (!plan.outLabels.includes(keys[i])) plan.sumLabels.push(keys[i]);
  for (let i = 0; i < plan.outLabels.length; i++) plan.outLens.push(plan.size(plan.outLabels[i]));
  return plan;
}

/** Element strides of input t for each label in `labels` (0 where absent or broadcast). */
function labelStrides(plan: EinsumPlan, t: i32, lens: Array<i32>, labels: Array<i32>): Array<i32> {
  const st = stridesOf(lens);
  const labs = plan.inLabels[t];
  const out = new Array<i32>(labels.length);
  for (let i = 0; i < labels.length; i++) {
    let s = 0;
    for (let d = 0; d < labs.length; d++) if (labs[d] == labels[i] && lens[d] != 1) s += st[d];
    out[i] = s;
  }
  return out;
}

class EinsumOp extends Op {
  constructor() { super("Einsum"); }

  computeShape(ctx: ShapeContext): bool {
    const shapes = new Array<Array<i32>>();
    for (let i = 0; i < ctx.count(); i++) {
      const s = ctx.input(i);
      if (!movable(s.dtype) || s.dtype != ctx.input(0).dtype) return ctx.failDtype(i);
      shapes.push(s.lens);
    }
    const plan = planEinsum(ctx.attrs.getString("equation", ""), shapes);
    if (plan.err.length > 0) return ctx.fail(plan.err);
    ctx.out(Shape.standard(ctx.input(0).dtype, plan.outLens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const n = ctx.inputs.length;
    const shapes = new Array<Array<i32>>();
    for (let i = 0; i < n; i++) shapes.push(ctx.input(i).shape.lens);
    const plan = planEinsum(ctx.attrs.getString("equation", ""), shapes);
    if (plan.err.length > 0) return ctx.fail(plan.err);
    const y = ctx.output(0);
    if (n == 2 && y.shape.dtype == DT_FLOAT && matmulPath(plan, ctx.input(0), ctx.input(1), y)) return true;
    // odometer over [out labels..., sum labels...]
    const labels = plan.outLabels.concat(plan.sumLabels);
    const L = labels.length;
    const lens = new Array<i32>(L);
    for (let i = 0; i < L; i++) lens[i] = plan.size(labels[i]);
    const strides = new Array<Array<i32>>();
    for (let t = 0; t < n; t++) strides.push(labelStrides(plan, t, shapes[t], labels));
    let outTotal = 1, sumTotal = 1;
    for (let i = 0; i < plan.outLabels.length; i++) outTotal *= lens[i];
    for (let i = plan.outLabels.length; i < L; i++) sumTotal *= lens[i];
    if (outTotal == 0) return true;
    const offs = new StaticArray<i32>(n);
    const cnt = new StaticArray<i32>(L);
    const allF32 = ctx.input(0).shape.dtype == DT_FLOAT;
    const fl = isFloat(y.shape.dtype);
    for (let o = 0; o < outTotal; o++) {
      let acc: f64 = 0;
      for (let s = 0; s < sumTotal; s++) {
        let p: f64 = 1;
        for (let t = 0; t < n; t++) {
          const x = ctx.input(t);
          p *= allF32 ? <f64>load<f32>(x.ptr + (<usize>unchecked(offs[t]) << 2)) : x.getAsF64(unchecked(offs[t]));
        }
        acc += p;
        for (let k = L - 1; k >= 0; k--) {
          const c = unchecked(cnt[k]) + 1;
          for (let t = 0; t < n; t++) unchecked(offs[t] += strides[t][k]);
          if (c < lens[k]) {
            unchecked(cnt[k] = c);
            break;
          }
          unchecked(cnt[k] = 0);
          for (let t = 0; t < n; t++) unchecked(offs[t] -= strides[t][k] * lens[k]);
        }
      }
      if (allF32) store<f32>(y.ptr + (<usize>o << 2), <f32>acc);
      else if (fl) y.setFromF64(o, acc);
      else y.setFromI64(o, <i64>acc);
    }
    return true;
  }
}

/**
 * Two float32 operands whose labels split into batch (in both and the output), m (A and
 * output), n (B and output) and k (both, summed) groups, each label once per operand:
 * packs A as [B,M,K] and B as [B,K,N] (or [B,N,K], transposed, when that is B's layout) and runs
 * sgemmBatched. Returns false when the form does not fit.
 */
function matmulPath(plan: EinsumPlan, a: Tensor, b: Tensor, y: Tensor): bool {
  const la = plan.inLabels[0], lb = plan.inLabels[1];
  if (hasRepeat(la) || hasRepeat(lb)) return false;
  const batch = new Array<i32>(), ms = new Array<i32>(), ns = new Array<i32>(), ks = new Array<i32>();
  for (let i = 0; i < plan.outLabels.length; i++) {
    const l = plan.outLabels[i];
    const ia = la.includes(l), ib = lb.includes(l);
    if (ia && ib) batch.push(l);
    else if (ia) ms.push(l);
    else if (ib) ns.push(l);
    else return false;
  }
  for (let i = 0; i < plan.sumLabels.length; i++) {
    const l = plan.sumLabels[i];
    if (!la.includes(l) || !lb.includes(l)) return false;
    ks.push(l);
  }
  // the output must be ordered batch, m, n
  const order = batch.concat(ms).concat(ns);
  for (let i = 0; i < order.length; i++) if (order[i] != plan.outLabels[i]) return false;
  for (let i = 0; i < la.length; i++) if (a.shape.lens[i] != plan.size(la[i])) return false;
  for (let i = 0; i < lb.length; i++) if (b.shape.lens[i] != plan.size(lb[i])) return false;
  let B = 1, M = 1, N = 1, K = 1;
  for (let i = 0; i < batch.length; i++) B *= plan.size(batch[i]);
  for (let i = 0; i < ms.length; i++) M *= plan.size(ms[i]);
  for (let i = 0; i < ns.length; i++) N *= plan.size(ns[i]);
  for (let i = 0; i < ks.length; i++) K *= plan.size(ks[i]);
  const pa = pack(plan, 0, a, batch.concat(ms).concat(ks));
  // B as [batch, n, k] (transposed) when that is its layout already, else [batch, k, n]
  const bnk = batch.concat(ns).concat(ks);
  let transB = bnk.length == lb.length;
  for (let i = 0; transB && i < lb.length; i++) transB = lb[i] == bnk[i];
  const pb = pack(plan, 1, b, transB ? bnk : batch.concat(ks).concat(ns));
  sgemmBatched(B, false, transB, M, N, K, 1, pa, K, M * K, pb, transB ? K : N, K * N, 0, y.ptr, N, M * N);
  heap.free(pa);
  heap.free(pb);
  return true;
}

function hasRepeat(l: Array<i32>): bool {
  for (let i = 0; i < l.length; i++) for (let j = i + 1; j < l.length; j++) if (l[i] == l[j]) return true;
  return false;
}

/** A standard-layout copy of operand t with its dims in `order` (a label permutation). */
function pack(plan: EinsumPlan, t: i32, x: Tensor, order: Array<i32>): usize {
  const lens = new Array<i32>(order.length);
  for (let i = 0; i < order.length; i++) lens[i] = plan.size(order[i]);
  const vs = labelStrides(plan, t, x.shape.lens, order);
  const p = heap.alloc(<usize>x.shape.bytes() + 16);
  copyView(p, x.ptr, 4, lens, vs, 0);
  return p;
}

export function registerEinsum(): void {
  registerOp(new EinsumOp());
}
