// Registers every op family. One line per family file.
import { registerControl } from "./control";
import { registerConv } from "./conv";
import { registerElementwise } from "./elementwise";
import { registerFused } from "./fused";
import { registerLinalg } from "./linalg";
import { registerNorm } from "./norm";
import { registerReduce } from "./reduce";
import { registerShapeOps } from "./shape_ops";
import { registerIndexing } from "./indexing";
import { registerDynamic } from "./dynamic";
import { registerSignal } from "./signal";
import { registerRnn } from "./rnn";

let registered = false;

export function registerAllOps(): void {
  if (registered) return;
  registered = true;
  registerElementwise();
  registerFused();
  registerReduce();
  registerNorm();
  registerShapeOps();
  registerIndexing();
  registerLinalg();
  registerConv();
  registerControl();
  registerDynamic();
  registerSignal();
  registerRnn();
}
