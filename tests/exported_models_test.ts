// Models made by exporters, not by kiln's own writer (tests/fixtures/exported, written by
// tools/make_exported_models.py on a machine with PyTorch and onnxruntime): a BERT quantized by
// onnxruntime's quantize_dynamic (DynamicQuantizeLinear + MatMulInteger, int8 weights) and a
// bidirectional LSTM exported by torch.onnx. Each runs on ref against onnxruntime-node with its
// exporter's weights and a seeded second set: compiled once with deferred weights, both sets
// bound in turn, the second baked, saved and loaded.
import assert from "node:assert/strict";
import {
  compile,
  load,
  parseOnnx,
  replaceOnnxExternalWeights,
  save,
  type Tensor,
  WeightSet,
} from "../mod.ts";
import { SeededRandom, writeRandomWeights } from "../core/weights/random.ts";
import { allFinite, relativeL2 } from "./conformance/compare.ts";
import { runOrt } from "./util/ort.ts";

const FIXTURES = new URL("./fixtures/exported/", import.meta.url).pathname;
const REL_L2_BAR = 1e-4;

interface Fixture {
  name: string;
  input: string;
  /** the op the model exists to cover */
  op: string;
  make(rng: SeededRandom): Tensor;
}

const MODELS: Fixture[] = [
  {
    name: "bert_int8",
    input: "ids",
    op: "MatMulInteger",
    make(rng) {
      const ids = new BigInt64Array(16);
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt(rng.int(256));
      return { dtype: "int64", dims: [1, 16], data: ids };
    },
  },
  {
    name: "lstm",
    input: "x",
    op: "LSTM",
    make(rng) {
      const x = new Float32Array(2 * 10 * 8);
      rng.fillNormal(x, 0, 1);
      return { dtype: "float32", dims: [2, 10, 8], data: x };
    },
  },
];

function _close(label: string, got: Record<string, Tensor>, want: Record<string, Tensor>): void {
  for (const [name, ref] of Object.entries(want)) {
    assert.ok(got[name], `${label}: no output '${name}'`);
    assert.deepEqual(got[name].dims, ref.dims, `${label}: '${name}' dims`);
    assert.ok(allFinite(got[name]), `${label}: '${name}' not finite`);
    const e = relativeL2(got[name], ref);
    assert.ok(e <= REL_L2_BAR, `${label}: '${name}' relative L2 ${e.toExponential(2)} > ${REL_L2_BAR}`);
  }
}

for (const m of MODELS) {
  Deno.test(`exported ${m.name}: deferred weights, two weight sets, bake, save and load against onnxruntime`, async (t) => {
    const dir = `${FIXTURES}${m.name}`;
    const model = `${dir}/model.onnx`;
    const tmp = await Deno.makeTempDir({ prefix: `kiln_exported_${m.name}_` });
    const program = compile(await parseOnnx(model, { deferExternalWeights: true }), "ref");
    try {
      const x = { [m.input]: m.make(new SeededRandom(7)) };
      assert.ok(program.info().ops[m.op] > 0, `${m.name} has no ${m.op}`);
      assert.ok(program.weights.length > 0, `${m.name}: no deferred weights`);
      const v2 = (await writeRandomWeights(model, tmp, { seed: 31 })).modelPath;
      const want1 = await runOrt(model, x);
      const want2 = await runOrt(v2, x);
      await t.step("the exporter's weights", async () => {
        await program.bindWeights(await WeightSet.fromOnnxDir(program, dir));
        _close(`${m.name} v1`, await program.eval(x), want1);
      });
      await t.step("a seeded second set, bound without recompiling", async () => {
        await program.bindWeights(await WeightSet.fromOnnxDir(program, tmp));
        const got = await program.eval(x);
        _close(`${m.name} v2`, got, want2);
        for (const name of Object.keys(want1)) {
          assert.ok(
            relativeL2(got[name], want1[name]) > 1e-2,
            `${m.name}: the swap changed nothing in '${name}'`,
          );
        }
      });
      await t.step("baked with the second set, saved and loaded", async () => {
        const baked = await replaceOnnxExternalWeights(program, tmp, "ref");
        assert.equal(baked.weights.length, 0);
        await save(baked, `${tmp}/baked.kiln`);
        const loaded = await load(`${tmp}/baked.kiln`);
        try {
          _close(`${m.name} baked`, await loaded.eval(x), want2);
        } finally {
          loaded.dispose();
        }
      });
    } finally {
      program.dispose();
      await Deno.remove(tmp, { recursive: true });
    }
  });
}
