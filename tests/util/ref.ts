/**
 * Runs a model once on the `ref` target: the op tests' side of a comparison with onnxruntime
 * (tests/util/ort.ts runs the other).
 * @module
 */
import { parseOnnx } from "../../core/onnx/import.ts";
import { compile } from "../../core/program.ts";
import type { Tensor } from "../../core/tensor.ts";

/** Compiles `model` for `ref`, evaluates it on `inputs` and disposes of the program. */
export async function evalOnRef(
  model: Uint8Array,
  inputs: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const program = compile(await parseOnnx(model), "ref");
  try {
    return await program.eval(inputs);
  } finally {
    program.dispose();
  }
}
