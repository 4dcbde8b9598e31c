// Float32 views of tensors for ops computed in float32 whatever their float type (Conv, pooling,
// RNN/GRU/LSTM): a float32 tensor's own memory, or a converted scratch copy.
import { DT_FLOAT } from "../ir/dtype";
import { Tensor } from "../ir/tensor";

/** A float32 view of t: t's own memory, or a converted copy (owned: freed by release()). */
export class F32View {
  ptr: usize;
  owned: bool;
  constructor(t: Tensor | null) {
    if (t == null) {
      this.ptr = 0;
      this.owned = false;
    } else if (t.shape.dtype == DT_FLOAT) {
      this.ptr = t.ptr;
      this.owned = false;
    } else {
      const n = t.elements();
      this.ptr = heap.alloc(<usize>(n > 0 ? n : 1) << 2);
      this.owned = true;
      for (let i = 0; i < n; i++) store<f32>(this.ptr + (<usize>i << 2), <f32>t.getAsF64(i));
    }
  }
  release(): void {
    if (this.owned) heap.free(this.ptr);
  }
}

/** Output float32 buffer for t (t's memory, or a scratch copied back by finish()); zero-filled when asked. */
export class F32Out {
  t: Tensor;
  ptr: usize;
  constructor(t: Tensor, zero: bool = false) {
    this.t = t;
    const n = t.elements();
    this.ptr = t.shape.dtype == DT_FLOAT ? t.ptr : heap.alloc(<usize>(n > 0 ? n : 1) << 2);
    if (zero) memory.fill(this.ptr, 0, <usize>n << 2);
  }
  finish(): void {
    if (this.t.shape.dtype == DT_FLOAT) return;
    const n = this.t.elements();
    for (let i = 0; i < n; i++) this.t.setFromF64(i, <f64>load<f32>(this.ptr + (<usize>i << 2)));
    heap.free(this.ptr);
  }
}
