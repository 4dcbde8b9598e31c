// Node attributes, read by their ONNX spec names with the spec's defaults.
import { Tensor } from "./tensor";

export const ATTR_INT: i32 = 1;
export const ATTR_FLOAT: i32 = 2;
export const ATTR_STRING: i32 = 3;
export const ATTR_INTS: i32 = 4;
export const ATTR_FLOATS: i32 = 5;
export const ATTR_STRINGS: i32 = 6;
export const ATTR_TENSOR: i32 = 7;
/** A subgraph: `g` is the index of a submodule of the program. */
export const ATTR_GRAPH: i32 = 8;

export class Attr {
  kind: i32 = 0;
  i: i64 = 0;
  f: f32 = 0;
  s: string = "";
  ints: Array<i64> = new Array<i64>(0);
  floats: Array<f32> = new Array<f32>(0);
  strings: Array<string> = new Array<string>(0);
  t: Tensor | null = null;
  g: i32 = -1;

  static int(v: i64): Attr {
    const a = new Attr();
    a.kind = ATTR_INT;
    a.i = v;
    return a;
  }
  static float(v: f32): Attr {
    const a = new Attr();
    a.kind = ATTR_FLOAT;
    a.f = v;
    return a;
  }
  static str(v: string): Attr {
    const a = new Attr();
    a.kind = ATTR_STRING;
    a.s = v;
    return a;
  }
  static intList(v: Array<i64>): Attr {
    const a = new Attr();
    a.kind = ATTR_INTS;
    a.ints = v;
    return a;
  }
  static floatList(v: Array<f32>): Attr {
    const a = new Attr();
    a.kind = ATTR_FLOATS;
    a.floats = v;
    return a;
  }
  static tensor(t: Tensor): Attr {
    const a = new Attr();
    a.kind = ATTR_TENSOR;
    a.t = t;
    return a;
  }
  static graph(moduleIndex: i32): Attr {
    const a = new Attr();
    a.kind = ATTR_GRAPH;
    a.g = moduleIndex;
    return a;
  }
}

export class Attrs {
  map: Map<string, Attr> = new Map<string, Attr>();

  set(name: string, a: Attr): void {
    this.map.set(name, a);
  }

  has(name: string): bool {
    return this.map.has(name);
  }

  get(name: string): Attr | null {
    return this.map.has(name) ? this.map.get(name) : null;
  }

  names(): Array<string> {
    return this.map.keys();
  }

  getInt(name: string, def: i64): i64 {
    if (!this.map.has(name)) return def;
    const a = this.map.get(name);
    if (a.kind == ATTR_INT) return a.i;
    if (a.kind == ATTR_FLOAT) return <i64>a.f;
    return def;
  }

  getFloat(name: string, def: f32): f32 {
    if (!this.map.has(name)) return def;
    const a = this.map.get(name);
    if (a.kind == ATTR_FLOAT) return a.f;
    if (a.kind == ATTR_INT) return <f32>a.i;
    return def;
  }

  getString(name: string, def: string): string {
    if (!this.map.has(name)) return def;
    const a = this.map.get(name);
    return a.kind == ATTR_STRING ? a.s : def;
  }

  /** The ints of `name`, or null when absent. */
  getInts(name: string): Array<i64> | null {
    if (!this.map.has(name)) return null;
    const a = this.map.get(name);
    if (a.kind == ATTR_INTS) return a.ints;
    if (a.kind == ATTR_INT) return [a.i];
    return null;
  }

  getFloats(name: string): Array<f32> | null {
    if (!this.map.has(name)) return null;
    const a = this.map.get(name);
    return a.kind == ATTR_FLOATS ? a.floats : null;
  }

  getTensor(name: string): Tensor | null {
    if (!this.map.has(name)) return null;
    return this.map.get(name).t;
  }

  getGraph(name: string): i32 {
    if (!this.map.has(name)) return -1;
    const a = this.map.get(name);
    return a.kind == ATTR_GRAPH ? a.g : -1;
  }
}
