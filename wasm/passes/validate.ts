// IR validation (run by the pass manager after each pass when asked): every input is defined
// before use in its module or an ancestor, producers and outputs agree, returns are defined.
import { E_VALIDATE, report } from "../ir/diag";
import { K_NODE, Module, Program } from "../ir/program";

/** Validates module `m`; records an E_VALIDATE diagnostic naming `after` and the instruction. */
export function validateModule(prog: Program, m: Module, after: string): bool {
  const defined = new Set<i32>();
  // values of ancestor modules are visible
  let p = m.parent;
  while (p >= 0) {
    const pm = prog.modules[p];
    for (let i = 0; i < pm.instrs.length; i++) {
      const o = pm.instrs[i].outputs;
      for (let j = 0; j < o.length; j++) defined.add(o[j].id);
    }
    p = pm.parent;
  }
  for (let i = 0; i < m.instrs.length; i++) {
    const ins = m.instrs[i];
    const where = "after pass '" + after + "': instruction " + i.toString() + " '" + ins.nodeName + "' (" +
      ins.opName + ") of module '" + m.name + "'";
    if (ins.module != m.index) return fail(ins.nodeName, ins.opName, where + " belongs to module " + ins.module.toString());
    if (ins.kind == K_NODE && ins.op == null) return fail(ins.nodeName, ins.opName, where + " has no op");
    if (ins.kind != K_NODE && ins.outputs.length != 1) return fail(ins.nodeName, ins.opName, where + " is a leaf without one output");
    for (let j = 0; j < ins.inputs.length; j++) {
      const x = ins.inputs[j];
      if (x == null) continue;
      if (!defined.has(x.id)) {
        return fail(ins.nodeName, ins.opName, where + " uses value " + x.id.toString() + " ('" + x.name +
          "') before it is defined");
      }
    }
    for (let j = 0; j < ins.outputs.length; j++) {
      const v = ins.outputs[j];
      if (v.producer !== ins) return fail(ins.nodeName, ins.opName, where + " output " + j.toString() + " names another producer");
      if (defined.has(v.id)) return fail(ins.nodeName, ins.opName, where + " redefines value " + v.id.toString());
      defined.add(v.id);
    }
    if (ins.kind == K_NODE) {
      const names = ins.attrs.names();
      for (let j = 0; j < names.length; j++) {
        const g = ins.attrs.getGraph(names[j]);
        if (g < 0) continue;
        if (g >= prog.modules.length || prog.modules[g].parent != m.index) {
          return fail(ins.nodeName, ins.opName, where + " names module " + g.toString() + ", which is not its submodule");
        }
      }
    }
  }
  for (let j = 0; j < m.returns.length; j++) {
    if (!defined.has(m.returns[j].id)) {
      return fail("", "", "after pass '" + after + "': return " + j.toString() + " of module '" + m.name +
        "' is not defined");
    }
  }
  return true;
}

function fail(node: string, op: string, msg: string): bool {
  report(E_VALIDATE, node, op, "IR validation failed " + msg);
  return false;
}
