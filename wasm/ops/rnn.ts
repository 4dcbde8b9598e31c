// Recurrent ops: RNN, GRU, LSTM (ONNX opsets 7/14/22): directions forward / reverse /
// bidirectional, layout 0 and 1, sequence_lens, initial states, peepholes, clip, input_forget,
// linear_before_reset, and every activation the spec lists. Computed in float32 (other float
// types are converted in and out). Per direction, the input projection X·Wᵀ of all time steps is
// one SGEMM (kernels/gemm.ts) with the biases added after it; each step is one small SGEMM
// H·Rᵀ over the batch (GRU without linear_before_reset: two, as the reset gate scales H first)
// followed by the gate arithmetic of each batch row still inside its sequence.
//
// Semantics follow the spec, and onnxruntime where the spec is silent: with sequence_lens, a
// row's Y past its length is zero, Y_h / Y_c are its state after its last step (zero for a
// length of 0), and the reverse direction walks each row from its own last step; clip bounds
// the gates' pre-activations but not LSTM's cell state before h (as onnxruntime does);
// input_forget sets f = 1 - i. Activation names are matched case-insensitively (as onnxruntime
// does); alpha and beta are taken in order by the activations that use them, defaulting to the
// values of the ONNX ops of those names (Affine 1, 0; LeakyRelu 0.01; ThresholdedRelu 1;
// HardSigmoid 0.2, 0.5; Elu 1) and, for ScaledTanh, which has none, 1, 1 (plain Tanh).
import { ATTR_STRINGS } from "../ir/attrs";
import { DT_INT32, dtypeName, isFloat } from "../ir/dtype";
import { Shape } from "../ir/shape";
import { Tensor } from "../ir/tensor";
import { packedBLength, packWholeB, sgemm, sgemmPackedB } from "../kernels/gemm";
import { vsigmoid, vtanh } from "./math/vmath";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "./op";
import { registerOp } from "./registry";
import { F32Out, F32View } from "./f32buf";
import { Attrs } from "../ir/attrs";

const K_RNN: i32 = 0;
const K_GRU: i32 = 1;
const K_LSTM: i32 = 2;

const A_RELU: i32 = 0;
const A_TANH: i32 = 1;
const A_SIGMOID: i32 = 2;
const A_AFFINE: i32 = 3;
const A_LEAKYRELU: i32 = 4;
const A_THRESHOLDEDRELU: i32 = 5;
const A_SCALEDTANH: i32 = 6;
const A_HARDSIGMOID: i32 = 7;
const A_ELU: i32 = 8;
const A_SOFTSIGN: i32 = 9;
const A_SOFTPLUS: i32 = 10;

const ACT_NAMES: Array<string> = [
  "Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu",
  "Softsign", "Softplus",
];

function actCode(name: string): i32 {
  const l = name.toLowerCase();
  for (let i = 0; i < ACT_NAMES.length; i++) if (ACT_NAMES[i].toLowerCase() == l) return i;
  return -1;
}

function actUsesAlpha(c: i32): bool {
  return c == A_AFFINE || c == A_LEAKYRELU || c == A_THRESHOLDEDRELU || c == A_SCALEDTANH || c == A_HARDSIGMOID ||
    c == A_ELU;
}

function actUsesBeta(c: i32): bool {
  return c == A_AFFINE || c == A_SCALEDTANH || c == A_HARDSIGMOID;
}

function actDefaultAlpha(c: i32): f32 {
  if (c == A_LEAKYRELU) return 0.01;
  if (c == A_HARDSIGMOID) return 0.2;
  return 1;
}

function actDefaultBeta(c: i32): f32 {
  if (c == A_HARDSIGMOID) return 0.5;
  if (c == A_SCALEDTANH) return 1;
  return 0;
}

/** The activations of one node: per direction, numActs codes with their alpha and beta. */
class Acts {
  codes: Array<i32> = new Array<i32>();
  alpha: Array<f32> = new Array<f32>();
  beta: Array<f32> = new Array<f32>();
  error: string = "";
}

function gatesOf(kind: i32): i32 {
  return kind == K_LSTM ? 4 : kind == K_GRU ? 3 : 1;
}

