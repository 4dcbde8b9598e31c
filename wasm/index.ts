// The WASM boundary (stub; owned by the core).
import { registerAllOps } from "./ops/all";
import { opNames } from "./ops/registry";

export function opCount(): i32 {
  registerAllOps();
  return opNames().length;
}
import { Shape, broadcastLens } from "./ir/shape";
import { Tensor } from "./ir/tensor";
import { Attrs, Attr } from "./ir/attrs";
import { ShapeContext } from "./ops/op";
import { diagnosticsJson } from "./ir/diag";
export function _check(): i32 {
  const s = Shape.standard(1, [2, 3]);
  const t = Tensor.alloc(s);
  t.setFromF64(0, 1.5);
  const a = new Attrs();
  a.set("x", Attr.int(3));
  const c = new ShapeContext("n", "Add", a, 18, [s], [t], 1);
  const b = broadcastLens([1, 3], [2, 1]);
  return <i32>t.getAsF64(0) + <i32>a.getInt("x", 0) + c.count() + (b == null ? 0 : b.length) + diagnosticsJson().length;
}
