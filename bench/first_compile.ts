/**
 * One compile with the weights as a process's first program, for bench/swap.ts: run in a fresh
 * process, so the core's memory is fresh (each page faulted in at its first write) and nothing is
 * warm but the page cache. With `--engine ort`, onnxruntime-node's first session instead (its
 * native library loaded before the clock starts, as kiln's core module is compiled inside it).
 * Prints one JSON line: the phases in ms.
 *
 *   deno run -A bench/first_compile.ts --engine kiln|ort --model PATH --dims name=1,128[;name2=...]
 * @module
 */
import { parseArgs } from "node:util";
import { compile, generateInputs, parseOnnx } from "../mod.ts";
import { programInternals } from "../core/program.ts";
import { ortNodeSession } from "./peers.ts";
import { timed } from "./util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    engine: { type: "string", default: "kiln" },
    model: { type: "string" },
    dims: { type: "string", default: "" },
  },
});
if (!values.model) throw new Error("--model is required");
const inputDims: Record<string, number[]> = {};
for (const part of values.dims!.split(";").filter((s) => s)) {
  const [k, v] = part.split("=");
  inputDims[k] = v.split(",").map(Number);
}

if (values.engine === "ort") {
  const s = await ortNodeSession(values.model, { intraOpThreads: 1 });
  console.log(JSON.stringify({ createMs: s.createMs }));
  await s.release();
} else {
  const [parseMs, model] = await timed(() => parseOnnx(values.model!, { inputDims }));
  const [compileMs, program] = await timed(() => compile(model, "ref"));
  // the prepare step runs at the first eval (timed inside the program, as in bench/swap.ts); the
  // inputs only have to be valid: zeros (token 0, a black image)
  const feeds = generateInputs(program);
  for (const t of Object.values(feeds)) {
    if (t.data instanceof BigInt64Array) t.data.fill(0n);
    else t.data.fill(0 as never);
  }
  await program.eval(feeds);
  console.log(JSON.stringify({ parseMs, compileMs, prepareMs: programInternals(program).lastPrepareMs }));
  program.dispose();
}