function numActsOf(kind: i32): i32 {
  return kind == K_LSTM ? 3 : kind == K_GRU ? 2 : 1;
}

/** Parses activations / activation_alpha / activation_beta; sets error on a bad list. */
function parseActs(kind: i32, attrs: Attrs, nd: i32): Acts {
  const r = new Acts();
  const na = numActsOf(kind);
  const names = new Array<string>();
  const a = attrs.get("activations");
  if (a == null) {
    for (let d = 0; d < nd; d++) {
      if (kind == K_RNN) names.push("Tanh");
      else {
        names.push("Sigmoid");
        names.push("Tanh");
        if (kind == K_LSTM) names.push("Tanh");
      }
    }
  } else {
    if (a.kind != ATTR_STRINGS) {
      r.error = "attribute 'activations' must be a list of strings";
      return r;
    }
    for (let i = 0; i < a.strings.length; i++) names.push(a.strings[i]);
    if (names.length != na * nd) {
      r.error = "attribute 'activations' has " + names.length.toString() + " names, expected " +
        (na * nd).toString() + " (" + na.toString() + " per direction, " + nd.toString() + " direction" +
        (nd == 2 ? "s" : "") + ")";
      return r;
    }
  }
  const al = attrs.getFloats("activation_alpha");
  const bl = attrs.getFloats("activation_beta");
  let ai = 0, bi = 0;
  for (let i = 0; i < names.length; i++) {
    const c = actCode(names[i]);
    if (c < 0) {
      r.error = "unknown activation '" + names[i] + "' (expected one of " + ACT_NAMES.join(", ") + ")";
      return r;
    }
    let alpha: f32 = actDefaultAlpha(c), beta: f32 = actDefaultBeta(c);
    if (actUsesAlpha(c) && al != null && ai < al.length) alpha = al[ai++];
    if (actUsesBeta(c) && bl != null && bi < bl.length) beta = bl[bi++];
    r.codes.push(c);
    r.alpha.push(alpha);
    r.beta.push(beta);
  }
  return r;
}

// @ts-ignore: decorator
@inline
function fptr(base: usize, i: i32): usize {
  return base + (<usize>i << 2);
}

/** Clamps n floats at p to [-clip, clip] (when hasClip) and applies activation c in place. */
function activate(c: i32, alpha: f32, beta: f32, hasClip: bool, clip: f32, p: usize, n: i32): void {
  if (hasClip) {
    for (let i = 0; i < n; i++) {
      const q = p + (<usize>i << 2);
      store<f32>(q, max(-clip, min(clip, load<f32>(q))));
    }
  }
  // the default gate activations: f32x4 (wasm/ops/math/vmath.ts), the tail one lane at a time
  if (c == A_SIGMOID) {
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(fptr(p, i), vsigmoid(v128.load(fptr(p, i))));
    for (; i < n; i++) store<f32>(fptr(p, i), f32x4.extract_lane(vsigmoid(f32x4.splat(load<f32>(fptr(p, i)))), 0));
    return;
  }
  if (c == A_TANH) {
    let i = 0;
    for (; i + 4 <= n; i += 4) v128.store(fptr(p, i), vtanh(v128.load(fptr(p, i))));
    for (; i < n; i++) store<f32>(fptr(p, i), f32x4.extract_lane(vtanh(f32x4.splat(load<f32>(fptr(p, i)))), 0));
    return;
  }
  const a = <f64>alpha, b = <f64>beta;
  for (let i = 0; i < n; i++) {
    const q = p + (<usize>i << 2);
    const x = <f64>load<f32>(q);
    let y: f64 = 0;
    switch (c) {
      case A_RELU: y = x > 0 ? x : 0; break;
      case A_AFFINE: y = a * x + b; break;
      case A_LEAKYRELU: y = x >= 0 ? x : a * x; break;
      case A_THRESHOLDEDRELU: y = x > a ? x : 0; break;
      case A_SCALEDTANH: y = a * Math.tanh(b * x); break;
      case A_HARDSIGMOID: y = max(0.0, min(1.0, a * x + b)); break;
      case A_ELU: y = x >= 0 ? x : a * (Math.exp(x) - 1); break;
      case A_SOFTSIGN: y = x / (1 + Math.abs(x)); break;
      case A_SOFTPLUS: y = x > 30 ? x : Math.log1p(Math.exp(x)); break;
      default: y = x;
    }
    store<f32>(q, <f32>y);
  }
}

