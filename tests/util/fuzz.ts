/**
 * Seeded fuzzers for the parsers of files that come from elsewhere: ONNX models, .kiln program
 * files, IR sections, safetensors files and headers, .npy headers. Each checks that every case
 * either loads (and then agrees with what the bytes say) or fails with a KilnError whose message
 * names the file, never another exception or a wrong tensor. `tests/fuzz_test.ts` runs a few
 * thousand cases in CI; `tools/fuzz_long.ts` runs 100,000+ with a watchdog against hangs.
 *
 * Case `i` of a fuzzer draws from its own stream, seeded from (seed, i): a finding names its case,
 * and `first` re-runs from any case.
 *
 * The header fuzzers are structured: a valid file is built from a model (tensors, dtypes, dims,
 * offsets, metadata; a .npy dict), mutated at the level of that model (wrong types, negative,
 * huge, fractional, overlapping or gapped offsets, duplicate keys, odd names, bad dtypes,
 * truncated headers, length fields that lie, whitespace and spelling variants that stay valid),
 * and judged by an oracle that works on the model, not on the bytes: a case the oracle calls
 * valid must load with exactly the model's tensors; one it calls invalid must be refused. A share
 * of cases also gets random byte noise, where no oracle can say: those must be refused or load
 * consistently (a differential check against JSON.parse and the file's own byte counts).
 * @module
 */
import { compile, deserializeProgram, KilnError, load, parseOnnx, save, WeightSet } from "../../mod.ts";
import { buildModel } from "../../core/onnx/writer.ts";
import { SeededRandom } from "../../core/weights/random.ts";
import {
  readSafetensorsIndex,
  type SafetensorsIndex,
  safetensorsIndexOf,
  writeSafetensors,
} from "../../core/weights/safetensors.ts";
import { readNpy, readNpyFile } from "../../core/npy.ts";
import { type DTypeName, type Tensor, tensorBytes } from "../../core/tensor.ts";

/** What to run. */
export interface FuzzOptions {
  /** seed of the run; case i draws from (seed, i) */
  seed: number;
  /** how many cases */
  cases: number;
  /** the first case's index (default 0): to re-run a finding */
  first?: number;
  /** called before each case (a watchdog's heartbeat) */
  onCase?: (i: number) => void;
}

/** What a run found. */
export interface FuzzReport {
  /** the fuzzer */
  parser: string;
  /** its seed */
  seed: number;
  /** cases run */
  cases: number;
  /** cases that loaded (or still worked) */
  loaded: number;
  /** cases refused with a KilnError */
  refused: number;
  /** one line per finding: the case, what was done, what went wrong */
  findings: string[];
}

/** The random stream of case `i` of a run seeded `seed`. */
export class CaseRandom {
  #r: SeededRandom;
  constructor(seed: number, i: number) {
    this.#r = new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
  }
  /** uniform in [0, 1) */
  u(): number {
    return this.#r.uniform();
  }
  /** an integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.u() * n);
  }
  /** true with probability p */
  chance(p: number): boolean {
    return this.u() < p;
  }
  /** one of `xs` */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /** `xs` shuffled (a copy) */
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let k = out.length - 1; k > 0; k--) {
      const j = this.int(k + 1);
      [out[k], out[j]] = [out[j], out[k]];
    }
    return out;
  }
  /** `n` random bytes */
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256));
  }
}

/** Flips, truncates or splices `bytes`; returns the mutant and what was done (for the report). */
export function mutateBytes(bytes: Uint8Array, rnd: () => number): [Uint8Array, string] {
  const b = bytes.slice();
  const at = Math.floor(rnd() * b.length);
  const kind = Math.floor(rnd() * 4);
  if (kind === 0) {
    const n = 1 + Math.floor(rnd() * 8);
    for (let k = 0; k < n; k++) b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8);
    return [b, `${n} bit flips`];
  }
  if (kind === 1) return [b.slice(0, at), `truncated at ${at}`];
  if (kind === 2) {
    b[at] = [0x00, 0xff, 0x7f, 0x80][Math.floor(rnd() * 4)];
    return [b, `byte ${at} set to an extreme`];
  }
  const len = 1 + Math.floor(rnd() * 16);
  const junk = Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256));
  const out = new Uint8Array(b.length + len);
  out.set(b.subarray(0, at));
  out.set(junk, at);
  out.set(b.subarray(at), at + len);
  return [out, `${len} junk bytes spliced in at ${at}`];
}

/** Why `e` is not an acceptable failure (a KilnError with a message, naming `path`), or null. */
export function notAKilnError(e: unknown, path?: string, codes?: readonly string[]): string | null {
  if (!(e instanceof KilnError)) {
    return `${(e as Error)?.constructor?.name}: ${String((e as Error)?.message ?? e).slice(0, 300)}`;
  }
  if (!e.message || e.message.includes("\n    at ")) return `KilnError without a message: ${e.message}`;
  if (path !== undefined && !e.message.includes(path)) {
    return `KilnError that does not name the file: ${e.message.slice(0, 300)}`;
  }
  if (codes && !codes.includes(e.code)) return `KilnError of code '${e.code}': ${e.message.slice(0, 300)}`;
  return null;
}

/** Runs `cases` cases of `one`, which returns "loaded", "refused" or a finding. */
async function _run(
  parser: string,
  opts: FuzzOptions,
  one: (r: CaseRandom, i: number) => Promise<"loaded" | "refused" | string> | "loaded" | "refused" | string,
): Promise<FuzzReport> {
  const report: FuzzReport = { parser, seed: opts.seed, cases: 0, loaded: 0, refused: 0, findings: [] };
  const first = opts.first ?? 0;
  for (let i = first; i < first + opts.cases; i++) {
    opts.onCase?.(i);
    let out: string;
    try {
      out = await one(new CaseRandom(opts.seed, i), i);
    } catch (e) {
      out = `the fuzzer itself failed: ${(e as Error)?.stack ?? e}`;
    }
    report.cases++;
    if (out === "loaded") report.loaded++;
    else if (out === "refused") report.refused++;
    else report.findings.push(`${parser} seed ${opts.seed} case ${i}: ${out}`);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Byte-level fuzzers of whole files: ONNX models, program files, IR sections, safetensors files.

/** A small conv net with inline weights (every field kind the importer reads: attrs, raw data, shapes). */
export function fuzzModel(): Uint8Array {
  const w = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s) * 0.3);
  return buildModel({
    opset: 17,
    graph: {
      inputs: [{ name: "x", dtype: "float32", dims: ["batch", 2, 6, 6] }],
      outputs: [{ name: "y", dtype: "float32", dims: ["batch", 3] }],
      initializers: [
        { name: "cw", dtype: "float32", dims: [4, 2, 3, 3], data: w(72, 1) },
        { name: "cb", dtype: "float32", dims: [4], data: w(4, 2) },
        { name: "fw", dtype: "float32", dims: [3, 4], data: w(12, 3) },
        { name: "fb", dtype: "float32", dims: [3], data: w(3, 4), encoding: "typed" },
        { name: "shape", dtype: "int64", dims: [2], data: [0n, -1n] },
      ],
      nodes: [
        { op: "Conv", inputs: ["x", "cw", "cb"], outputs: ["c"], attrs: { pads: { ints: [1, 1, 1, 1] } } },
        { op: "Relu", inputs: ["c"], outputs: ["r"] },
        { op: "GlobalAveragePool", inputs: ["r"], outputs: ["g"] },
        { op: "Reshape", inputs: ["g", "shape"], outputs: ["f"] },
        { op: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["y0"], attrs: { transB: { i: 1 } } },
        { op: "Softmax", inputs: ["y0"], outputs: ["y"], attrs: { axis: { i: 1 } } },
      ],
    },
  });
}

