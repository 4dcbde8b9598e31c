// Data movement and shape arithmetic: Reshape Flatten Squeeze Unsqueeze Transpose Concat
// Split Slice Expand Tile Pad Shape Size ConstantOfShape Range Identity Dropout Trilu
// DepthToSpace SpaceToDepth EyeLike ReverseSequence. ONNX semantics at the model's opset, every stored
// dtype; contiguous runs move with memory.copy (data/util.ts copyView).
//
// One family file per concept in shape/:
//   reshape.ts       Reshape Flatten Squeeze Unsqueeze (pure reshapes), Identity Dropout
//   layout.ts        Transpose DepthToSpace SpaceToDepth
//   concat_split.ts  Concat Split
//   slice.ts         Slice
//   expand_tile.ts   Expand Tile
//   pad.ts           Pad
//   generators.ts    Shape Size ConstantOfShape Range EyeLike Trilu
//   reverse_sequence.ts ReverseSequence
import { registerReshapeOps } from "./shape/reshape";
import { registerLayoutOps } from "./shape/layout";
import { registerConcatSplitOps } from "./shape/concat_split";
import { registerSliceOps } from "./shape/slice";
import { registerExpandTileOps } from "./shape/expand_tile";
import { registerPadOps } from "./shape/pad";
import { registerGeneratorOps } from "./shape/generators";
import { registerReverseSequence } from "./shape/reverse_sequence";

export function registerShapeOps(): void {
  registerReshapeOps();
  registerLayoutOps();
  registerConcatSplitOps();
  registerSliceOps();
  registerExpandTileOps();
  registerPadOps();
  registerGeneratorOps();
  registerReverseSequence();
}
