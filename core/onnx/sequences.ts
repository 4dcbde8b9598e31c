/**
 * ONNX sequence and optional values, resolved while importing: kiln plans static shapes, so a
 * sequence is a compile-time list of tensor values (its length and each element known when
 * compiling, positions from constants) and an optional is present or absent at compile time.
 * The sequence ops become tensor nodes (Concat, Split, Unsqueeze, Squeeze) or plain aliases;
 * SequenceMap's body is inlined once per element. What needs a run-time length or position is
 * refused with a clear error (code "needs_constant" where binding an input as a constant helps).
 * @module
 */
import type { ModuleBuilder, TensorValue, ValueRef } from "../ir/builder.ts";
import { viewAs } from "../tensor.ts";
import { importError } from "./errors.ts";
import type { onnx } from "./onnx_pb.js";

/** A sequence: its elements, in order. */
export class Seq {
  constructor(readonly items: ValueRef[]) {}
}

/** An optional: its value, or null when absent. */
export class Opt {
  constructor(readonly value: Val | null) {}
}

/** A value of the graph being imported: a tensor (its id), a sequence or an optional. */
export type Val = ValueRef | Seq | Opt;

/** Whether v is a tensor value. */
export function isTensor(v: Val | null | undefined): v is ValueRef {
  return typeof v === "number";
}

/** The ops handled here (the importer routes them before making nodes). */
export const SEQUENCE_OPS: ReadonlySet<string> = new Set([
  "SequenceEmpty",
  "SequenceConstruct",
  "SequenceInsert",
  "SequenceErase",
  "SequenceAt",
  "SequenceLength",
  "ConcatFromSequence",
  "SplitToSequence",
  "SequenceMap",
  "Optional",
  "OptionalHasElement",
  "OptionalGetElement",
]);

/** What the sequence ops need of the importer. */
export interface SeqHost {
  readonly opset: number;
  /** A constant tensor in `mod`. */
  constant(mod: ModuleBuilder, name: string, v: TensorValue): ValueRef;
  /** The value of a tensor known at import (a literal), if it is one. */
  known(ref: ValueRef): TensorValue | undefined;
  /** The dims of a tensor known at import (graph inputs, literals), if known. */
  dims(ref: ValueRef): number[] | undefined;
  /** Inlines graph `g` into `mod` with its inputs bound to `inputs`, outer names through `scope`; its outputs. */
  inline(mod: ModuleBuilder, g: onnx.IGraphProto, inputs: Val[], prefix: string, scope: ScopeLike): Val[];
}

/** The importer's names in scope (outer-scope lookups). */
export interface ScopeLike {
  get(name: string): Val | undefined;
}

/** The integers of a known int32, int64 or bool tensor. */
export function knownInts(h: SeqHost, ref: ValueRef): number[] | undefined {
  const t = h.known(ref);
  const dtype = t?.dtype === 7 ? "int64" : t?.dtype === 6 ? "int32" : t?.dtype === 9 ? "bool" : undefined;
  if (!dtype) return undefined;
  return Array.from(viewAs(dtype, t!.bytes) as ArrayLike<number | bigint>, Number);
}

function _i64(vals: number[], dims: number[]): TensorValue {
  const bytes = new Uint8Array(vals.length * 8);
  const dv = new DataView(bytes.buffer);
  vals.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
  return { dtype: 7, dims, bytes };
}

function _bool(v: boolean): TensorValue {
  return { dtype: 9, dims: [], bytes: Uint8Array.of(v ? 1 : 0) };
}