const X: Tensor = { dtype: "float32", dims: [1, 2, 6, 6], data: new Float32Array(72).map((_, i) => i / 72) };

/** Corrupted ONNX models: each must fail with a KilnError or still compile and run. */
export function fuzzOnnxModels(opts: FuzzOptions): Promise<FuzzReport> {
  const good = fuzzModel();
  return _run("onnx-models", opts, async (r) => {
    const [bytes, how] = mutateBytes(good, () => r.u());
    try {
      const program = compile(await parseOnnx(bytes, { inputDims: { x: [1, 2, 6, 6] } }), "ref");
      try {
        const ok = program.inputs.length === 1 && program.inputs[0].dims.join() === "1,2,6,6" &&
          program.info().arenaBytes < 64 << 20;
        if (ok && program.inputs[0].dtype === "float32") await program.eval({ x: X });
      } finally {
        program.dispose();
      }
      return "loaded";
    } catch (e) {
      const bad = notAKilnError(e);
      return bad ? `${how}: ${bad}` : "refused";
    }
  });
}

/** Corrupted .kiln program files: each must fail with a KilnError naming the file, or still load and run. */
export async function fuzzProgramFiles(opts: FuzzOptions): Promise<FuzzReport> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_" });
  try {
    const program = compile(await parseOnnx(fuzzModel(), { inputDims: { x: [1, 2, 6, 6] } }), "ref");
    await save(program, `${dir}/good.kiln`);
    program.dispose();
    const good = await Deno.readFile(`${dir}/good.kiln`);
    const path = `${dir}/m.kiln`;
    return await _run("program-files", opts, async (r) => {
      const [bytes, how] = mutateBytes(good, () => r.u());
      await Deno.writeFile(path, bytes);
      try {
        const p = await load(path);
        try {
          await p.eval({ x: X });
        } finally {
          p.dispose();
        }
        return "loaded";
      } catch (e) {
        const bad = notAKilnError(e);
        return bad ? `${how}: ${bad}` : "refused";
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Corrupted IR sections (past the file checksums): each must fail with a KilnError (not "internal"), never trap. */
export async function fuzzIrSections(opts: FuzzOptions): Promise<FuzzReport> {
  const program = compile(await parseOnnx(fuzzModel(), { inputDims: { x: [1, 2, 6, 6] } }), "ref");
  const { ir, hostLiterals } = program.serialize();
  program.dispose();
  return _run("ir-sections", opts, async (r) => {
    const [bytes, how] = mutateBytes(ir, () => r.u());
    try {
      const p = deserializeProgram(bytes, hostLiterals, "ref");
      try {
        const fits = p.inputs.length === 1 && p.inputs[0].dims.join() === "1,2,6,6" &&
          p.inputs[0].dtype === "float32" && p.info().arenaBytes < 64 << 20;
        if (fits) await p.eval({ x: X });
      } finally {
        p.dispose();
      }
      return "loaded";
    } catch (e) {
      const bad = notAKilnError(e) ??
        ((e as KilnError).code === "internal" ? `internal: ${(e as Error).message}` : null);
      return bad ? `${how}: ${bad.slice(0, 300)}` : "refused";
    }
  });
}

/** Corrupted safetensors files bound to a program (tinynet): a KilnError naming the file, or a bind. */
export async function fuzzSafetensorsFiles(opts: FuzzOptions): Promise<FuzzReport> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_st_" });
  const tiny = new URL("../../examples/tinynet/", import.meta.url).pathname;
  const program = compile(
    await parseOnnx(`${tiny}tinynet.onnx`, { deferExternalWeights: true, inputDims: { x: [1, 3, 16, 16] } }),
    "ref",
  );
  try {
    const set = await WeightSet.fromOnnxDir(program, tiny);
    await writeSafetensors(`${dir}/good.safetensors`, [...set.tensors.values()]);
    const good = await Deno.readFile(`${dir}/good.safetensors`);
    const path = `${dir}/m.safetensors`;
    return await _run("safetensors-files", opts, async (r, i) => {
      // half the mutants hit the JSON header, where the parsing is
      const [bytes, how] = mutateBytes(i % 2 ? good : good.subarray(0, 8 + 200), () => r.u());
      await Deno.writeFile(path, i % 2 ? bytes : Uint8Array.from([...bytes, ...good.subarray(8 + 200)]));
      try {
        await program.bindWeights(await WeightSet.fromSafetensors(program, path));
        return "loaded";
      } catch (e) {
        const bad = notAKilnError(e, path);
        return bad ? `${how}: ${bad}` : "refused";
      }
    });
  } finally {
    program.dispose();
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// safetensors headers, structured.

const ST_TYPES: readonly (readonly [string, DTypeName, number])[] = [
  ["F32", "float32", 4],
  ["F16", "float16", 2],
  ["BF16", "bfloat16", 2],
  ["F64", "float64", 8],
  ["I8", "int8", 1],
  ["I16", "int16", 2],
  ["I32", "int32", 4],
  ["I64", "int64", 8],
  ["U8", "uint8", 1],
  ["U16", "uint16", 2],
  ["U32", "uint32", 4],
  ["U64", "uint64", 8],
  ["BOOL", "bool", 1],
];
const ST_BY_CODE = new Map(ST_TYPES.map((t) => [t[0], t]));
const PLAIN_NAMES = [
  "w",
  "b",
  "fc.weight",
  "fc.bias",
  "layers.0.self_attn.q_proj.weight",
  "emb",
  "norm.gamma",
  "x",
];
/** Names that are JavaScript object keys, empty, non-ASCII, with control characters, quotes, long. */
export const ODD_NAMES: readonly string[] = [
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "isPrototypeOf",
  "__defineGetter__",
  "",
  " ",
  "é名🔥",
  "a\nb",
  "nul\u0000x",
  "q'\"\\",
  "\t",
  "\u2028\u2029",
  "x".repeat(300),
  "__metadata",
  "__metadata__ ",
  "../../etc/passwd",
  "\u00ff\u0100\uffff",
];

interface _StTensor {
  name: string;
  /** the key as written, when spelled with escapes */
  nameText?: string;
  code: string;
  dims: number[];
  b: number;
  e: number;
  dtypeText?: string;
  shapeText?: string;
  offsetsText?: string;
  /** extra members of the entry, as JSON text (duplicate or unknown fields) */
  extra: string[];
  /** the entry's whole value as JSON text (not an object of fields) */
  raw?: string;
  order: string[];
}

interface _StCase {
  tensors: _StTensor[];
  meta?: [string, string][];
  metaText?: string;
  metaAt: number;
  data: Uint8Array;
  /** random byte noise was added: no oracle, only consistency */
  noise?: (b: Uint8Array) => Uint8Array;
  lenDelta: bigint;
  lenAbs?: bigint;
  bom: boolean;
  lead: string;
  ws: string[];
  pad: number | "aligned";
  extraMembers: string[];
  textEdit?: (json: string) => string;
  byteEdit?: (h: Uint8Array) => Uint8Array;
  truncate?: number;
  append?: number;
  how: string[];
}

const _count = (dims: readonly number[]) => dims.reduce((a, d) => a * d, 1);

/** A name spelled with some code points as \u escapes (the same name once decoded). */
function _escaped(name: string, r: CaseRandom): string {
  let out = "";
  for (const ch of name) {
    if (r.chance(0.5)) {
      for (let k = 0; k < ch.length; k++) out += `\\u${ch.charCodeAt(k).toString(16).padStart(4, "0")}`;
    } else out += JSON.stringify(ch).slice(1, -1);
  }
  return `"${out}"`;
}

function _stLayout(c: _StCase, r: CaseRandom): void {
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const t of r.shuffle(c.tensors)) {
    // a shape too large to hold stays wrong: its tensor gets a few bytes, the oracle sees the mismatch
    const len = Math.min(_count(t.dims) * ST_BY_CODE.get(t.code)![2], 4096);
    t.b = off;
    t.e = off + len;
    off += len;
    parts.push(r.bytes(len));
  }
  c.data = new Uint8Array(off);
  let at = 0;
  for (const p of parts) {
    c.data.set(p, at);
    at += p.length;
  }
}

function _stBase(r: CaseRandom): _StCase {
  const c: _StCase = {
    tensors: [],
    metaAt: 0,
    data: new Uint8Array(0),
    lenDelta: 0n,
    bom: false,
    lead: "",
    ws: [""],
    pad: "aligned",
    extraMembers: [],
    how: [],
  };
  const n = r.int(6);
  const names = new Set<string>();
  for (let k = 0; k < n; k++) {
    let name = r.chance(0.2) ? r.pick(ODD_NAMES) : r.pick(PLAIN_NAMES);
    while (names.has(name)) name += `.${k}`;
    names.add(name);
    const [code] = r.pick(ST_TYPES);
    const dims = Array.from({ length: r.int(4) }, () => r.int(5));
    c.tensors.push({ name, code, dims, b: 0, e: 0, extra: [], order: ["dtype", "shape", "data_offsets"] });
  }
  _stLayout(c, r);
  c.tensors = r.shuffle(c.tensors); // header order is not data order
  if (r.chance(0.3)) {
    const keys = new Set<string>();
    for (let k = r.int(4); k > 0; k--) {
      keys.add(r.chance(0.3) ? r.pick(ODD_NAMES) : r.pick(["format", "version", "k"]));
    }
    c.meta = [...keys].map((k) => [k, r.pick(["pt", "", "é", "1.0", '{"a":1}', ...ODD_NAMES])]);
    c.metaAt = r.int(n + 1);
  }
  return c;
}

type _Mut = (c: _StCase, r: CaseRandom) => string | undefined;

/** Mutations that keep the file valid or are judged by the oracle from the model. */
const ST_SEMANTIC: _Mut[] = [
  (c, r) => {
    const t = c.tensors.length ? r.pick(c.tensors) : undefined;
    if (!t?.dims.length) return;
    const k = r.int(t.dims.length);
    t.dims[k] = r.pick([0, 1, 2, 3, 7, 2 ** 31, 2 ** 40, 2 ** 53, 2 ** 60, 2 ** 70]);
    return `dim ${k} of '${t.name}' set to ${t.dims[k]}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.dims.push(r.pick([0, 1, 2]));
    return `a dim appended to '${t.name}'`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    const d = r.pick([-9, -8, -4, -1, 1, 2, 4, 8, 9, 2 ** 53, -(2 ** 53)]);
    t.b += d;
    t.e += d;
    return `'${t.name}' shifted by ${d}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    const d = r.pick([-9, -4, -1, 1, 4, 9]);
    t.e += d;
    return `the end of '${t.name}' moved by ${d}`;
  },
  (c, r) => {
    _stLayout(c, r);
    return "laid out in another order";
  },
  (c, r) => {
    // a gap of junk at a tensor boundary (or at the start, or trailing)
    const bounds = [0, ...c.tensors.map((t) => t.e)];
    const at = Math.max(0, Math.min(c.data.length, r.pick(bounds)));
    const g = 1 + r.int(9);
    const data = new Uint8Array(c.data.length + g);
    data.set(c.data.subarray(0, at));
    data.set(r.bytes(g), at);
    data.set(c.data.subarray(at), at + g);
    c.data = data;
    for (const t of c.tensors) {
      if (t.b >= at && !(t.b === at && t.e === at && r.chance(0.5))) {
        t.b += g;
        t.e += g;
      }
    }
    return `${g} junk bytes at data byte ${at}`;
  },
  (c, r) => {
    if (c.tensors.length < 2) return;
    const [a, b] = r.shuffle(c.tensors);
    const len = b.e - b.b;
    b.b = a.b + r.int(a.e - a.b + 1);
    b.e = b.b + len;
    return `'${b.name}' moved onto '${a.name}'`;
  },
  (c, r) => {
    if (c.tensors.length < 2) return;
    const [a, b] = r.shuffle(c.tensors);
    b.name = a.name;
    b.nameText = r.chance(0.5) ? _escaped(a.name, r) : undefined;
    return `'${b.name}' twice`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.name = r.pick(ODD_NAMES);
    t.nameText = undefined;
    return `a tensor renamed ${JSON.stringify(t.name.slice(0, 20))}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.nameText = _escaped(t.name, r);
    return `'${t.name}' spelled ${t.nameText.slice(0, 40)}`;
  },
  (c, r) => {
    c.meta = ODD_NAMES.filter(() => r.chance(0.3)).map((k) => [k, r.pick(ODD_NAMES)]);
    c.metaAt = r.int(c.tensors.length + 1);
    return `metadata of ${c.meta.length} odd keys`;
  },
  (c) => {
    c.tensors = [];
    c.data = new Uint8Array(0);
    return "no tensors";
  },
  (c, r) => {
    const bounds = [0, ...c.tensors.map((t) => t.e), r.int(c.data.length + 1)];
    const at = r.pick(bounds);
    const [code] = r.pick(ST_TYPES);
    let name = r.pick([...PLAIN_NAMES, ...ODD_NAMES]);
    while (c.tensors.some((t) => t.name === name)) name += "'";
    c.tensors.splice(r.int(c.tensors.length + 1), 0, {
      name,
      code,
      dims: r.shuffle([0, ...Array.from({ length: r.int(3) }, () => r.int(4))]),
      b: at,
      e: at,
      extra: [],
      order: ["dtype", "shape", "data_offsets"],
    });
    return `an empty tensor at data byte ${at}`;
  },
  (c, r) => {
    c.ws = r.pick([[" "], ["\n", "  "], ["\t"], ["\r\n"], ["", " ", "\n\t"]]);
    c.lead = r.pick(["", " ", "\n", " \t\r\n"]);
    return "spaced";
  },
  (c, r) => {
    c.pad = r.int(20);
    return `${c.pad} spaces of padding`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.dims = r.pick([[2 ** 26, 2 ** 26, 2 ** 26], [2 ** 31, 2 ** 31], [9007199254740991], [0, 2 ** 53], [
      2 ** 52,
      4,
    ]]);
    return `'${t.name}' given shape [${t.dims}]`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    const size = ST_BY_CODE.get(t.code)![2];
    t.code = r.pick(r.chance(0.5) ? ST_TYPES.filter((x) => x[2] === size) : ST_TYPES)[0];
    return `'${t.name}' given dtype ${t.code}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.dims = Array(r.pick([63, 64, 65, 100])).fill(1);
    _stLayout(c, r);
    return `'${t.name}' given ${t.dims.length} dims`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.order = r.shuffle(t.order);
    return `the fields of '${t.name}' reordered`;
  },
];

/** Mutations that make the file invalid for certain. */
const ST_INVALID: _Mut[] = [
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.dtypeText = r.pick([
      '"F33"',
      '"f32"',
      '""',
      '"FLOAT"',
      '"F8_E4M3"',
      '"F8_E5M2"',
      '"C64"',
      '"F4"',
      "32",
      "null",
      '["F32"]',
      '{"F32":1}',
      '"F32 "',
    ]);
    return `'${t.name}' dtype ${t.dtypeText}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    const bad = r.pick([
      "-1",
      "2.0",
      "1e1",
      '"2"',
      "null",
      "true",
      "9007199254740993",
      "1e400",
      "-0",
      "[]",
      "{}",
      "0.5",
      "2E0",
    ]);
    const texts = t.dims.map(String);
    texts.splice(r.int(texts.length + 1), texts.length ? 1 : 0, bad);
    t.shapeText = `[${texts.join(",")}]`;
    return `'${t.name}' shape ${t.shapeText}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.shapeText = r.pick(["2", "{}", '"[2]"', "null", "true", "[[2]]"]);
    return `'${t.name}' shape ${t.shapeText}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.offsetsText = r.pick([
      `[${t.b}]`,
      `[${t.b},${t.e},${t.e}]`,
      `["${t.b}",${t.e}]`,
      `[${t.b}.0,${t.e}]`,
      `[${t.b},${t.e}e0]`,
      `[-${t.b},${t.e}]`,
      `[${t.b},-${t.e + 1}]`,
      "{}",
      `[${t.b},null]`,
      "[]",
      `{"0":${t.b},"1":${t.e}}`,
    ]);
    return `'${t.name}' offsets ${t.offsetsText}`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    const f = r.pick(["dtype", "shape", "data_offsets"]);
    t.extra.push(
      f === "dtype"
        ? `"dtype":${JSON.stringify(t.code)}`
        : f === "shape"
        ? `"shape":[${t.dims.join(",")}]`
        : `"data_offsets":[${t.b},${t.e}]`,
    );
    return `'${t.name}' field ${f} twice`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.extra.push(
      r.pick(['"foo":1', '"dtype ":"F32"', '"Dtype":"F32"', '"offsets":[0,0]', '"__proto__":{}', '"":""']),
    );
    return `'${t.name}' with an unknown field`;
  },
  (c, r) => {
    if (!c.tensors.length) return;
    const t = r.pick(c.tensors);
    t.raw = r.pick(["null", "[]", '"F32"', "42", "true", "{}", '{"dtype":"F32"}', "[0,4]"]);
    return `'${t.name}' entry ${t.raw}`;
  },
  (c, r) => {
    c.metaText = r.pick([
      '{"a":1}',
      "null",
      "[]",
      '"x"',
      '{"a":"x","a":"y"}',
      '{"a":{"b":"c"}}',
      '{"a":null}',
      '{"a":["x"]}',
    ]);
    c.metaAt = r.int(c.tensors.length + 1);
    return `metadata ${c.metaText}`;
  },
  (c, r) => {
    if (!c.tensors.length) {
      c.extraMembers.push('"__metadata__":{}');
      c.meta = [];
      return "__metadata__ twice";
    }
    const t = r.pick(c.tensors);
    t.name = "__metadata__";
    t.nameText = r.chance(0.5) ? _escaped(t.name, r) : undefined;
    return "a tensor named __metadata__";
  },
  (c, r) => {
    const edit = r.int(9);
    c.textEdit = (j) => {
      const end = j.lastIndexOf("}");
      switch (edit) {
        case 0:
          return j.slice(0, end) + j.slice(end + 1);
        case 1:
          return `${j.slice(0, end)},}`;
        case 2:
          return `${j} x`;
        case 3:
          return `${j.slice(0, end)}${j.length > 2 ? "," : ""}"a\nb":{}}`;
        case 4:
          return `${j.slice(0, end)}${j.length > 2 ? "," : ""}"\\ud800x":{}}`;
        case 5:
          return `${j.slice(0, end)}${j.length > 2 ? "," : ""}'a':{}}`;
        case 6:
          return `${j.slice(0, end)}${j.length > 2 ? "," : ""}"deep":${"[".repeat(30)}${"]".repeat(30)}}`;
        case 7:
          return `${j.slice(0, end)}${
            j.length > 2 ? "," : ""
          }"n":{"dtype":"F32","shape":[NaN],"data_offsets":[0,0]}}`;
        default:
          return `/*c*/${j}`;
      }
    };
    return `header text edit ${edit}`;
  },
  (c) => {
    c.bom = true;
    return "a byte-order mark";
  },
  (c, r) => {
    const byte = r.pick([0xff, 0xc0, 0x80, 0xed, 0xf8]);
    const frac = r.u();
    c.byteEdit = (h) => {
      const at = Math.floor(frac * (h.length + 1));
      return Uint8Array.from([...h.subarray(0, at), byte, ...h.subarray(at)]);
    };
    return `byte 0x${byte.toString(16)} in the header`;
  },
  (c, r) => {
    if (r.chance(0.5)) c.lenDelta = BigInt(r.pick([-1, -2, -7, -8, 1, 2, 8, 2 ** 32]));
    else c.lenAbs = r.pick([0n, 100_000_001n, 1n << 63n, (1n << 64n) - 1n]);
    return `header length ${c.lenAbs !== undefined ? `${c.lenAbs}` : `off by ${c.lenDelta}`}`;
  },
  (c, r) => {
    c.truncate = r.u();
    return "truncated";
  },
  (c, r) => {
    c.append = 1 + r.int(16);
    return `${c.append} bytes appended`;
  },
];

function _stBytes(c: _StCase, r: CaseRandom): { bytes: Uint8Array; json?: Uint8Array } {
  let w = 0;
  const ws = () => c.ws[w++ % c.ws.length];
  const entry = (t: _StTensor) => {
    if (t.raw !== undefined) return t.raw;
    const field = (f: string) =>
      f === "dtype"
        ? `"dtype":${ws()}${t.dtypeText ?? JSON.stringify(t.code)}`
        : f === "shape"
        ? `"shape":${ws()}${t.shapeText ?? `[${t.dims.map((d) => `${ws()}${d}`).join(",")}]`}`
        : `"data_offsets":${ws()}${t.offsetsText ?? `[${t.b},${ws()}${t.e}]`}`;
    return `{${ws()}${[...t.order.map(field), ...t.extra].join(`,${ws()}`)}${ws()}}`;
  };
  const members = c.tensors.map((t) => `${t.nameText ?? JSON.stringify(t.name)}${ws()}:${ws()}${entry(t)}`);
  if (c.meta || c.metaText) {
    const meta = c.metaText ??
      `{${c.meta!.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
    members.splice(Math.min(c.metaAt, members.length), 0, `"__metadata__":${ws()}${meta}`);
  }
  members.push(...c.extraMembers);
  let json = `${c.lead}{${ws()}${members.join(`,${ws()}`)}${ws()}}`;
  if (c.textEdit) json = c.textEdit(json);
  let h: Uint8Array = new TextEncoder().encode(json);
  if (c.byteEdit) h = c.byteEdit(h);
  if (c.bom) h = Uint8Array.from([0xef, 0xbb, 0xbf, ...h]);
  const pad = c.pad === "aligned" ? (8 - (h.length % 8)) % 8 : c.pad;
  const n = h.length + pad;
  const len = c.lenAbs ?? BigInt.asUintN(64, BigInt(n) + c.lenDelta);
  let bytes: Uint8Array = new Uint8Array(8 + n + c.data.length);
  new DataView(bytes.buffer).setBigUint64(0, len, true);
  bytes.set(h, 8);
  bytes.fill(0x20, 8 + h.length, 8 + n);
  bytes.set(c.data, 8 + n);
  if (c.truncate !== undefined) bytes = bytes.slice(0, Math.floor(c.truncate * bytes.length));
  if (c.append) bytes = Uint8Array.from([...bytes, ...r.bytes(c.append)]);
  const clean = c.textEdit || c.byteEdit || c.bom ? undefined : new TextEncoder().encode(json);
  if (c.noise) bytes = c.noise(bytes);
  return { bytes, json: clean };
}

