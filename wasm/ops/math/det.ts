// Det: determinants of the trailing square matrices ([*, M, M] -> [*]) by LU decomposition with
// partial pivoting, in float64.
import { dtypeSize, isFloat } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { loadF64, storeF64 } from "../../kernels/eltwise";

class DetOp extends Op {
  constructor() {
    super("Det", 0);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input X is required");
    const x = ctx.input(0);
    if (!isFloat(x.dtype)) return ctx.failDtype(0);
    const r = x.rank();
    if (r < 2 || x.lens[r - 1] != x.lens[r - 2]) {
      return ctx.fail("input must end in a square matrix [*, M, M], got " + x.toString());
    }
    ctx.out(Shape.standard(x.dtype, x.lens.slice(0, r - 2)));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0);
    const o = ctx.output(0);
    const r = x.shape.rank();
    const m = x.shape.lens[r - 1];
    const count = o.elements();
    const dt = x.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    const a = new StaticArray<f64>(m * m);
    for (let b = 0; b < count; b++) {
      const base = x.ptr + <usize>b * <usize>(m * m) * sz;
      for (let i = 0; i < m * m; i++) unchecked(a[i] = loadF64(dt, base + <usize>i * sz));
      let det: f64 = 1;
      for (let k = 0; k < m && det != 0; k++) {
        let p = k;
        for (let i = k + 1; i < m; i++) {
          if (Math.abs(unchecked(a[i * m + k])) > Math.abs(unchecked(a[p * m + k]))) p = i;
        }
        if (unchecked(a[p * m + k]) == 0) { det = 0; break; }
        if (p != k) {
          for (let j = 0; j < m; j++) {
            const t = unchecked(a[k * m + j]);
            unchecked(a[k * m + j] = unchecked(a[p * m + j]));
            unchecked(a[p * m + j] = t);
          }
          det = -det;
        }
        const piv = unchecked(a[k * m + k]);
        det *= piv;
        for (let i = k + 1; i < m; i++) {
          const f = unchecked(a[i * m + k]) / piv;
          for (let j = k + 1; j < m; j++) unchecked(a[i * m + j] -= f * unchecked(a[k * m + j]));
        }
      }
      storeF64(o.shape.dtype, o.ptr + <usize>b * sz, det);
    }
    return true;
  }
}

export function registerDet(): void {
  registerOp(new DetOp());
}
