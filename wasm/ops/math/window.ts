// Window generators (opset 17): HannWindow, HammingWindow, BlackmanWindow. The size input
// decides the output shape, so it must be a compile-time constant.
import { DT_FLOAT, dtypeSize, isSupported } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { storeF64 } from "../../kernels/eltwise";

const W_HANN: i32 = 0;
const W_HAMMING: i32 = 1;
const W_BLACKMAN: i32 = 2;

class WindowOp extends Op {
  kind: i32;

  constructor(name: string, kind: i32) {
    super(name, 0);
    this.kind = kind;
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0)) return ctx.fail("input size is required");
    const c = ctx.constInts(0);
    if (c == null) return ctx.needConstant(0, "size");
    if (c.length != 1 || c[0] < 0) return ctx.fail("size must be a non-negative scalar");
    const dt = <i32>ctx.attrs.getInt("output_datatype", DT_FLOAT);
    if (!isSupported(dt)) return ctx.fail("unsupported output_datatype " + dt.toString());
    ctx.out(Shape.standard(dt, [<i32>c[0]]));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const o = ctx.output(0);
    const n = o.elements();
    const periodic = ctx.attrs.getInt("periodic", 1) != 0;
    const denom: f64 = periodic ? <f64>n : <f64>(n - 1);
    const dt = o.shape.dtype;
    const sz = <usize>dtypeSize(dt);
    for (let i = 0; i < n; i++) {
      const a = 2.0 * Math.PI * <f64>i / denom;
      let v: f64;
      if (this.kind == W_HANN) v = 0.5 - 0.5 * Math.cos(a);
      else if (this.kind == W_HAMMING) v = 25.0 / 46.0 - (21.0 / 46.0) * Math.cos(a);
      else v = 0.42 - 0.5 * Math.cos(a) + 0.08 * Math.cos(2.0 * a);
      storeF64(dt, o.ptr + <usize>i * sz, v);
    }
    return true;
  }
}

export function registerWindows(): void {
  registerOp(new WindowOp("HannWindow", W_HANN));
  registerOp(new WindowOp("HammingWindow", W_HAMMING));
  registerOp(new WindowOp("BlackmanWindow", W_BLACKMAN));
}