const _eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, k) => x === b[k]);

/** JSON whitespace, and the whitespace kiln's .npy reader allows (Python's, less form feeds). */
const _isWs = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

/**
 * The data a file holds after a header that must be `text` and then only whitespace (whatever
 * its length field claims: a header length that lies, a cut or an extension of the file are
 * judged from the bytes as they are), or why the header is not that.
 */
function _dataAfter(
  bytes: Uint8Array,
  start: number,
  claimed: bigint,
  text: Uint8Array,
): Uint8Array | string {
  if (BigInt(start) + claimed > BigInt(bytes.length)) return "the header runs past the file";
  const h = bytes.subarray(start, start + Number(claimed));
  if (h.length < text.length || !_eq(h.subarray(0, text.length), text)) {
    return "the header is cut or is not the text";
  }
  if (!h.subarray(text.length).every(_isWs)) return "the header has more than whitespace after its text";
  return bytes.subarray(start + h.length);
}

type _StExpect =
  | {
    valid: true;
    tensors: Map<string, { dtype: DTypeName; dims: number[]; bytes: Uint8Array }>;
    meta: Map<string, string>;
  }
  | { valid: false; why: string };

/**
 * The oracle: from the model, and the bytes only where the length field, a cut or an extension
 * decide where the header ends, whether the file is valid and what it holds.
 */
