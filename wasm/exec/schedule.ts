// The schedule: a compiled program as data for an executor outside this core (the gpu target's
// native library builds its launch list from it; docs/internals.md "Schedule", byte by byte).
// Per value: element type, dims, bytes and where it lives (an input, a weight slot, the literal
// arena, a module's arena at an offset, its own buffer, or an alias of another value); per node:
// op, attributes, inputs and outputs, and its prepare/skip marks; per module: its arena size, its
// nodes in order and its returns. The compiler's decisions (memory plan, prepare work, literal
// layout) are made once, here, and the executor re-derives nothing.
import { Writer, writeAttrs } from "../ir/codec";
import {
  Instruction, K_HOST_LITERAL, K_LITERAL, K_NODE, K_PARAM, K_WEIGHT, LOC_ALIAS, LOC_ARENA, LOC_BUFFER,
  Module, Program, Value,
} from "../ir/program";
import { E_GRAPH, report } from "../ir/diag";

export const SCHEDULE_MAGIC: u32 = 0x3143534b; // "KSC1"
export const SCHEDULE_VERSION: u32 = 1;

export const S_INPUT: u8 = 1;
export const S_WEIGHT: u8 = 2;
export const S_LITERAL: u8 = 3;
export const S_ARENA: u8 = 4;
export const S_BUFFER: u8 = 5;
export const S_ALIAS: u8 = 6;

export const N_PREPARE: u8 = 1;
export const N_SKIP: u8 = 2;

class ScheduleState {
  w: Writer = new Writer();
  /** IR value id -> schedule value index */
  index: Map<i32, i32> = new Map<i32, i32>();
  values: Array<Value> = new Array<Value>();
  owners: Array<Instruction> = new Array<Instruction>();
  modules: Array<i32> = new Array<i32>();
  slots: Map<string, i32> = new Map<string, i32>();
  slotInstrs: Array<Instruction> = new Array<Instruction>();
  inputs: Array<i32> = new Array<i32>();
}

/** Length of the last schedule written by `writeSchedule`. */
export let scheduleLength: usize = 0;

/**
 * Writes the schedule of a planned program (every module planned; literals laid out when the
 * target has a literal arena). Returns a heap buffer (free it), or 0 with a diagnostic.
 */
export function writeSchedule(prog: Program): usize {
  const st = new ScheduleState();
  for (let mi = 0; mi < prog.modules.length; mi++) {
    const m = prog.modules[mi];
    if (!m.planned) {
      report(E_GRAPH, "", "", "Module '" + m.name + "' has no memory plan; cannot write a schedule");
      return 0;
    }
    for (let i = 0; i < m.instrs.length; i++) {
      const ins = m.instrs[i];
      for (let j = 0; j < ins.outputs.length; j++) {
        const v = ins.outputs[j];
        st.index.set(v.id, st.values.length);
        st.values.push(v);
        st.owners.push(ins);
        st.modules.push(mi);
      }
      if (ins.kind == K_WEIGHT && !st.slots.has(ins.nodeName)) {
        st.slots.set(ins.nodeName, st.slotInstrs.length);
        st.slotInstrs.push(ins);
      }
      if (ins.kind == K_PARAM && mi == 0) st.inputs.push(st.index.get(ins.outputs[0].id));
    }
  }
  const w = st.w;
  const main = prog.main();
  w.u32(SCHEDULE_MAGIC);
  w.u32(SCHEDULE_VERSION);
  w.u32(<u32>prog.opset);
  w.u32(<u32>prog.modules.length);
  w.u32(<u32>st.values.length);
  w.u32(<u32>st.slotInstrs.length);
  w.u32(<u32>st.inputs.length);
  w.u32(<u32>main.returns.length);
  w.i64(prog.literalArenaBytes);
  for (let k = 0; k < st.values.length; k++) {
    if (!writeValue(st, k)) return 0;
  }
  for (let s = 0; s < st.slotInstrs.length; s++) {
    const ins = st.slotInstrs[s];
    const v = ins.outputs[0];
    w.str(ins.nodeName);
    writeDims(w, v);
    w.str(ins.location);
    w.i64(ins.extOffset);
    w.i64(ins.extLength);
    w.str(ins.checksum);
  }
  for (let i = 0; i < st.inputs.length; i++) w.u32(<u32>st.inputs[i]);
  for (let i = 0; i < main.returns.length; i++) {
    w.u32(<u32>st.index.get(main.returns[i].id));
    w.str(i < main.returnNames.length ? main.returnNames[i] : "");
  }
  for (let mi = 0; mi < prog.modules.length; mi++) writeModuleSchedule(st, prog.modules[mi]);
  scheduleLength = w.len;
  return w.buf;
}

