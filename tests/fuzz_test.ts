// Corrupted inputs, seeded: model files, program files, IR sections, safetensors files and
// headers, .npy headers with bytes flipped, truncated or spliced, or mutated field by field, must
// either work (and then hold what the bytes say) or fail with a KilnError (a clear message naming
// the file), never with another exception (a crash of the importer, the decoder or the core).
// The fuzzers are in tests/util/fuzz.ts; tools/fuzz_long.ts runs them for 100,000+ cases.
import assert from "node:assert/strict";
import { KilnError, parseOnnx } from "../mod.ts";
import {
  fuzzIrSections,
  fuzzNpyHeaders,
  fuzzOnnxModels,
  fuzzProgramFiles,
  type FuzzReport,
  fuzzSafetensorsFiles,
  fuzzSafetensorsHeaders,
} from "./util/fuzz.ts";

/** No findings; some cases loaded and some were refused (both paths were taken). */
function _check(r: FuzzReport): void {
  assert.deepEqual(r.findings, []);
  assert.equal(r.loaded + r.refused, r.cases);
  assert.ok(r.loaded > 0 && r.refused > 0, `${r.parser}: ${r.loaded} loaded, ${r.refused} refused`);
}

Deno.test("corrupted ONNX models fail with a KilnError or still work, never crash (300 seeded mutants)", async () => {
  _check(await fuzzOnnxModels({ seed: 2026, cases: 300 }));
});

Deno.test("corrupted .kiln program files fail with a KilnError or still work, never crash (200 seeded mutants)", async () => {
  _check(await fuzzProgramFiles({ seed: 7, cases: 200 }));
});

Deno.test("corrupted safetensors files fail with a KilnError or still bind, never crash (200 seeded mutants)", async () => {
  _check(await fuzzSafetensorsFiles({ seed: 11, cases: 200 }));
});

Deno.test("safetensors headers mutated field by field load exactly what they say or fail naming the file (2000 cases)", async () => {
  const r = await fuzzSafetensorsHeaders({ seed: 5, cases: 2000 });
  _check(r);
  assert.ok(r.loaded > 400 && r.refused > 400, `${r.loaded} loaded, ${r.refused} refused`);
});

Deno.test(".npy headers mutated field by field load exactly what they say or fail naming the file (3000 cases)", async () => {
  const r = await fuzzNpyHeaders({ seed: 3, cases: 3000 });
  _check(r);
  assert.ok(r.loaded > 600 && r.refused > 600, `${r.loaded} loaded, ${r.refused} refused`);
});

Deno.test("findings of longer fuzz runs stay fixed: a GRAPH or TENSOR attribute that holds none", async () => {
  const { onnx } = await import("../core/onnx/onnx_pb.js");
  const T = onnx.AttributeProto.AttributeType;
  for (const [type, kind] of [[T.GRAPH, "graph"], [T.TENSOR, "tensor"]] as const) {
    const bytes = onnx.ModelProto.encode({
      ir_version: 8,
      opset_import: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        input: [{ name: "c", type: { tensor_type: { elem_type: 9, shape: { dim: [] } } } }],
        output: [{ name: "y", type: { tensor_type: { elem_type: 1, shape: { dim: [] } } } }],
        node: [{
          op_type: "If",
          name: "if0",
          input: ["c"],
          output: ["y"],
          attribute: [{ name: "then_branch", type }],
        }],
      },
    }).finish();
    const e = await parseOnnx(bytes).then(() => undefined, (e) => e);
    assert.ok(e instanceof KilnError, String(e));
    assert.match(
      e.message,
      new RegExp(`Attribute 'then_branch' of node 'if0' \\(If\\) has type \\w+ but holds no ${kind}`),
    );
  }
});

Deno.test("a corrupted IR section (past the file checksums) fails with a KilnError, never a trap (300 seeded mutants)", async () => {
  _check(await fuzzIrSections({ seed: 1, cases: 300 }));
});