function _stExpect(c: _StCase, bytes: Uint8Array, json: Uint8Array | undefined): _StExpect {
  const no = (why: string): _StExpect => ({ valid: false, why });
  if (!json) return no("the header is not JSON");
  if (c.metaText !== undefined) return no("metadata that is not a map of strings");
  if (c.extraMembers.length) return no("__metadata__ twice");
  if (bytes.length < 8) return no("shorter than the length field");
  const claimed = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true);
  if (claimed > 100_000_000n) return no("a header length over 100 MB");
  const data = _dataAfter(bytes, 8, claimed, json);
  if (typeof data === "string") return no(data);
  const meta = new Map<string, string>();
  for (const [k, v] of c.meta ?? []) {
    if (meta.has(k)) return no("a metadata key twice");
    meta.set(k, v);
  }
  const tensors = new Map<string, { dtype: DTypeName; dims: number[]; bytes: Uint8Array }>();
  const spans: [number, number][] = [];
  for (const t of c.tensors) {
    if (t.name === "__metadata__") {
      // valid only when its entry happens to be a map of strings, and the only __metadata__
      if (c.meta || c.metaText || c.tensors.filter((x) => x.name === t.name).length > 1) {
        return no("__metadata__ twice");
      }
      if (t.raw !== "{}" && t.raw !== '{"dtype":"F32"}') return no("a tensor named __metadata__");
      if (t.raw !== "{}") meta.set("dtype", "F32");
      continue;
    }
    if (t.raw !== undefined || t.extra.length) {
      return no(`'${t.name}': an entry that is not dtype, shape, data_offsets once`);
    }
    if (t.dtypeText !== undefined || t.shapeText !== undefined || t.offsetsText !== undefined) {
      return no(`'${t.name}': a field of the wrong kind`);
    }
    if (tensors.has(t.name)) return no(`'${t.name}' twice`);
    const ty = ST_BY_CODE.get(t.code);
    if (!ty) return no("a dtype kiln does not read");
    if (t.dims.length > 64) return no("more than 64 dims");
    if (!t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return no("a dim that is not a safe integer");
    }
    if (![t.b, t.e].every((x) => Number.isSafeInteger(x) && x >= 0)) {
      return no("an offset that is not a safe integer");
    }
    if (t.e < t.b || t.e > data.length) return no("offsets out of order or past the data");
    // counted in 64 bits, as the reference counts: an overflow is an error even before a 0
    let count = 1n;
    for (const d of t.dims) {
      if ((count *= BigInt(d)) >= 1n << 64n) return no("a shape that overflows 64 bits");
    }
    if (count * BigInt(ty[2]) >= 1n << 64n) return no("a byte size that overflows 64 bits");
    if (count * BigInt(ty[2]) !== BigInt(t.e - t.b)) return no("a byte length that does not match the shape");
    tensors.set(t.name, { dtype: ty[1], dims: t.dims, bytes: data.subarray(t.b, t.e) });
    spans.push([t.b, t.e]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, e] of spans) {
    if (b !== at) return no(b > at ? "a gap" : "an overlap");
    at = e;
  }
  if (at !== data.length) return no("trailing bytes");
  return { valid: true, tensors, meta };
}