function writeDims(w: Writer, v: Value): void {
  w.u32(<u32>v.shape.dtype);
  w.u32(<u32>v.shape.lens.length);
  for (let d = 0; d < v.shape.lens.length; d++) w.i64(<i64>v.shape.lens[d]);
  w.i64(<i64>v.shape.bytes());
}

function writeValue(st: ScheduleState, k: i32): bool {
  const w = st.w;
  const v = st.values[k];
  const ins = st.owners[k];
  w.u32(<u32>v.id);
  w.str(v.name);
  writeDims(w, v);
  if (ins.kind == K_PARAM && st.modules[k] == 0) {
    w.u8(S_INPUT);
    w.u32(<u32>st.inputs.indexOf(k));
  } else if (ins.kind == K_WEIGHT) {
    w.u8(S_WEIGHT);
    w.u32(<u32>st.slots.get(ins.nodeName));
  } else if (ins.kind == K_LITERAL || ins.kind == K_HOST_LITERAL) {
    if (ins.litOffset < 0) {
      report(E_GRAPH, ins.nodeName, ins.opName, "Literal '" + ins.nodeName + "' has no place in the literal arena");
      return false;
    }
    w.u8(S_LITERAL);
    w.i64(ins.litOffset);
    if (ins.kind == K_HOST_LITERAL) {
      w.u32(<u32>ins.hostId);
    } else {
      w.u32(0xffffffff);
      w.bytes(ins.ptr, <usize>v.shape.bytes());
    }
  } else if (v.loc == LOC_ARENA) {
    w.u8(S_ARENA);
    w.u32(<u32>st.modules[k]);
    w.i64(<i64>v.offset);
  } else if (v.loc == LOC_BUFFER) {
    w.u8(S_BUFFER);
  } else if (v.loc == LOC_ALIAS && v.aliasOf != null && st.index.has(v.aliasOf!.id)) {
    w.u8(S_ALIAS);
    w.u32(<u32>st.index.get(v.aliasOf!.id));
  } else {
    report(E_GRAPH, ins.nodeName, ins.opName, "Value '" + v.name + "' has no place in the memory plan");
    return false;
  }
  return true;
}

function writeModuleSchedule(st: ScheduleState, m: Module): void {
  const w = st.w;
  w.str(m.name);
  w.u32(<u32>m.parent);
  w.i64(<i64>m.arenaBytes);
  let nodes = 0;
  for (let i = 0; i < m.instrs.length; i++) if (m.instrs[i].kind == K_NODE) nodes++;
  w.u32(<u32>nodes);
  for (let i = 0; i < m.instrs.length; i++) {
    const ins = m.instrs[i];
    if (ins.kind != K_NODE) continue;
    w.u32(<u32>i);
    w.str(ins.opName);
    w.str(ins.nodeName);
    w.u8((ins.prepare ? N_PREPARE : 0) | (ins.skip ? N_SKIP : 0));
    w.u32(<u32>ins.inputs.length);
    for (let j = 0; j < ins.inputs.length; j++) {
      const x = ins.inputs[j];
      w.u32(x == null ? 0xffffffff : <u32>st.index.get(x.id));
    }
    w.u32(<u32>ins.outputs.length);
    for (let j = 0; j < ins.outputs.length; j++) w.u32(<u32>st.index.get(ins.outputs[j].id));
    writeAttrs(w, ins.attrs);
  }
  w.u32(<u32>m.returns.length);
  for (let j = 0; j < m.returns.length; j++) w.u32(<u32>st.index.get(m.returns[j].id));
}
