/**
 * Rewrites the shared `gpt2_dynamo.onnx` (exported by PyTorch with its sequence length fixed to 128)
 * into a graph whose length is symbolic (`ids: int64[1, seq]`, seq up to 128), for the dynamic-shapes
 * benchmark (bench/dynamic.ts): the 128 in every Reshape shape becomes -1 (a -1 the export had
 * there is written out: batch 1, 12 heads); the position ids and the two causal-mask tensors
 * (external in the export; written here inline: 0..127, the lower triangle, all true) are sliced
 * to the actual length, read from `Shape(ids)`. The weights stay external
 * (`gpt2_dynamo.onnx.data`, not shipped: make a seeded set with `kiln weights random`).
 *
 * deno run -A tools/gpt2_dynamic_seq.ts ../shared/models/gpt2_dynamo.onnx OUT.onnx
 * @module
 */
import { onnx } from "../core/onnx/onnx_pb.js";

const _INT64 = 7, _BOOL = 9;
/** What the -1 of the export's Reshape shapes that also hold 128 stands for (GPT-2 small, batch 1). */
const _RESOLVED: Record<string, number> = {
  "-1,128": 1,
  "1,128,-1,64": 12,
  "-1,128,64": 12,
  "-1,128,768": 1,
};

function _i64(name: string, vals: number[], dims = [vals.length]): onnx.ITensorProto {
  const raw = new Uint8Array(new BigInt64Array(vals.map(BigInt)).buffer);
  return { name, data_type: _INT64, dims, raw_data: raw };
}

/** The rewritten model's bytes. */
export function dynamicSeqGpt2(bytes: Uint8Array): Uint8Array {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const L = 128;
  const ids = g.input!.find((v) => v.name === "ids");
  const dims = ids?.type?.tensor_type?.shape?.dim;
  if (!dims || dims.length !== 2 || Number(dims[1].dim_value) !== L) {
    throw new Error("Expected gpt2_dynamo.onnx: input 'ids' int64[1,128]");
  }
  dims[1] = { dim_param: "seq" } as onnx.TensorShapeProto.IDimension;
  const out = g.output![0].type?.tensor_type?.shape?.dim;
  if (out && out.length === 3) out[1] = { dim_param: "seq" } as onnx.TensorShapeProto.IDimension;
  const reshapeShapes = new Set(g.node!.filter((n) => n.op_type === "Reshape").map((n) => n.input![1]));
  const inits: onnx.ITensorProto[] = [];
  for (const t of g.initializer!) {
    if (reshapeShapes.has(t.name!) && t.raw_data?.length) {
      const v = Array.from(new BigInt64Array(t.raw_data.slice().buffer)).map(Number);
      if (v.filter((x) => x === L).length === 1) {
        // 128 becomes -1; a -1 the export already had is written out (batch 1, 12 heads)
        const known = v.map((x) => (x === L ? -1 : x === -1 ? _RESOLVED[v.join(",")] : x));
        if (known.some((x) => x === undefined)) {
          throw new Error(`Unexpected Reshape shape [${v}] in '${t.name}'`);
        }
        inits.push(_i64(t.name!, known as number[]));
        continue;
      }
    }
    if (t.name === "unsqueeze") {
      inits.push(_i64("unsqueeze_full", Array.from({ length: L }, (_, i) => i), [1, L]));
      continue;
    }
    if (t.name === "le" || t.name === "eq") {
      const raw = new Uint8Array(L * L);
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < L; j++) {
          raw[i * L + j] = t.name === "eq" || j <= i ? 1 : 0;
        }
      }
      inits.push({ name: `${t.name}_full`, data_type: _BOOL, dims: [1, 1, L, L], raw_data: raw });
      continue;
    }
    inits.push(t);
  }
  inits.push(
    _i64("dyn_zero", [0]),
    _i64("dyn_zero2", [0, 0]),
    _i64("dyn_ax1", [1]),
    _i64("dyn_ax23", [2, 3]),
  );
  // s = Shape(ids)[1:2]; the sliced position ids and masks take the names the graph reads
  const pre: onnx.INodeProto[] = [
    {
      op_type: "Shape",
      name: "dyn_shape",
      input: ["ids"],
      output: ["dyn_s"],
      attribute: [{ name: "start", type: 2, i: 1 }],
    },
    {
      op_type: "Concat",
      name: "dyn_ss",
      input: ["dyn_s", "dyn_s"],
      output: ["dyn_s2"],
      attribute: [{ name: "axis", type: 2, i: 0 }],
    },
    {
      op_type: "Slice",
      name: "dyn_pos",
      input: ["unsqueeze_full", "dyn_zero", "dyn_s", "dyn_ax1"],
      output: ["unsqueeze"],
    },
    {
      op_type: "Slice",
      name: "dyn_le",
      input: ["le_full", "dyn_zero2", "dyn_s2", "dyn_ax23"],
      output: ["le"],
    },
    {
      op_type: "Slice",
      name: "dyn_eq",
      input: ["eq_full", "dyn_zero2", "dyn_s2", "dyn_ax23"],
      output: ["eq"],
    },
  ];
  g.initializer = inits;
  g.node = [...pre, ...g.node!];
  return onnx.ModelProto.encode(m).finish();
}

if (import.meta.main) {
  const [src, dst] = Deno.args;
  if (!src || !dst) {
    console.error("usage: deno run -A tools/gpt2_dynamic_seq.ts gpt2_dynamo.onnx OUT.onnx");
    Deno.exit(2);
  }
  await Deno.writeFile(dst, dynamicSeqGpt2(await Deno.readFile(src)));
  console.log(`wrote ${dst}`);
}
