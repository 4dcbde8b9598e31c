/**
 * The schedule: a compiled program as data (the core's `schedule` export; byte by byte in
 * docs/internals.md "Schedule"). The gpu target hands the bytes to its native library, which
 * builds its launch lists from them; this module reads the same bytes on the host for what the
 * host needs: the nodes that fall back to the reference kernels (which values they read and write,
 * and where they are in the IR), the weight slots, and reports.
 * @module
 */
import { KilnError } from "./errors.ts";
import { dtypeFromOnnx, type DTypeName } from "./tensor.ts";

/** Where a value lives (the native library resolves it to device memory). */
export type Storage = "input" | "weight" | "literal" | "arena" | "buffer" | "alias";

/** One value of a schedule. */
export interface ScheduleValue {
  /** the value's id in the IR */
  id: number;
  name: string;
  dtype: DTypeName;
  dims: number[];
  bytes: number;
  storage: Storage;
  /** input index, weight slot, arena module or alias root (by storage) */
  index: number;
  /** arena or literal-arena offset */
  offset: number;
  /** host literal id of a literal, -1 for an inline one */
  hostId: number;
}

/** One node of a schedule. */
export interface ScheduleNode {
  /** index among all nodes (modules in order) */
  index: number;
  module: number;
  /** the instruction's position in its IR module */
  instr: number;
  op: string;
  name: string;
  prepare: boolean;
  skip: boolean;
  /** schedule value indices; -1 for an omitted input */
  inputs: number[];
  outputs: number[];
}

/** A deferred weight's slot. */
export interface ScheduleWeight {
  name: string;
  dtype: DTypeName;
  dims: number[];
  bytes: number;
  location: string;
  offset: number;
  length: number;
  checksum: string;
}

/** A decoded schedule. */
export interface Schedule {
  opset: number;
  literalArenaBytes: number;
  values: ScheduleValue[];
  weights: ScheduleWeight[];
  inputs: number[];
  outputs: { value: number; name: string }[];
  modules: { name: string; parent: number; arenaBytes: number; nodes: number[]; returns: number[] }[];
  nodes: ScheduleNode[];
}

const _STORAGE: Storage[] = ["input", "weight", "literal", "arena", "buffer", "alias"];
const _MAGIC = 0x3143534b;

