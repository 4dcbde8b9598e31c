// replace_external_weights: rewrites each onnx_external_weights instruction named in its table into a host literal, in place.
//
// The first of a target's literal passes (baking, docs/internals.md "Baking"). The instruction keeps
// its position and its output value (same id, same shape); only its kind changes, and its value's
// location becomes the literal's bytes. Nothing is removed, merged or moved: a compiled program's
// memory plan is positional.
import { Attrs } from "../ir/attrs";
import { E_GRAPH, report } from "../ir/diag";
import { K_HOST_LITERAL, K_WEIGHT, LOC_LITERAL, LOC_NONE, Module, Program } from "../ir/program";
import { Pass } from "./pass";

/** Weight name -> host literal id (an index into the host's literal table). */
export type WeightTable = Map<string, i32>;

export class ReplaceExternalWeights extends Pass {
  table: WeightTable;
  constructor(table: WeightTable) {
    super("replace_external_weights");
    this.table = table;
  }
  apply(prog: Program, m: Module): bool {
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      if (ins.kind != K_WEIGHT || !this.table.has(ins.nodeName)) continue;
      ins.kind = K_HOST_LITERAL;
      ins.opName = "@literal";
      ins.hostId = this.table.get(ins.nodeName);
      ins.attrs = new Attrs();
      ins.location = "";
      ins.extOffset = 0;
      ins.extLength = 0;
      ins.checksum = "";
      // planned: the weight's own buffer becomes the literal's bytes (placed at finalize)
      const v = ins.outputs[0];
      if (v.loc != LOC_NONE) v.loc = LOC_LITERAL;
    }
    return true;
  }
}

/**
 * Decodes a weight table (docs/internals.md, "Weight table"): u32 count, then per entry a UTF-8
 * name (u32 byte length + bytes) and an i32 host literal id. Null with an E_GRAPH diagnostic when
 * the bytes are malformed, a name repeats or an id is negative.
 */
export function decodeWeightTable(ptr: usize, len: usize): WeightTable | null {
  const table = new Map<string, i32>();
  const end = ptr + len;
  let pos = ptr;
  if (len < 4) return badTable("it has " + len.toString() + " bytes, no entry count");
  const n = load<u32>(pos);
  pos += 4;
  for (let i: u32 = 0; i < n; i++) {
    if (end - pos < 4) return badTable("entry " + i.toString() + " is truncated");
    const nameLen = <usize>load<u32>(pos);
    pos += 4;
    if (end - pos < nameLen + 4) return badTable("entry " + i.toString() + " is truncated");
    const name = String.UTF8.decodeUnsafe(pos, nameLen);
    pos += nameLen;
    const id = load<i32>(pos);
    pos += 4;
    if (id < 0) return badTable("weight '" + name + "' has host literal id " + id.toString());
    if (table.has(name)) return badTable("weight '" + name + "' is listed twice");
    table.set(name, id);
  }
  if (pos != end) return badTable((end - pos).toString() + " trailing bytes");
  return table;
}

function badTable(why: string): WeightTable | null {
  report(E_GRAPH, "", "", "Bad weight table: " + why);
  return null;
}