/** Differential check of an index against JSON.parse and the file's byte counts (for noise cases). */
function _stConsistent(index: SafetensorsIndex, bytes: Uint8Array): string | null {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    return "accepted a header JSON.parse refuses";
  }
  const names = Object.keys(json).filter((k) => k !== "__metadata__");
  if (names.length !== index.entries.size || !names.every((k) => index.entries.has(k))) {
    return "its tensors differ from JSON.parse's";
  }
  const spans: [number, number][] = [];
  for (const [name, e] of index.entries) {
    const j = json[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (ST_BY_CODE.get(j.dtype)?.[1] !== e.dtype) return `'${name}': dtype differs from JSON.parse's`;
    if (j.shape.join() !== e.dims.join() || j.shape.length !== e.dims.length) {
      return `'${name}': shape differs`;
    }
    const [b, end] = j.data_offsets;
    if (e.offset !== 8 + n + b || e.length !== end - b) return `'${name}': offsets differ`;
    if (e.length !== _count(e.dims) * ST_BY_CODE.get(j.dtype)![2]) {
      return `'${name}': length is not the shape's`;
    }
    spans.push([b, end]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, e] of spans) {
    if (b !== at) return "accepted a gap or an overlap";
    at = e;
  }
  if (8 + n + at !== bytes.length) return "accepted trailing bytes";
  const meta = (json.__metadata__ ?? {}) as Record<string, string>;
  if (
    Object.keys(meta).length !== index.metadata.size ||
    Object.entries(meta).some(([k, v]) => index.metadata.get(k) !== v)
  ) {
    return "metadata differs from JSON.parse's";
  }
  return null;
}