/** Bytes of n * k floats (at least one, for heap.alloc). */
function floats(n: i32, k: i32 = 1): usize {
  const m = <usize>n * <usize>k;
  return (m > 0 ? m : 1) << 2;
}

class RecurrentOp extends Op {
  kind: i32;

  constructor(name: string, kind: i32) {
    super(name, OP_WRITES_ALL);
    this.kind = kind;
  }

  /** The number of directions, or 0 for an unknown direction. */
  directions(attrs: Attrs): i32 {
    const d = attrs.getString("direction", "forward");
    if (d == "forward" || d == "reverse") return 1;
    if (d == "bidirectional") return 2;
    return 0;
  }

  computeShape(ctx: ShapeContext): bool {
    const kind = this.kind;
    const G = gatesOf(kind);
    const maxIn = kind == K_LSTM ? 8 : 6;
    const maxOut = kind == K_LSTM ? 3 : 2;
    if (ctx.count() > maxIn) return ctx.fail("takes at most " + maxIn.toString() + " inputs");
    if (ctx.numOutputs > maxOut) return ctx.fail("has at most " + maxOut.toString() + " outputs");
    for (let i = 0; i < 3; i++) {
      if (!ctx.hasInput(i)) return ctx.fail("inputs X, W and R are required");
    }
    const x = ctx.input(0);
    const dt = x.dtype;
    if (!isFloat(dt)) return ctx.failDtype(0);
    for (let i = 1; i < ctx.count(); i++) {
      if (i == 4 || !ctx.hasInput(i)) continue;
      if (ctx.input(i).dtype != dt) {
        return ctx.fail("input " + i.toString() + " has element type " + dtypeName(ctx.input(i).dtype) +
          ", X has " + dtypeName(dt));
      }
    }
    const dir = ctx.attrs.getString("direction", "forward");
    const nd = this.directions(ctx.attrs);
    if (nd == 0) return ctx.fail("direction '" + dir + "' is not one of forward, reverse, bidirectional");
    const layoutAttr = ctx.attrs.getInt("layout", 0);
    if (layoutAttr != 0 && layoutAttr != 1) return ctx.fail("layout " + layoutAttr.toString() + " is not 0 or 1");
    const layout = <i32>layoutAttr;
    if (x.rank() != 3) return ctx.fail("X must have rank 3, got " + x.toString());
    const T = layout == 0 ? x.lens[0] : x.lens[1];
    const B = layout == 0 ? x.lens[1] : x.lens[0];
    const I = x.lens[2];
    const w = ctx.input(1), r = ctx.input(2);
    if (r.rank() != 3) return ctx.fail("R must have rank 3 [num_directions, " + G.toString() + "*hidden_size, hidden_size], got " + r.toString());
    const hAttr = ctx.attrs.getInt("hidden_size", <i64>r.lens[2]);
    if (hAttr <= 0 || hAttr > <i64>i32.MAX_VALUE) return ctx.fail("hidden_size " + hAttr.toString() + " is out of range");
    const H = <i32>hAttr;
    const gh = G.toString() + "*" + H.toString();
    if (w.rank() != 3 || w.lens[0] != nd || w.lens[1] != G * H || w.lens[2] != I) {
      return ctx.fail("W " + w.toString() + " must be [" + nd.toString() + ", " + gh + ", " + I.toString() +
        "] (num_directions, " + G.toString() + "*hidden_size, input_size) for hidden_size " + H.toString());
    }
    if (r.lens[0] != nd || r.lens[1] != G * H || r.lens[2] != H) {
      return ctx.fail("R " + r.toString() + " must be [" + nd.toString() + ", " + gh + ", " + H.toString() +
        "] (num_directions, " + G.toString() + "*hidden_size, hidden_size) for hidden_size " + H.toString());
    }
    if (ctx.hasInput(3)) {
      const b = ctx.input(3);
      if (b.rank() != 2 || b.lens[0] != nd || b.lens[1] != 2 * G * H) {
        return ctx.fail("B " + b.toString() + " must be [" + nd.toString() + ", " + (2 * G * H).toString() + "]");
      }
    }
    if (ctx.hasInput(4)) {
      const s = ctx.input(4);
      if (s.dtype != DT_INT32) return ctx.fail("sequence_lens must be int32, got " + dtypeName(s.dtype));
      if (s.rank() != 1 || s.lens[0] != B) {
        return ctx.fail("sequence_lens " + s.toString() + " must be [" + B.toString() + "] (batch_size)");
      }
    }
    const sl = layout == 0 ? [nd, B, H] : [B, nd, H];
    const stateShape = Shape.standard(dt, sl);
    for (let i = 5; i < 7; i++) {
      if (i == 6 && kind != K_LSTM) break;
      if (!ctx.hasInput(i)) continue;
      const s = ctx.input(i);
      if (s.rank() != 3 || s.lens[0] != sl[0] || s.lens[1] != sl[1] || s.lens[2] != sl[2]) {
        return ctx.fail((i == 5 ? "initial_h " : "initial_c ") + s.toString() + " must be " +
          stateShape.toString() + (layout == 0 ? " [num_directions, batch_size, hidden_size]" :
            " [batch_size, num_directions, hidden_size] (layout 1)"));
      }
    }
    if (kind == K_LSTM && ctx.hasInput(7)) {
      const p = ctx.input(7);
      if (p.rank() != 2 || p.lens[0] != nd || p.lens[1] != 3 * H) {
        return ctx.fail("P " + p.toString() + " must be [" + nd.toString() + ", " + (3 * H).toString() + "]");
      }
    }
    if (ctx.attrs.has("clip") && !(ctx.attrs.getFloat("clip", 0) > 0)) {
      return ctx.fail("clip " + ctx.attrs.getFloat("clip", 0).toString() + " must be positive");
    }
    const acts = parseActs(kind, ctx.attrs, nd);
    if (acts.error.length > 0) return ctx.fail(acts.error);
    if (kind == K_LSTM) {
      const f = ctx.attrs.getInt("input_forget", 0);
      if (f != 0 && f != 1) return ctx.fail("input_forget " + f.toString() + " is not 0 or 1");
    }
    if (ctx.numOutputs > 0) ctx.out(Shape.standard(dt, layout == 0 ? [T, nd, B, H] : [B, T, nd, H]));
    for (let i = 1; i < ctx.numOutputs; i++) ctx.out(stateShape);
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const kind = this.kind;
    const G = gatesOf(kind);
    const na = numActsOf(kind);
    const x = ctx.input(0);
    const layout = <i32>ctx.attrs.getInt("layout", 0);
    const T = layout == 0 ? x.shape.lens[0] : x.shape.lens[1];
    const B = layout == 0 ? x.shape.lens[1] : x.shape.lens[0];
    const I = x.shape.lens[2];
    const r = ctx.input(2);
    const H = r.shape.lens[2];
    const GH = G * H;
    const nd = this.directions(ctx.attrs);
    const reverseOnly = ctx.attrs.getString("direction", "forward") == "reverse";
    const hasClip = ctx.attrs.has("clip");
    const clip = ctx.attrs.getFloat("clip", 0);
    const inputForget = ctx.attrs.getInt("input_forget", 0) != 0;
    const lbr = kind == K_GRU && ctx.attrs.getInt("linear_before_reset", 0) != 0;
    const acts = parseActs(kind, ctx.attrs, nd);

    // sequence lengths
    const lens = new StaticArray<i32>(B);
    let maxLen: i32 = 0;
    for (let b = 0; b < B; b++) {
      let l = T;
      if (ctx.hasInput(4)) {
        l = load<i32>(ctx.input(4).ptr + (<usize>b << 2));
        if (l < 0 || l > T) {
          return ctx.fail("sequence_lens[" + b.toString() + "] = " + l.toString() + " is outside [0, " +
            T.toString() + "] (seq_length)");
        }
      }
      unchecked(lens[b] = l);
      if (l > maxLen) maxLen = l;
    }

    const xs = new F32View(x);
    const ws = new F32View(ctx.input(1));
    const rs = new F32View(r);
    const bs = new F32View(ctx.hasInput(3) ? ctx.input(3) : null);
    const h0 = new F32View(ctx.hasInput(5) ? ctx.input(5) : null);
    const c0 = new F32View(kind == K_LSTM && ctx.hasInput(6) ? ctx.input(6) : null);
    const ps = new F32View(kind == K_LSTM && ctx.hasInput(7) ? ctx.input(7) : null);
    const no = ctx.outputs.length;
    const y = no > 0 ? new F32Out(ctx.output(0), true) : null;
    const yh = no > 1 ? new F32Out(ctx.output(1), true) : null;
    const yc = no > 2 ? new F32Out(ctx.output(2), true) : null;

    const rows = T * B;
    const xw = heap.alloc(floats(rows, GH));
    const rec = heap.alloc(floats(B, GH));
    const hs = heap.alloc(floats(B, H));
    const cs = heap.alloc(floats(B, H));
    // GRU without linear_before_reset: r ⊙ H, and (r ⊙ H)·Rhᵀ
    const rh = heap.alloc(floats(B, H));
    const rhr = heap.alloc(floats(B, H));
    const biasX = heap.alloc(floats(GH));
    const biasRh = heap.alloc(floats(H));
    const tmp = heap.alloc(floats(H));
    // Rᵀ packed once per direction for the per-step SGEMMs (a batch of one takes sgemm's GEMV path)
    const nrec = kind == K_GRU && !lbr ? 2 * H : GH;
    const packR = B > 1 && maxLen > 1 && H > 0;
    const rPkRaw = packR ? heap.alloc(floats(packedBLength(H, nrec)) + 16) : 0;
    const rhPkRaw = packR && kind == K_GRU && !lbr ? heap.alloc(floats(packedBLength(H, H)) + 16) : 0;
    const rPk = (rPkRaw + 15) & ~(<usize>15);
    const rhPk = (rhPkRaw + 15) & ~(<usize>15);

    for (let d = 0; d < nd; d++) {
      const reverse = d == 1 || reverseOnly;
      const a0 = d * na;
      const pw = ws.ptr + (<usize>(d * GH * I) << 2);
      const pr = rs.ptr + (<usize>(d * GH * H) << 2);
      // biases: Wb + Rb folded into the input projection, except GRU's Rbh with linear_before_reset
      memory.fill(biasX, 0, <usize>GH << 2);
      memory.fill(biasRh, 0, <usize>H << 2);
      if (bs.ptr != 0) {
        const pb = bs.ptr + (<usize>(d * 2 * GH) << 2);
        for (let j = 0; j < GH; j++) {
          const wb = load<f32>(fptr(pb, j)), rb = load<f32>(fptr(pb, GH + j));
          if (lbr && j >= 2 * H) {
            store<f32>(fptr(biasX, j), wb);
            store<f32>(fptr(biasRh, j - 2 * H), rb);
          } else {
            store<f32>(fptr(biasX, j), wb + rb);
          }
        }
      }
      // X·Wᵀ for every time step at once: row t*B+b (layout 0) or b*T+t (layout 1)
      if (rows > 0 && I > 0) sgemm(false, true, rows, GH, I, 1, xs.ptr, I, pw, I, 0, xw, GH);
      else memory.fill(xw, 0, <usize>rows * <usize>GH << 2);
      for (let q = 0; q < rows; q++) {
        const row = xw + (<usize>q * <usize>GH << 2);
        for (let j = 0; j < GH; j++) store<f32>(fptr(row, j), load<f32>(fptr(row, j)) + load<f32>(fptr(biasX, j)));
      }
      // initial states
      for (let b = 0; b < B; b++) {
        const si = layout == 0 ? (d * B + b) * H : (b * nd + d) * H;
        const dh = hs + (<usize>(b * H) << 2), dc = cs + (<usize>(b * H) << 2);
        if (h0.ptr != 0) memory.copy(dh, fptr(h0.ptr, si), <usize>H << 2);
        else memory.fill(dh, 0, <usize>H << 2);
        if (c0.ptr != 0) memory.copy(dc, fptr(c0.ptr, si), <usize>H << 2);
        else memory.fill(dc, 0, <usize>H << 2);
      }
      memory.fill(rh, 0, <usize>B * <usize>H << 2);
      if (packR) {
        packWholeB(true, pr, H, H, nrec, rPk);
        if (rhPkRaw != 0) packWholeB(true, pr + (<usize>(2 * H * H) << 2), H, H, H, rhPk);
      }
      const pp = ps.ptr != 0 ? ps.ptr + (<usize>(d * 3 * H) << 2) : 0;

      for (let s = 0; s < maxLen; s++) {
        // H·Rᵀ over the batch (GRU without linear_before_reset: the z and r rows only)
        if (packR) sgemmPackedB(false, B, nrec, H, 1, hs, H, rPk, 0, rec, GH);
        else if (H > 0) sgemm(false, true, B, nrec, H, 1, hs, H, pr, H, 0, rec, GH);
        for (let b = 0; b < B; b++) {
          const L = unchecked(lens[b]);
          if (s >= L) continue;
          const t = reverse ? L - 1 - s : s;
          const q = layout == 0 ? t * B + b : b * T + t;
          const gx = xw + (<usize>q * <usize>GH << 2);
          const g = rec + (<usize>(b * GH) << 2);
          const ph = hs + (<usize>(b * H) << 2);
          const nrow = kind == K_GRU ? 2 * H : GH;
          for (let j = 0; j < nrow; j++) store<f32>(fptr(g, j), load<f32>(fptr(g, j)) + load<f32>(fptr(gx, j)));
          if (kind == K_RNN) {
            activate(acts.codes[a0], acts.alpha[a0], acts.beta[a0], hasClip, clip, g, H);
            memory.copy(ph, g, <usize>H << 2);
          } else if (kind == K_GRU) {
            // z and r
            activate(acts.codes[a0], acts.alpha[a0], acts.beta[a0], hasClip, clip, g, 2 * H);
            if (!lbr) {
              const prh = rh + (<usize>(b * H) << 2);
              for (let j = 0; j < H; j++) {
                store<f32>(fptr(prh, j), load<f32>(fptr(g, H + j)) * load<f32>(fptr(ph, j)));
              }
            }
          } else {
            this.lstmRow(acts, a0, hasClip, clip, inputForget, pp, g, ph, cs + (<usize>(b * H) << 2), tmp, H);
          }
        }
        if (kind == K_GRU) {
          if (rhPkRaw != 0) sgemmPackedB(false, B, H, H, 1, rh, H, rhPk, 0, rhr, H);
          else if (!lbr && H > 0) sgemm(false, true, B, H, H, 1, rh, H, pr + (<usize>(2 * H * H) << 2), H, 0, rhr, H);
          for (let b = 0; b < B; b++) {
            const L = unchecked(lens[b]);
            if (s >= L) continue;
            const t = reverse ? L - 1 - s : s;
            const q = layout == 0 ? t * B + b : b * T + t;
            const gx = xw + (<usize>q * <usize>GH << 2) + (<usize>(2 * H) << 2);
            const g = rec + (<usize>(b * GH) << 2);
            const ph = hs + (<usize>(b * H) << 2);
            const gh = g + (<usize>(2 * H) << 2);
            for (let j = 0; j < H; j++) {
              const rj = load<f32>(fptr(g, H + j));
              const v = lbr ? rj * (load<f32>(fptr(gh, j)) + load<f32>(fptr(biasRh, j)))
                : load<f32>(fptr(rhr + (<usize>(b * H) << 2), j));
              store<f32>(fptr(gh, j), load<f32>(fptr(gx, j)) + v);
            }
            activate(acts.codes[a0 + 1], acts.alpha[a0 + 1], acts.beta[a0 + 1], hasClip, clip, gh, H);
            for (let j = 0; j < H; j++) {
              const z = load<f32>(fptr(g, j));
              store<f32>(fptr(ph, j), (1 - z) * load<f32>(fptr(gh, j)) + z * load<f32>(fptr(ph, j)));
            }
          }
        }
        if (y != null) {
          for (let b = 0; b < B; b++) {
            const L = unchecked(lens[b]);
            if (s >= L) continue;
            const t = reverse ? L - 1 - s : s;
            const yi = layout == 0 ? ((t * nd + d) * B + b) * H : ((b * T + t) * nd + d) * H;
            memory.copy(fptr(y.ptr, yi), hs + (<usize>(b * H) << 2), <usize>H << 2);
          }
        }
      }
      // final states (zero for a sequence of length 0)
      for (let b = 0; b < B; b++) {
        if (unchecked(lens[b]) == 0) continue;
        const si = layout == 0 ? (d * B + b) * H : (b * nd + d) * H;
        if (yh != null) memory.copy(fptr(yh.ptr, si), hs + (<usize>(b * H) << 2), <usize>H << 2);
        if (yc != null) memory.copy(fptr(yc.ptr, si), cs + (<usize>(b * H) << 2), <usize>H << 2);
      }
    }

    heap.free(xw);
    heap.free(rec);
    heap.free(hs);
    heap.free(cs);
    heap.free(rh);
    heap.free(rhr);
    heap.free(biasX);
    heap.free(biasRh);
    heap.free(tmp);
    if (rPkRaw != 0) heap.free(rPkRaw);
    if (rhPkRaw != 0) heap.free(rhPkRaw);
    xs.release();
    ws.release();
    rs.release();
    bs.release();
    h0.release();
    c0.release();
    ps.release();
    if (y != null) y.finish();
    if (yh != null) yh.finish();
    if (yc != null) yc.finish();
    return true;
  }

