/**
 * The worker side of `WorkerProgram` (core/worker.ts): a module worker that holds one compiled
 * program and answers its owner's messages, one at a time, in order. Not imported by anything
 * else: `WorkerProgram` starts it (from source here; the bundle ships it as kiln_worker.js).
 * @module
 */
import { compile, KilnError, parseOnnx, type ParseOptions, type Program, WeightSet } from "../mod.ts";
import type { Tensor } from "./tensor.ts";
import type { WorkerRequest, WorkerWeights } from "./worker.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}
/** This worker's face: a Web Worker's global scope, or Node's worker_threads parentPort adapted. */
function _scope(): WorkerScope {
  const g = globalThis as unknown as WorkerScope & {
    process?: { getBuiltinModule?: (n: string) => unknown };
  };
  const wt = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === "undefined"
    ? g.process?.getBuiltinModule?.("node:worker_threads") as
      | {
        parentPort: {
          on(e: "message", fn: (d: unknown) => void): void;
          postMessage(m: unknown, t?: unknown[]): void;
        } | null;
      }
      | undefined
    : undefined;
  const port = wt?.parentPort;
  if (!port) return g;
  const face: WorkerScope = {
    onmessage: null,
    postMessage: (m, transfer) => port.postMessage(m, transfer),
  };
  port.on("message", (data) => face.onmessage?.({ data } as MessageEvent<WorkerRequest>));
  return face;
}
const scope = _scope();
let program: Program | undefined;

async function _weights(p: Program, w: WorkerWeights): Promise<WeightSet> {
  switch (w.kind) {
    case "dir":
      return await WeightSet.fromOnnxDir(p, w.path);
    case "safetensors":
      return await WeightSet.fromSafetensors(p, w.source);
    case "arrays":
      return WeightSet.fromArrays(p, w.arrays);
  }
}

async function _handle(r: WorkerRequest): Promise<unknown> {
  switch (r.op) {
    case "create": {
      const model = await parseOnnx(r.model, r.parse as ParseOptions);
      program = compile(model, "ref");
      return {
        inputs: program.inputs,
        outputs: program.outputs,
        weights: program.weights,
      };
    }
    case "bind":
      if (!program) throw new KilnError("disposed", "The worker has no program");
      return await program.bindWeights(await _weights(program, r.weights), { partial: r.partial });
    case "eval": {
      if (!program) throw new KilnError("disposed", "The worker has no program");
      return await program.eval(r.inputs, { outputs: r.outputs });
    }
    case "dispose":
      program?.dispose();
      program = undefined;
      return null;
  }
}

scope.onmessage = async (e) => {
  const r = e.data;
  try {
    const value = await _handle(r);
    // outputs' buffers move to the owner instead of being copied
    const transfer = r.op === "eval"
      ? Object.values(value as Record<string, Tensor>).map((t) =>
        (t.data as Uint8Array).buffer as ArrayBuffer
      )
      : [];
    scope.postMessage({ id: r.id, ok: true, value }, transfer);
  } catch (err) {
    const k = err instanceof KilnError;
    scope.postMessage({
      id: r.id,
      ok: false,
      error: {
        code: k ? err.code : "internal",
        message: (err as Error)?.message ?? String(err),
        problems: (err as { problems?: string[] }).problems,
      },
    });
  }
};