/**
 * safetensors headers, structured: a valid file from a model, 0-3 mutations of the model (see
 * the module doc), sometimes byte noise; every 8th case through a file on disk, the others in
 * memory. Each must load exactly the model's tensors (when the oracle calls it valid) or fail
 * with a KilnError naming the file.
 */
export async function fuzzSafetensorsHeaders(opts: FuzzOptions): Promise<FuzzReport> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_sth_" });
  try {
    return await _run("safetensors-headers", opts, async (r, i) => {
      const c = _stBase(r);
      for (let k = r.pick([0, 1, 1, 2, 2, 3]); k > 0; k--) {
        const invalid = r.chance(0.35);
        const how = r.pick(invalid ? ST_INVALID : ST_SEMANTIC)(c, r);
        if (how) {
          c.how.push(how);
        }
      }
      if (r.chance(0.1)) {
        const seed = r.u();
        let s = seed;
        const rnd = () => (s = (s * 9301 + 49297) % 233280 / 233280);
        c.noise = (b) => {
          const n = b.length < 8
            ? 0
            : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true) & 0xfffffn);
          const head = Math.min(b.length, 8 + n);
          const [m, how] = mutateBytes(b.subarray(0, head), rnd);
          c.how.push(`noise: ${how}`);
          return Uint8Array.from([...m, ...b.subarray(head)]);
        };
      }
      const { bytes, json } = _stBytes(c, r);
      const want = c.noise ? undefined : _stExpect(c, bytes, json);
      const how = c.how.join(", ") || "unmutated";
      const onDisk = i % 8 === 0;
      const path = onDisk ? `${dir}/c${i}.safetensors` : `/fuzz/case-${i}.safetensors`;
      let index: SafetensorsIndex;
      try {
        if (onDisk) {
          await Deno.writeFile(path, bytes);
          try {
            index = await readSafetensorsIndex(path);
          } finally {
            await Deno.remove(path);
          }
        } else index = safetensorsIndexOf(bytes, path);
      } catch (e) {
        const bad = notAKilnError(e, path, ["weights", "io"]);
        if (bad) return `${how}: ${bad}`;
        if (want?.valid) return `${how}: refused a valid file: ${(e as Error).message.slice(0, 300)}`;
        return "refused";
      }
      if (!want) {
        const bad = _stConsistent(index, bytes);
        return bad ? `${how}: ${bad}` : "loaded";
      }
      if (!want.valid) return `${how}: accepted an invalid file (${want.why})`;
      if (index.entries.size !== want.tensors.size) {
        return `${how}: ${index.entries.size} tensors, ${want.tensors.size} in the file`;
      }
      for (const [name, w] of want.tensors) {
        const e = index.entries.get(name);
        if (!e) return `${how}: tensor ${JSON.stringify(name)} missing`;
        if (
          e.name !== name || e.dtype !== w.dtype || e.dims.join() !== w.dims.join() ||
          e.dims.length !== w.dims.length
        ) {
          return `${how}: tensor ${
            JSON.stringify(name)
          } is ${e.dtype}[${e.dims}], the file says ${w.dtype}[${w.dims}]`;
        }
        if (!_eq(bytes.subarray(e.offset, e.offset + e.length), w.bytes)) {
          return `${how}: tensor ${JSON.stringify(name)} reads other bytes than the file holds for it`;
        }
      }
      if (
        index.metadata.size !== want.meta.size || [...want.meta].some(([k, v]) => index.metadata.get(k) !== v)
      ) {
        return `${how}: metadata differs`;
      }
      return "loaded";
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// .npy headers, structured.

const NPY_TYPES: readonly (readonly [string, DTypeName, number])[] = [
  ["f4", "float32", 4],
  ["f2", "float16", 2],
  ["V2", "bfloat16", 2],
  ["f8", "float64", 8],
  ["i1", "int8", 1],
  ["i2", "int16", 2],
  ["i4", "int32", 4],
  ["i8", "int64", 8],
  ["u1", "uint8", 1],
  ["u2", "uint16", 2],
  ["u4", "uint32", 4],
  ["u8", "uint64", 8],
  ["b1", "bool", 1],
];

interface _NpyCase {
  major: number;
  minor: number;
  magic: number[];
  code: string;
  order: string;
  dims: number[];
  /** the data as the file holds it */
  data: Uint8Array;
  /** dict members in order: key text, value text, and what they mean */
  items: { key: string | null; keyText: string; valueText: string }[];
  descrText?: string;
  fortranText?: string;
  shapeText?: string;
  longs: boolean;
  trailingComma: boolean;
  ws: string[];
  lead: string;
  tail: string;
  pad: "numpy" | string;
  lenDelta: number;
  lenAbs?: number;
  byteEdit?: (h: Uint8Array) => Uint8Array;
  truncate?: number;
  append?: number;
  noise?: (b: Uint8Array) => Uint8Array;
  how: string[];
}

function _npyBase(r: CaseRandom): _NpyCase {
  const [code, dtype, size] = r.pick(NPY_TYPES);
  const dims = Array.from({ length: r.int(4) }, () => r.int(5));
  const n = _count(dims) * size;
  const data = dtype === "bool" ? Uint8Array.from({ length: n }, () => r.int(2)) : r.bytes(n);
  return {
    major: r.pick([1, 1, 1, 2, 3]),
    minor: 0,
    magic: [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59],
    code,
    order: size === 1
      ? r.pick(["|", "|", "<", ">", "=", ""])
      : code === "V2"
      ? r.pick(["|", "", "<", ">"])
      : r.pick(["<", "<", ">"]),
    dims,
    data,
    items: [{ key: "descr", keyText: "'descr'", valueText: "" }, {
      key: "fortran_order",
      keyText: "'fortran_order'",
      valueText: "",
    }, {
      key: "shape",
      keyText: "'shape'",
      valueText: "",
    }],
    longs: false,
    trailingComma: true,
    ws: [" "],
    lead: "",
    tail: "",
    pad: "numpy",
    lenDelta: 0,
    how: [],
  };
}

const NPY_SEMANTIC: ((c: _NpyCase, r: CaseRandom) => string | undefined)[] = [
  (c, r) => {
    c.items = r.shuffle(c.items);
    return "keys reordered";
  },
  (c, r) => {
    for (const it of c.items) if (it.key && r.chance(0.5)) it.keyText = `"${it.key}"`;
    return "double quotes";
  },
  (c, r) => {
    c.ws = r.pick([[""], ["  "], ["\t"], ["\n"], ["", " ", "\n  "], ["\r\n"]]);
    c.lead = r.pick(["", " ", "\t", "  "]);
    return "spaced";
  },
  (c) => {
    c.trailingComma = !c.trailingComma;
    return "trailing comma toggled";
  },
  (c) => {
    c.longs = true;
    return "Python 2 longs";
  },
  (c, r) => {
    c.major = r.pick([1, 2, 3]);
    return `version ${c.major}.0`;
  },
  (c, r) => {
    const size = NPY_TYPES.find((t) => t[0] === c.code)![2];
    if (size === 1 || c.code === "V2") return;
    c.order = c.order === "<" ? ">" : "<";
    if (r.chance(0.5)) c.code = r.pick(NPY_TYPES.filter((t) => t[2] === size && t[0] !== "V2"))[0];
    return `descr ${c.order}${c.code}`;
  },
  (c, r) => {
    if (!c.dims.length) return;
    const k = r.int(c.dims.length);
    c.dims[k] = r.pick([0, 1, 2, 5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 10 ** 12, 10 ** 20]);
    return `dim ${k} set to ${c.dims[k]}`;
  },
  (c, r) => {
    c.dims = r.shuffle(c.dims);
    if (r.chance(0.3)) c.dims.push(1);
    return "dims shuffled";
  },
  (c, r) => {
    const d = r.pick([-8, -4, -1, 1, 2, 8]);
    c.data = d < 0
      ? c.data.slice(0, Math.max(0, c.data.length + d))
      : Uint8Array.from([...c.data, ...r.bytes(d)]);
    return `data ${d > 0 ? "+" : ""}${d} bytes`;
  },
  (c, r) => {
    c.pad = r.pick(["", "\n", " ".repeat(100), "\n\n", "\t"]);
    return "other padding";
  },
  (c, r) => {
    const size = NPY_TYPES.find((t) => t[0] === c.code)![2];
    c.dims = Array(r.pick([63, 64, 65])).fill(1);
    c.data = c.code === "b1" ? Uint8Array.of(r.int(2)) : r.bytes(size);
    return `${c.dims.length} dims`;
  },
  (c) => {
    if (c.code !== "b1" || !c.data.length) return;
    c.data[c.data.length - 1] = 2;
    return "a bool of 2";
  },
];

const NPY_INVALID: ((c: _NpyCase, r: CaseRandom) => string | undefined)[] = [
  (c, r) => {
    const keyed = c.items.filter((x) => x.key);
    if (!keyed.length) return;
    const it = r.pick(keyed);
    c.items.splice(r.int(c.items.length + 1), 0, { ...it });
    return `key ${it.key} twice`;
  },
  (c, r) => {
    c.items.splice(r.int(c.items.length + 1), 0, {
      key: null,
      keyText: r.pick(["'extra'", "'Descr'", "'shape '", "'__class__'", "''"]),
      valueText: r.pick(["1", "'x'", "()", "True"]),
    });
    return "an unknown key";
  },
  (c, r) => {
    const k = r.int(c.items.length);
    const [gone] = c.items.splice(k, 1);
    return `no ${gone.key}`;
  },
  (c, r) => {
    const size = NPY_TYPES.find((t) => t[0] === c.code)![2];
    c.descrText = r.pick([
      "'<c8'",
      "'|O'",
      "'<U4'",
      "'<f3'",
      "'>b2'",
      "'=V2'",
      "[('a', '<f4')]",
      "'<f4 '",
      "'<F4'",
      "''",
      "4",
      "None",
      "b'<f4'",
      "'<f4",
      ...(size > 1 && c.code !== "V2" ? [`'=${c.code}'`, `'${c.code}'`, `'|${c.code}'`] : []),
    ]);
    return `descr ${c.descrText}`;
  },
  (c, r) => {
    c.fortranText = r.pick(["True", "0", "1", "'False'", "false", "None", "Fals", "True or False"]);
    return `fortran_order ${c.fortranText}`;
  },
  (c, r) => {
    c.shapeText = r.pick([
      "(-1,)",
      "(2.0,)",
      "(True,)",
      "(2)",
      "[2]",
      "(01,)",
      "(2,,)",
      "(,)",
      "(1e3,)",
      "(2 3)",
      "2",
      "None",
      "(0x10,)",
      "(2_0,)",
      "(2, -0)",
      "((2,),)",
      "(2147483648,)",
      "(99999999999999999999999,)",
    ]);
    return `shape ${c.shapeText}`;
  },
  (c, r) => {
    c.tail = r.pick([" x", ")", "#c", "}", ",", "\u0000"]);
    return `${JSON.stringify(c.tail)} after the dict`;
  },
  (c, r) => {
    const byte = r.pick([0x80, 0xff, 0xc3, 0x00, 0x7f, 0x5c]);
    const frac = r.u();
    c.byteEdit = (h) => {
      const at = 1 + Math.floor(frac * (h.length - 1)); // inside the dict's text
      return Uint8Array.from([...h.subarray(0, at), byte, ...h.subarray(at)]);
    };
    return `byte 0x${byte.toString(16)} in the header`;
  },
  (c, r) => {
    c.magic[r.int(6)] ^= 1 << r.int(8);
    return "bad magic";
  },
  (c, r) => {
    if (r.chance(0.5)) c.major = r.pick([0, 4, 255]);
    else c.minor = r.pick([1, 255]);
    return `version ${c.major}.${c.minor}`;
  },
  (c, r) => {
    if (r.chance(0.7)) c.lenDelta = r.pick([-1, -2, -16, 1, 2, 16]);
    else c.lenAbs = r.pick([0, 1, 0xffff, 0xffffffff]);
    return `header length ${c.lenAbs ?? `off by ${c.lenDelta}`}`;
  },
  (c, r) => {
    c.truncate = r.u();
    return "truncated";
  },
  (c, r) => {
    c.append = 1 + r.int(16);
    return `${c.append} bytes appended`;
  },
];

function _npyBytes(c: _NpyCase, r: CaseRandom): { bytes: Uint8Array; dict?: Uint8Array } {
  let w = 0;
  const ws = () => c.ws[w++ % c.ws.length];
  const L = c.longs ? "L" : "";
  const shape = c.shapeText ??
    (c.dims.length === 1
      ? `(${c.dims[0]}${L},)`
      : `(${c.dims.map((d) => `${d}${L}`).join(`,${ws()}`)}${c.trailingComma && c.dims.length ? "," : ""})`);
  const value = (it: _NpyCase["items"][number]) =>
    it.key === "descr"
      ? c.descrText ?? `'${c.order}${c.code}'`
      : it.key === "fortran_order"
      ? c.fortranText ?? "False"
      : it.key === "shape"
      ? shape
      : it.valueText;
  const members = c.items.map((it) => `${it.keyText}${ws()}:${ws()}${value(it)}`);
  const dict = `${c.lead}{${members.join(`,${ws()}`)}${
    c.trailingComma && members.length ? "," : ""
  }${ws()}}${c.tail}`;
  let h: Uint8Array = new TextEncoder().encode(dict);
  if (c.byteEdit) h = c.byteEdit(h);
  const prefix = c.major === 1 || c.major === 0 || c.major > 3 ? 10 : 12;
  const pad = c.pad === "numpy" ? `${" ".repeat((64 - ((prefix + h.length + 1) % 64)) % 64)}\n` : c.pad;
  const header = Uint8Array.from([...h, ...new TextEncoder().encode(pad)]);
  let bytes: Uint8Array = new Uint8Array(prefix + header.length + c.data.length);
  bytes.set(c.magic);
  bytes[6] = c.major;
  bytes[7] = c.minor;
  const len = c.lenAbs ?? header.length + c.lenDelta;
  const dv = new DataView(bytes.buffer);
  if (prefix === 10) dv.setUint16(8, len & 0xffff, true);
  else dv.setUint32(8, len >>> 0, true);
  bytes.set(header, prefix);
  bytes.set(c.data, prefix + header.length);
  if (c.truncate !== undefined) bytes = bytes.slice(0, Math.floor(c.truncate * bytes.length));
  if (c.append) bytes = Uint8Array.from([...bytes, ...r.bytes(c.append)]);
  const clean = c.byteEdit ? undefined : new TextEncoder().encode(dict);
  if (c.noise) bytes = c.noise(bytes);
  return { bytes, dict: clean };
}

/**
 * The oracle: from the model, and the bytes only where the magic, the version, the length field,
 * a cut or an extension decide, the tensor the file holds, or why it is invalid.
 */
function _npyExpect(
  c: _NpyCase,
  file: Uint8Array,
  dict: Uint8Array | undefined,
): { valid: true; t: { dtype: DTypeName; dims: number[]; bytes: Uint8Array } } | {
  valid: false;
  why: string;
} {
  const no = (why: string) => ({ valid: false as const, why });
  if (!dict || c.tail) return no("the header is not a dict");
  if (c.descrText !== undefined || c.fortranText !== undefined || c.shapeText !== undefined) {
    return no("a value of the wrong kind");
  }
  if (file.length < 8 || [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59].some((b, k) => file[k] !== b)) {
    return no("bad magic");
  }
  const [major, minor] = [file[6], file[7]];
  if (major < 1 || major > 3 || minor !== 0) return no("a version kiln does not read");
  if (c.longs && major === 3 && c.dims.length) return no("Python 2 longs in a 3.0 header");
  const prefix = major === 1 ? 10 : 12;
  if (file.length < prefix) return no("cut in the length field");
  const dv = new DataView(file.buffer, file.byteOffset);
  const data = _dataAfter(
    file,
    prefix,
    BigInt(major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true)),
    dict,
  );
  if (typeof data === "string") return no(data);
  const keys = c.items.map((it) => it.key);
  if (keys.length !== 3 || new Set(keys).size !== 3 || keys.includes(null)) {
    return no("not the three keys once");
  }
  if (!c.trailingComma && !c.items.length) return no("empty");
  const [, dtype, size] = NPY_TYPES.find((t) => t[0] === c.code)!;
  if (c.dims.some((d) => d > 2 ** 31 - 1)) return no("a dim over 2^31 - 1");
  if (c.dims.length > 64) return no("more than 64 dims");
  const need = c.dims.reduce((a, d) => a * BigInt(d), BigInt(size));
  if (need !== BigInt(data.length)) return no("the data's length is not the shape's");
  if (dtype === "bool" && data.some((b) => b > 1)) return no("a bool of 2");
  const bytes = data.slice();
  if (c.order === ">" && size > 1) {
    for (let k = 0; k < bytes.length; k += size) bytes.subarray(k, k + size).reverse();
  }
  return { valid: true, t: { dtype, dims: c.dims, bytes } };
}

