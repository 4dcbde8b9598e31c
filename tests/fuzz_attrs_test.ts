// Extreme attribute and input values on every ONNX backend node test model (huge, negative,
// overflowing, NaN, infinite): importing, compiling and running must end in a result or a
// KilnError that is not "internal" (a trap in the core). Found and fixed this way: conv/pool
// geometry past i32, Resize sizes past i32, and a shape guard for every op (no negative dim,
// nothing past the core's 4 GiB).
import assert from "node:assert/strict";
import { compile, KilnError, parseOnnx, readTensorProto } from "../mod.ts";
import { onnx } from "../core/onnx/onnx_pb.js";
import type { Tensor } from "../core/tensor.ts";
import { NODE_TEST_DIR, nodeTestsMissing } from "./conformance/run.ts";

const INTS = [-(2 ** 40), -1, 2 ** 30, 2 ** 31, 2 ** 40, 65535];
const FLOATS = [NaN, Infinity, -Infinity, 1e30];
const T = onnx.AttributeProto.AttributeType;

/** Compiles (binding inputs as constants when a shape needs them) and runs; a finding or null. */
async function _try(what: string, bytes: Uint8Array, inputs: Record<string, Tensor>): Promise<string | null> {
  for (const constant of [false, true]) {
    try {
      const p = compile(await parseOnnx(bytes, constant ? { constantInputs: inputs } : {}), "ref");
      try {
        const big = p.outputs.some((o) => o.dims.reduce((x, y) => x * y, 1) > 1e7) ||
          p.info().arenaBytes > 256e6;
        if (!big) await p.eval(constant ? {} : inputs);
      } finally {
        p.dispose();
      }
      return null;
    } catch (e) {
      if (e instanceof KilnError && e.code === "needs_constant" && !constant) continue;
      if (e instanceof KilnError && e.code !== "internal") return null;
      return `${what}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message?.slice(0, 200)}`;
    }
  }
  return null;
}

const missing = nodeTestsMissing();
if (missing) console.log(`attribute fuzz skipped: ${missing}`);

Deno.test({
  name: "extreme attributes and inputs on the ONNX node test models never trap the core",
  ignore: missing !== null,
  sanitizeResources: false,
  async fn() {
    const findings: string[] = [];
    let cases = 0;
    // KILN_FUZZ_FILTER=SUBSTR limits the run to the test folders whose names contain it
    const only = Deno.env.get("KILN_FUZZ_FILTER");
    const names = [...Deno.readDirSync(NODE_TEST_DIR)].filter((e) =>
      e.isDirectory && (!only || e.name.includes(only))
    )
      .map((e) => e.name).sort();
    for (const name of names) {
      const dir = `${NODE_TEST_DIR}/${name}`;
      let bytes: Uint8Array;
      const inputs: Record<string, Tensor> = {};
      try {
        bytes = await Deno.readFile(`${dir}/model.onnx`);
        const g = onnx.ModelProto.decode(bytes).graph!;
        const init = new Set((g.initializer ?? []).map((t) => t.name));
        const ins = (g.input ?? []).filter((v) => !init.has(v.name));
        for (let i = 0; i < ins.length; i++) {
          inputs[ins[i].name!] = readTensorProto(await Deno.readFile(`${dir}/test_data_set_0/input_${i}.pb`));
        }
      } catch {
        continue; // not a tensor test (sequences, optionals): the conformance report covers those
      }
      // integer and float inputs set to extremes (shapes, indices, counts, scales)
      for (const [iname, t] of Object.entries(inputs)) {
        const isF = t.dtype === "float32" || t.dtype === "float64";
        if (!isF && t.dtype !== "int64" && t.dtype !== "int32") continue;
        for (const v of isF ? FLOATS : INTS) {
          const data = t.data.slice();
          data[0] = (isF ? v : t.dtype === "int64" ? BigInt(v) : v | 0) as never;
          cases++;
          const f = await _try(`${name}: input ${iname}[0] = ${v}`, bytes, {
            ...inputs,
            [iname]: { ...t, data },
          });
          if (f) findings.push(f);
        }
      }
      // node attributes set to extremes
      const nodes = onnx.ModelProto.decode(bytes).graph!.node ?? [];
      for (let ni = 0; ni < nodes.length; ni++) {
        for (const a of nodes[ni].attribute ?? []) {
          const isF = a.type === T.FLOAT || a.type === T.FLOATS;
          if (!isF && a.type !== T.INT && a.type !== T.INTS) continue;
          for (const v of isF ? FLOATS : INTS) {
            const m = onnx.ModelProto.decode(bytes);
            const at = m.graph!.node![ni].attribute!.find((x) => x.name === a.name)!;
            if (a.type === T.INT) at.i = v;
            else if (a.type === T.FLOAT) at.f = v;
            else if (a.type === T.INTS) at.ints = [v, ...(at.ints ?? []).slice(1)];
            else at.floats = [v, ...(at.floats ?? []).slice(1)];
            cases++;
            const f = await _try(
              `${name}: ${nodes[ni].op_type}.${a.name} = ${v}`,
              onnx.ModelProto.encode(m).finish(),
              inputs,
            );
            if (f) findings.push(f);
          }
        }
      }
    }
    console.log(`attribute fuzz: ${cases} cases, ${findings.length} findings`);
    assert.deepEqual(findings, []);
  },
});