  /**
   * One LSTM step of one batch row: g holds the pre-activations i, o, f, c (X·Wᵀ + H·Rᵀ + biases);
   * updates the cell state pc and hidden state ph in place; pp: peepholes i, o, f (or 0).
   */
  lstmRow(acts: Acts, a0: i32, hasClip: bool, clip: f32, inputForget: bool, pp: usize, g: usize, ph: usize,
    pc: usize, tmp: usize, H: i32): void {
    const gi = g, go = fptr(g, H), gf = fptr(g, 2 * H), gc = fptr(g, 3 * H);
    const fC = acts.codes[a0], fA = acts.alpha[a0], fB = acts.beta[a0];
    if (pp != 0) {
      for (let j = 0; j < H; j++) {
        const cp = load<f32>(fptr(pc, j));
        store<f32>(fptr(gi, j), load<f32>(fptr(gi, j)) + load<f32>(fptr(pp, j)) * cp);
        store<f32>(fptr(gf, j), load<f32>(fptr(gf, j)) + load<f32>(fptr(pp, 2 * H + j)) * cp);
      }
    }
    activate(fC, fA, fB, hasClip, clip, gi, H);
    if (inputForget) {
      for (let j = 0; j < H; j++) store<f32>(fptr(gf, j), 1 - load<f32>(fptr(gi, j)));
    } else {
      activate(fC, fA, fB, hasClip, clip, gf, H);
    }
    activate(acts.codes[a0 + 1], acts.alpha[a0 + 1], acts.beta[a0 + 1], hasClip, clip, gc, H);
    for (let j = 0; j < H; j++) {
      const c = load<f32>(fptr(gf, j)) * load<f32>(fptr(pc, j)) + load<f32>(fptr(gi, j)) * load<f32>(fptr(gc, j));
      store<f32>(fptr(pc, j), c);
      if (pp != 0) store<f32>(fptr(go, j), load<f32>(fptr(go, j)) + load<f32>(fptr(pp, H + j)) * c);
    }
    activate(fC, fA, fB, hasClip, clip, go, H);
    // h(Ct): the cell state itself is not clipped
    memory.copy(tmp, pc, <usize>H << 2);
    activate(acts.codes[a0 + 2], acts.alpha[a0 + 2], acts.beta[a0 + 2], false, 0, tmp, H);
    for (let j = 0; j < H; j++) store<f32>(fptr(ph, j), load<f32>(fptr(go, j)) * load<f32>(fptr(tmp, j)));
  }
}

export function registerRnn(): void {
  registerOp(new RecurrentOp("RNN", K_RNN));
  registerOp(new RecurrentOp("GRU", K_GRU));
  registerOp(new RecurrentOp("LSTM", K_LSTM));
}