/** Consistency of a loaded .npy (for noise cases): its data is the file's tail, in the descr's byte order. */
function _npyConsistent(t: Tensor, bytes: Uint8Array): string | null {
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const start = major === 1 ? 10 + dv.getUint16(8, true) : 12 + dv.getUint32(8, true);
  const tail = bytes.slice(start);
  const got = tensorBytes(t);
  const size = NPY_TYPES.find((x) => x[1] === t.dtype)![2];
  if (got.length !== tail.length || _count(t.dims) * size !== got.length) {
    return "loaded a length other than the file's";
  }
  const text = new TextDecoder("latin1").decode(bytes.subarray(major === 1 ? 10 : 12, start));
  if (/['"]descr['"]\s*:\s*['"]>/.test(text) && size > 1) {
    for (let k = 0; k < tail.length; k += size) tail.subarray(k, k + size).reverse();
  }
  return _eq(got, tail) ? null : "loaded other bytes than the file holds";
}

/**
 * .npy headers, structured: a valid file from a model (dtype, byte order, dims, data, the dict's
 * spelling), 0-3 mutations of the dict and of the magic, version and length fields, sometimes byte
 * noise; every 16th case through a file on disk. Each must load exactly the model's tensor (when
 * the oracle calls it valid) or fail with a KilnError naming the file.
 */
