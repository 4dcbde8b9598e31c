// ReverseSequence: reverses the first sequence_lens[b] steps of every batch entry along the time
// axis; batch_axis and time_axis are 0 and 1 (either way round), so each (time, batch) cell is
// one contiguous block of the inner dims, moved with memory.copy.
import { DT_INT32, DT_INT64 } from "../../ir/dtype";
import { Shape } from "../../ir/shape";
import { ComputeContext, Op, OP_WRITES_ALL, ShapeContext } from "../op";
import { registerOp } from "../registry";
import { movable } from "../data/util";

class ReverseSequenceOp extends Op {
  constructor() {
    super("ReverseSequence", OP_WRITES_ALL);
  }

  computeShape(ctx: ShapeContext): bool {
    if (!ctx.hasInput(0) || !ctx.hasInput(1)) return ctx.fail("inputs input and sequence_lens are required");
    const x = ctx.input(0), sl = ctx.input(1);
    if (!movable(x.dtype)) return ctx.failDtype(0);
    if (sl.dtype != DT_INT64 && sl.dtype != DT_INT32) return ctx.failDtype(1);
    if (x.rank() < 2) return ctx.fail("input must have rank 2 or more, is " + x.toString());
    const ba = ctx.attrs.getInt("batch_axis", 1), ta = ctx.attrs.getInt("time_axis", 0);
    if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0))) {
      return ctx.fail("batch_axis and time_axis must be 0 and 1 (one each), are " + ba.toString() + " and " + ta.toString());
    }
    if (sl.rank() != 1 || sl.lens[0] != x.lens[<i32>ba]) {
      return ctx.fail("sequence_lens " + sl.toString() + " must have one value per batch entry (" +
        x.lens[<i32>ba].toString() + ")");
    }
    ctx.out(Shape.standard(x.dtype, x.lens));
    return true;
  }

  compute(ctx: ComputeContext): bool {
    const x = ctx.input(0), sl = ctx.input(1), y = ctx.output(0);
    const timeFirst = ctx.attrs.getInt("time_axis", 0) == 0;
    const lens = x.shape.lens;
    const T = timeFirst ? lens[0] : lens[1], B = timeFirst ? lens[1] : lens[0];
    let inner: i32 = 1;
    for (let d = 2; d < lens.length; d++) inner *= lens[d];
    const blk = <usize>inner * <usize>x.shape.elementSize();
    for (let b = 0; b < B; b++) {
      const s = sl.getAsI64(b);
      if (s < 0 || s > <i64>T) {
        return ctx.fail("sequence_lens[" + b.toString() + "] is " + s.toString() + ", outside [0, " + T.toString() + "]");
      }
      const n = <i32>s;
      for (let t = 0; t < T; t++) {
        const src = t < n ? n - 1 - t : t;
        const di = timeFirst ? <usize>t * <usize>B + <usize>b : <usize>b * <usize>T + <usize>t;
        const si = timeFirst ? <usize>src * <usize>B + <usize>b : <usize>b * <usize>T + <usize>src;
        memory.copy(y.ptr + di * blk, x.ptr + si * blk, blk);
      }
    }
    return true;
  }
}

export function registerReverseSequence(): void {
  registerOp(new ReverseSequenceOp());
}
