// Sharing between the specializations of a dynamic program (docs/internals.md "Dynamic
// programs"): every specialization is compiled into the same instance as the root program (the
// first one compiled) and finalized with `shareFrom`, which places its weights, host literals and
// the outputs of its prepare nodes at the root's pointers instead of allocating its own. A prepare
// output is shared only when its structural key (op, node, attributes, output shape, and the keys
// of its inputs down to weights, host literals and literal contents) equals one of the root's: it
// then holds the same bytes whatever the input dims, the root's prepare step computes it once per
// bound weight set, and the specialization never runs that node. Prepare nodes that depend on the
// dims (a Gather of position embeddings by a folded Range, say) get keys of their own and run in
// the specialization's prepare.
import { ATTR_GRAPH, ATTR_TENSOR } from "../ir/attrs";
import { Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_WEIGHT, LOC_BUFFER, Program, Value } from "../ir/program";
import { attrsKey } from "../passes/cse";

function fnv(ptr: usize, n: usize): string {
  let h: u64 = 0xcbf29ce484222325;
  for (let i: usize = 0; i < n; i++) {
    h ^= <u64>load<u8>(ptr + i);
    h *= 0x100000001b3;
  }
  return h.toString(16);
}

/** Op, node and attributes of ins; "" when an attribute is a tensor or a graph (the node is not shared). */
function nodeKey(ins: Instruction): string {
  const names = ins.attrs.names();
  for (let i = 0; i < names.length; i++) {
    const kind = ins.attrs.get(names[i])!.kind;
    if (kind == ATTR_TENSOR || kind == ATTR_GRAPH) return "";
  }
  return ins.opName + "/" + ins.nodeName + "{" + attrsKey(ins.attrs) + "}";
}

/** The structural key of v ("" when it is not shareable: it depends on a param or a non-prepare node). */
function keyOf(v: Value, memo: Map<i32, string>): string {
  if (memo.has(v.id)) return memo.get(v.id);
  let key = "";
  const p = v.producer;
  if (p != null) {
    const shape = v.shape.toString();
    if (p.kind == K_WEIGHT) key = "w:" + p.nodeName + ":" + shape;
    else if (p.kind == K_HOST_LITERAL) key = "h:" + p.hostId.toString() + ":" + shape;
    else if (p.kind == K_LITERAL && p.ptr != 0) key = "l:" + fnv(p.ptr, <usize>v.shape.bytes()) + ":" + shape;
    else if (p.kind == K_NODE && p.prepare && !p.skip) {
      let s = nodeKey(p);
      if (s.length > 0) {
        s += "(";
        for (let i = 0; i < p.inputs.length && s.length > 0; i++) {
          const x = p.inputs[i];
          if (x == null) {
            s += "-,";
            continue;
          }
          const k = keyOf(x, memo);
          s = k.length > 0 ? s + k + "," : "";
        }
        if (s.length > 0) key = "n:" + s + ")#" + v.index.toString() + ":" + shape;
      }
    }
  }
  memo.set(v.id, key);
  return key;
}

/** Key -> value of every shareable prepare output of `root`'s main module (root finalized). */
function rootOutputs(root: Program): Map<string, Value> {
  const out = new Map<string, Value>();
  const memo = new Map<i32, string>();
  const instrs = root.main().instrs;
  for (let i = 0; i < instrs.length; i++) {
    const ins = instrs[i];
    if (ins.kind != K_NODE || !ins.prepare || ins.skip) continue;
    for (let j = 0; j < ins.outputs.length; j++) {
      const v = ins.outputs[j];
      if (v.loc != LOC_BUFFER || v.ptr == 0) continue;
      const k = keyOf(v, memo);
      if (k.length > 0) out.set(k, v);
    }
  }
  return out;
}

/**
 * Points prog's weights that the root also has (by name) at the root's buffers and marks them
 * shared: at finalize, and again after the root's weights moved (a swap switches them by pointer).
 */
export function shareWeights(prog: Program, root: Program): void {
  const weights = new Map<string, usize>();
  for (let i = 0; i < root.weightInstrs.length; i++) {
    const w = root.weightInstrs[i];
    weights.set(w.nodeName, w.outputs[0].ptr);
  }
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_WEIGHT && weights.has(ins.nodeName)) {
        ins.outputs[0].ptr = weights.get(ins.nodeName);
        ins.outputs[0].shared = true;
      }
    }
  }
}

/**
 * Before `prog` is placed in memory: points its weights, the host literals the root holds, and
 * the prepare outputs whose keys the root has at the root's memory, marking them shared (placement
 * then skips them), and marks the prepare nodes all of whose outputs are shared. Returns the
 * number of prepare nodes shared.
 */
export function shareFrom(prog: Program, root: Program): i32 {
  shareWeights(prog, root);
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind == K_HOST_LITERAL && root.hostPtrs.has(ins.hostId)) {
        ins.ptr = root.hostPtrs.get(ins.hostId);
        ins.outputs[0].ptr = ins.ptr;
        ins.outputs[0].shared = true;
      }
    }
  }
  const theirs = rootOutputs(root);
  const memo = new Map<i32, string>();
  const instrs = prog.main().instrs;
  let shared = 0;
  for (let i = 0; i < instrs.length; i++) {
    const ins = instrs[i];
    if (ins.kind != K_NODE || !ins.prepare || ins.skip) continue;
    let all = ins.outputs.length > 0;
    for (let j = 0; j < ins.outputs.length; j++) {
      const v = ins.outputs[j];
      const k = v.loc == LOC_BUFFER ? keyOf(v, memo) : "";
      if (k.length > 0 && theirs.has(k)) {
        const r = theirs.get(k);
        if (r.shape.bytes() == v.shape.bytes()) {
          v.ptr = r.ptr;
          v.shared = true;
          continue;
        }
      }
      all = false;
    }
    if (all) {
      ins.shared = true;
      shared++;
    }
  }
  return shared;
}