export async function fuzzNpyHeaders(opts: FuzzOptions): Promise<FuzzReport> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_fuzz_npy_" });
  try {
    return await _run("npy-headers", opts, async (r, i) => {
      const c = _npyBase(r);
      for (let k = r.pick([0, 1, 1, 2, 2, 3]); k > 0; k--) {
        const invalid = r.chance(0.35);
        const how = r.pick(invalid ? NPY_INVALID : NPY_SEMANTIC)(c, r);
        if (how) {
          c.how.push(how);
        }
      }
      if (r.chance(0.1)) {
        const seed = r.u();
        let s = seed;
        const rnd = () => (s = (s * 9301 + 49297) % 233280 / 233280);
        c.noise = (b) => {
          const head = Math.min(b.length, 128);
          const [m, how] = mutateBytes(b.subarray(0, head), rnd);
          c.how.push(`noise: ${how}`);
          return Uint8Array.from([...m, ...b.subarray(head)]);
        };
      }
      const { bytes, dict } = _npyBytes(c, r);
      const want = c.noise ? undefined : _npyExpect(c, bytes, dict);
      const how = c.how.join(", ") || "unmutated";
      const onDisk = i % 16 === 0;
      const path = onDisk ? `${dir}/c${i}.npy` : `/fuzz/case-${i}.npy`;
      let t: Tensor;
      try {
        if (onDisk) {
          await Deno.writeFile(path, bytes);
          try {
            t = await readNpyFile(path);
          } finally {
            await Deno.remove(path);
          }
        } else t = readNpy(bytes, `.npy file '${path}'`);
      } catch (e) {
        const bad = notAKilnError(e, path, ["format", "io"]);
        if (bad) return `${how}: ${bad}`;
        if (want?.valid) return `${how}: refused a valid file: ${(e as Error).message.slice(0, 300)}`;
        return "refused";
      }
      if (!want) {
        const bad = _npyConsistent(t, bytes);
        return bad ? `${how}: ${bad}` : "loaded";
      }
      if (!want.valid) return `${how}: accepted an invalid file (${want.why})`;
      const w = want.t;
      if (t.dtype !== w.dtype || t.dims.join() !== w.dims.join() || t.dims.length !== w.dims.length) {
        return `${how}: loaded ${t.dtype}[${t.dims}], the file says ${w.dtype}[${w.dims}]`;
      }
      if (!_eq(tensorBytes(t), w.bytes)) return `${how}: loaded other values than the file holds`;
      return "loaded";
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every fuzzer by name (the long run's parsers). */
export const FUZZERS: Record<string, (opts: FuzzOptions) => Promise<FuzzReport>> = {
  "onnx-models": fuzzOnnxModels,
  "program-files": fuzzProgramFiles,
  "ir-sections": fuzzIrSections,
  "safetensors-files": fuzzSafetensorsFiles,
  "safetensors-headers": fuzzSafetensorsHeaders,
  "npy-headers": fuzzNpyHeaders,
};