/** Imports one sequence/optional node; returns its output values. */
export function sequenceNode(
  h: SeqHost,
  mod: ModuleBuilder,
  n: onnx.INodeProto,
  nodeName: string,
  inputs: (Val | null)[],
  scope: ScopeLike,
): Val[] {
  const op = n.op_type ?? "";
  const ctx = { node: nodeName, op };
  const fail = (msg: string, code: "onnx" | "needs_constant" = "onnx") =>
    importError(`Node '${nodeName}' (${op}): ${msg}`, ctx, code);
  const attr = (name: string) => (n.attribute ?? []).find((a) => a.name === name);
  const attrInt = (name: string, def: number): number => {
    const a = attr(name);
    return a ? Number(a.i ?? 0) : def;
  };
  const seqIn = (i: number): Seq => {
    const v = inputs[i];
    if (!(v instanceof Seq)) throw fail(`input ${i} must be a sequence`);
    return v;
  };
  const tensorIn = (i: number): ValueRef => {
    const v = inputs[i];
    if (!isTensor(v)) throw fail(`input ${i} must be a tensor`);
    return v;
  };
  /** A constant position input (or undefined when omitted), checked against [lo, hi]. */
  const position = (i: number, lo: number, hi: number): number | undefined => {
    const v = inputs[i];
    if (v === undefined || v === null) return undefined;
    if (!isTensor(v)) throw fail(`input ${i} (position) must be a tensor`);
    const ints = knownInts(h, v);
    if (!ints) {
      throw fail(
        `input ${i} (position) must be a compile-time constant: kiln resolves sequences when compiling`,
        "needs_constant",
      );
    }
    if (ints.length !== 1) throw fail(`position must be one integer, has ${ints.length}`);
    const p = ints[0];
    if (p < lo || p > hi) throw fail(`position ${p} is out of range [${lo}, ${hi}]`);
    return p;
  };
  const outName = (k = 0) => `${nodeName}:${k}`;
  const axesInput = (axes: number[]) => h.constant(mod, `${nodeName}/axes`, _i64(axes, [axes.length]));
  const unsqueeze = (x: ValueRef, axis: number, k: number): ValueRef =>
    h.opset >= 13
      ? mod.node("Unsqueeze", [x, axesInput([axis])], {}, 1, `${nodeName}/Unsqueeze_${k}`)[0]
      : mod.node("Unsqueeze", [x], { axes: { ints: [axis] } }, 1, `${nodeName}/Unsqueeze_${k}`)[0];
  const squeeze = (x: ValueRef, axis: number, k: number): ValueRef =>
    h.opset >= 13
      ? mod.node("Squeeze", [x, axesInput([axis])], {}, 1, `${nodeName}/Squeeze_${k}`)[0]
      : mod.node("Squeeze", [x], { axes: { ints: [axis] } }, 1, `${nodeName}/Squeeze_${k}`)[0];

  switch (op) {
    case "SequenceEmpty":
      return [new Seq([])];
    case "SequenceConstruct":
      return [new Seq(inputs.map((_, i) => tensorIn(i)))];
    case "SequenceInsert": {
      const s = seqIn(0);
      const t = tensorIn(1);
      const len = s.items.length;
      let p = position(2, -len, len) ?? len;
      if (p < 0) p += len;
      const items = [...s.items];
      items.splice(p, 0, t);
      return [new Seq(items)];
    }
    case "SequenceErase": {
      const s = seqIn(0);
      const len = s.items.length;
      if (len === 0) throw fail("erases from an empty sequence");
      let p = position(1, -len, len - 1) ?? len - 1;
      if (p < 0) p += len;
      const items = [...s.items];
      items.splice(p, 1);
      return [new Seq(items)];
    }
    case "SequenceAt": {
      const s = seqIn(0);
      const len = s.items.length;
      if (len === 0) throw fail("reads from an empty sequence");
      let p = position(1, -len, len - 1);
      if (p === undefined) throw fail("needs a position");
      if (p < 0) p += len;
      return [s.items[p]];
    }
    case "SequenceLength":
      return [h.constant(mod, outName(), _i64([seqIn(0).items.length], []))];
    case "ConcatFromSequence": {
      const s = seqIn(0);
      if (!attr("axis")) throw fail("needs attribute 'axis'");
      const axis = attrInt("axis", 0);
      const newAxis = attrInt("new_axis", 0) !== 0;
      if (s.items.length === 0) throw fail("concatenates an empty sequence, whose result kiln cannot shape");
      const parts = newAxis ? s.items.map((x, k) => unsqueeze(x, axis, k)) : s.items;
      return [mod.node("Concat", parts, { axis: { i: axis } }, 1, nodeName)[0]];
    }
    case "SplitToSequence": {
      const x = tensorIn(0);
      const dims = h.dims(x);
      const axis0 = attrInt("axis", 0);
      const keepdims = attrInt("keepdims", 1) !== 0;
      const splitRef = inputs[1];
      let sizes: number[] | undefined;
      let squeezeEach = false;
      const axisLen = (): number => {
        if (!dims) {
          throw fail(
            "splitting without a constant 1-D 'split' needs the input's shape, which kiln knows at import " +
              "only for graph inputs and constants",
          );
        }
        const a = axis0 < 0 ? axis0 + dims.length : axis0;
        if (a < 0 || a >= dims.length) throw fail(`axis ${axis0} is out of range for rank ${dims.length}`);
        return dims[a];
      };
      if (splitRef !== undefined && splitRef !== null) {
        if (!isTensor(splitRef)) throw fail("input 1 (split) must be a tensor");
        const sp = knownInts(h, splitRef);
        const t = h.known(splitRef);
        if (!sp || !t) throw fail("input 1 (split) must be a compile-time constant", "needs_constant");
        if (t.dims.length === 1) sizes = sp;
        else {
          const d = axisLen();
          const c = sp[0];
          if (c <= 0) throw fail(`split ${c} must be positive`);
          sizes = [];
          for (let r = d; r > 0; r -= c) sizes.push(Math.min(c, r));
        }
      } else {
        sizes = new Array(axisLen()).fill(1);
        squeezeEach = !keepdims;
      }
      if (sizes.length === 0) return [new Seq([])];
      const split = h.constant(mod, `${nodeName}/split`, _i64(sizes, [sizes.length]));
      const parts = h.opset >= 13
        ? mod.node("Split", [x, split], { axis: { i: axis0 } }, sizes.length, nodeName)
        : mod.node("Split", [x], { axis: { i: axis0 }, split: { ints: sizes } }, sizes.length, nodeName);
      return [new Seq(squeezeEach ? parts.map((p, k) => squeeze(p, axis0, k)) : parts)];
    }
    case "SequenceMap": {
      const body = attr("body")?.g;
      if (!body) throw fail("needs a 'body' graph");
      let len = -1;
      inputs.forEach((v, i) => {
        if (!(v instanceof Seq)) return;
        if (len >= 0 && v.items.length !== len) {
          throw fail(`its sequences have lengths ${len} and ${v.items.length} (input ${i})`);
        }
        len = v.items.length;
      });
      if (!(inputs[0] instanceof Seq)) throw fail("input 0 must be a sequence");
      const outs: ValueRef[][] = (body.output ?? []).map(() => []);
      for (let i = 0; i < len; i++) {
        const args = inputs.map((v, k) => {
          if (v instanceof Seq) return v.items[i];
          if (v === null) throw fail(`input ${k} is empty`);
          return v;
        });
        const res = h.inline(mod, body, args, `${nodeName}/${i}/`, scope);
        res.forEach((r, k) => {
          if (!isTensor(r)) throw fail(`body output ${k} is not a tensor; kiln maps tensors only`);
          outs[k].push(r);
        });
      }
      return outs.map((items) => new Seq(items));
    }
    case "Optional":
      return [new Opt(inputs[0] ?? null)];
    case "OptionalHasElement": {
      const v = inputs[0] ?? null;
      const has = v instanceof Opt ? v.value !== null : v !== null;
      return [h.constant(mod, outName(), _bool(has))];
    }
    case "OptionalGetElement": {
      const v = inputs[0] ?? null;
      if (v === null) throw fail("input is empty");
      if (v instanceof Opt) {
        if (v.value === null) throw fail("the optional is empty (known when compiling)");
        return [v.value];
      }
      return [v];
    }
  }
  throw fail("is not a sequence op");
}