class _Reader {
  #v: DataView;
  #p = 0;
  #dec = new TextDecoder();
  constructor(readonly bytes: Uint8Array) {
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u8(): number {
    return this.#v.getUint8(this.#p++);
  }
  u32(): number {
    const x = this.#v.getUint32(this.#p, true);
    this.#p += 4;
    return x;
  }
  i32(): number {
    const x = this.#v.getInt32(this.#p, true);
    this.#p += 4;
    return x;
  }
  i64(): number {
    const x = Number(this.#v.getBigInt64(this.#p, true));
    this.#p += 8;
    return x;
  }
  str(): string {
    const n = this.u32();
    const s = this.#dec.decode(this.bytes.subarray(this.#p, this.#p + n));
    this.#p += n;
    return s;
  }
  skip(n: number): void {
    this.#p += n;
  }
  f32(): number {
    const x = this.#v.getFloat32(this.#p, true);
    this.#p += 4;
    return x;
  }
  get done(): boolean {
    return this.#p === this.bytes.length;
  }
}

function _dims(r: _Reader): { dtype: DTypeName; dims: number[]; bytes: number } {
  const dt = r.u32();
  const rank = r.u32();
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(r.i64());
  return { dtype: dtypeFromOnnx(dt), dims, bytes: r.i64() };
}

function _skipAttrs(r: _Reader): void {
  const n = r.u32();
  for (let k = 0; k < n; k++) {
    r.str();
    const kind = r.u8();
    switch (kind) {
      case 1:
        r.skip(8);
        break;
      case 2:
        r.skip(4);
        break;
      case 3:
        r.str();
        break;
      case 4:
        r.skip(8 * r.u32());
        break;
      case 5:
        r.skip(4 * r.u32());
        break;
      case 6: {
        const c = r.u32();
        for (let j = 0; j < c; j++) r.str();
        break;
      }
      case 7: {
        r.u32();
        r.skip(4 * r.u32());
        r.skip(r.u32());
        break;
      }
      case 8:
        r.skip(4);
        break;
      default:
        throw new KilnError("format", `Bad schedule: attribute kind ${kind}`);
    }
  }
}

/** Decodes schedule bytes (written by this build's core: trusted, still checked for shape). */
export function decodeSchedule(bytes: Uint8Array): Schedule {
  const r = new _Reader(bytes);
  try {
    if (r.u32() !== _MAGIC) throw new KilnError("format", "Bad schedule: wrong magic number");
    const version = r.u32();
    if (version !== 1) throw new KilnError("format", `Bad schedule: version ${version}`);
    const opset = r.u32();
    const nModules = r.u32(), nValues = r.u32(), nWeights = r.u32(), nInputs = r.u32(), nOutputs = r.u32();
    const literalArenaBytes = r.i64();
    const values: ScheduleValue[] = [];
    for (let k = 0; k < nValues; k++) {
      const id = r.u32();
      const name = r.str();
      const d = _dims(r);
      const storage = _STORAGE[r.u8() - 1];
      const v: ScheduleValue = { id, name, ...d, storage, index: 0, offset: 0, hostId: -1 };
      switch (storage) {
        case "input":
        case "weight":
        case "alias":
          v.index = r.u32();
          break;
        case "literal": {
          v.offset = r.i64();
          const host = r.u32();
          if (host === 0xffffffff) r.skip(d.bytes);
          else v.hostId = host;
          break;
        }
        case "arena":
          v.index = r.u32();
          v.offset = r.i64();
          break;
        case "buffer":
          break;
        default:
          throw new KilnError("format", `Bad schedule: value '${name}' has no storage`);
      }
      values.push(v);
    }
    const weights: ScheduleWeight[] = [];
    for (let k = 0; k < nWeights; k++) {
      const name = r.str();
      const d = _dims(r);
      weights.push({ name, ...d, location: r.str(), offset: r.i64(), length: r.i64(), checksum: r.str() });
    }
    const inputs: number[] = [];
    for (let k = 0; k < nInputs; k++) inputs.push(r.u32());
    const outputs: { value: number; name: string }[] = [];
    for (let k = 0; k < nOutputs; k++) outputs.push({ value: r.u32(), name: r.str() });
    const modules: Schedule["modules"] = [];
    const nodes: ScheduleNode[] = [];
    for (let m = 0; m < nModules; m++) {
      const name = r.str();
      const parent = r.i32();
      const arenaBytes = r.i64();
      const n = r.u32();
      const list: number[] = [];
      for (let k = 0; k < n; k++) {
        const instr = r.u32();
        const op = r.str();
        const nodeName = r.str();
        const flags = r.u8();
        const ins: number[] = [];
        const nin = r.u32();
        for (let j = 0; j < nin; j++) ins.push(r.i32());
        const outs: number[] = [];
        const nout = r.u32();
        for (let j = 0; j < nout; j++) outs.push(r.u32());
        _skipAttrs(r);
        list.push(nodes.length);
        nodes.push({
          index: nodes.length,
          module: m,
          instr,
          op,
          name: nodeName,
          prepare: (flags & 1) !== 0,
          skip: (flags & 2) !== 0,
          inputs: ins,
          outputs: outs,
        });
      }
      const returns: number[] = [];
      const nr = r.u32();
      for (let j = 0; j < nr; j++) returns.push(r.u32());
      modules.push({ name, parent, arenaBytes, nodes: list, returns });
    }
    if (!r.done) throw new KilnError("format", "Bad schedule: trailing bytes");
    return { opset, literalArenaBytes, values, weights, inputs, outputs, modules, nodes };
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError("format", `Bad schedule: ${(e as Error).message}`);
  }
}