/** Whether a graph's declared outputs include a sequence or optional. */
export function hasCompositeOutputs(g: onnx.IGraphProto | null | undefined): boolean {
  return (g?.output ?? []).some((o) => !!(o.type?.sequence_type || o.type?.optional_type));
}

/**
 * Whether graph g (a branch or body) makes sequences or optionals: a sequence op among its nodes,
 * or a node reading an outer sequence or optional (nested subgraphs not searched).
 */
export function readsComposite(g: onnx.IGraphProto | null | undefined, scope: ScopeLike): boolean {
  if (!g) return false;
  const local = new Set<string>([
    ...(g.input ?? []).map((v) => v.name ?? ""),
    ...(g.initializer ?? []).map((t) => t.name ?? ""),
  ]);
  for (const node of g.node ?? []) {
    if (SEQUENCE_OPS.has(node.op_type ?? "")) return true;
    for (const name of node.input ?? []) {
      if (!name || local.has(name)) continue;
      const v = scope.get(name);
      if (v !== undefined && !isTensor(v)) return true;
    }
    for (const o of node.output ?? []) local.add(o);
  }
  return false;
}

/** A Loop carrying sequences or optionals, unrolled into `mod` (its iteration number a constant each time). */
export function unrollLoop(
  h: SeqHost,
  mod: ModuleBuilder,
  body: onnx.IGraphProto | null | undefined,
  nodeName: string,
  raw: (Val | null)[],
  scope: ScopeLike,
): Val[] {
  const ctx = { node: nodeName, op: "Loop" };
  const what =
    `Node '${nodeName}' (Loop) carries a sequence or optional, which kiln resolves when compiling by unrolling the loop`;
  if (!body) throw importError(`Node '${nodeName}' (Loop) has no body`, ctx);
  const m = raw[0];
  const trips = isTensor(m) ? knownInts(h, m) : undefined;
  if (!trips) {
    throw importError(`${what}: its trip count M must be a compile-time constant`, ctx, "needs_constant");
  }
  const c = raw[1];
  let cond = true;
  if (c !== null && c !== undefined) {
    const cv = isTensor(c) ? knownInts(h, c) : undefined;
    if (!cv) {
      throw importError(`${what}: its condition must be a compile-time constant`, ctx, "needs_constant");
    }
    cond = cv[0] !== 0;
  }
  const nCarried = raw.length - 2;
  let carried = raw.slice(2).map((v, k) => {
    if (v === null) throw importError(`Node '${nodeName}' (Loop): loop-carried input ${k} is empty`, ctx);
    return v;
  });
  const scans: Val[][] = [];
  let i = 0;
  for (; i < trips[0] && cond; i++) {
    const iter = h.constant(mod, `${nodeName}/${i}/iteration`, {
      dtype: 7,
      dims: [],
      bytes: new Uint8Array(BigInt64Array.of(BigInt(i)).buffer),
    });
    const condIn = h.constant(mod, `${nodeName}/${i}/cond`, {
      dtype: 9,
      dims: [],
      bytes: Uint8Array.of(1),
    });
    const outs = h.inline(mod, body, [iter, condIn, ...carried], `${nodeName}/${i}/`, scope);
    const co = outs[0];
    const cv = isTensor(co) ? knownInts(h, co) : undefined;
    if (!cv) {
      throw importError(`${what}: its body's condition output must be known when compiling`, ctx);
    }
    cond = cv[0] !== 0;
    carried = outs.slice(1, 1 + nCarried);
    outs.slice(1 + nCarried).forEach((v, j) => (scans[j] ??= []).push(v));
  }
  const nScan = (body.output ?? []).length - 1 - nCarried;
  const stacked: Val[] = [];
  for (let j = 0; j < nScan; j++) {
    const vals = scans[j] ?? [];
    if (vals.length === 0) {
      throw importError(`${what}: it runs no iteration, so its scan output ${j} has no known shape`, ctx);
    }
    const parts = vals.map((v, k) => {
      if (!isTensor(v)) throw importError(`${what}: its scan output ${j} is not a tensor`, ctx);
      const axes = h.constant(mod, `${nodeName}/scan${j}/axes`, {
        dtype: 7,
        dims: [1],
        bytes: new Uint8Array(8),
      });
      return h.opset >= 13
        ? mod.node("Unsqueeze", [v, axes], {}, 1, `${nodeName}/scan${j}/Unsqueeze_${k}`)[0]
        : mod.node("Unsqueeze", [v], { axes: { ints: [0] } }, 1, `${nodeName}/scan${j}/Unsqueeze_${k}`)[0];
    });
    stacked.push(mod.node("Concat", parts, { axis: { i: 0 } }, 1, `${nodeName}/scan${j}/Concat`)[0]);
  }
  return [...carried, ...stacked];
}
