/**
 * The `ref` target: the WebAssembly core finalizes the compiled program in its own memory
 * (arenas, buffers, host literals copied in) and runs the reference kernels. Bound weights live
 * only in the core's memory; a bind compares new bytes with them and copies what differs. After a
 * trap the core program revives in a fresh instance and this executor re-finalizes it and copies
 * the bound weights back from the broken instance's memory (a run never writes a weight).
 * @module
 */
import type { CoreProgram } from "../core_program.ts";
import { openRegularSync } from "../fs.ts";
import { type HostFile, SEEK_START } from "../host.ts";
import type { FileRange } from "../io.ts";
import type { Engine } from "../engine.ts";
import { KilnError } from "../errors.ts";
import { describe, dtypeSize, elementCount, setOwn, type Tensor, tensorBytes, viewAs } from "../tensor.ts";
import { applyDelta } from "../weights/adapter.ts";
import type {
  BindResult,
  BindTensor,
  Executor,
  LiteralSource,
  NodeTime,
  Target,
  TargetReport,
  WeightDelta,
} from "./target.ts";

interface _Slot {
  name: string;
  bytes: number;
  ptr: number;
  /** index into the core's weight list */
  index: number;
  /**
   * a buffer of the same size that the weight does not use (0: none yet): the next swap stages
   * its bytes there, and a changed weight is switched in by address, the old buffer becoming spare
   */
  spare?: number;
}

/**
 * The core's memory a bind may grow to with its staging region (wasm32 addresses 4 GiB; headroom
 * kept). Internal (tests lower it to take the host path); not exported by mod.ts.
 */
export const refStaging = {
  limitBytes: 3.5 * 2 ** 30,
  /**
   * The staging chunk a packed-only weight is read into, then packed from while it is in cache
   * (docs/internals.md "Packed-only weights"); tests lower it to cross chunk edges.
   */
  packChunkBytes: 4 * 2 ** 20,
  /**
   * Keep the weights and literals only GEMM packings read packed only (the default); false
   * stores them raw and packs them in the prepare step (benchmarks compare the two).
   */
  packedOnly: true,
  /**
   * On a threaded core, pack each staged chunk on the workers while this thread reads the next
   * one (the default); false packs after each read (bench/swap.ts compares the two).
   */
  pipelinePack: true,
};

/** A pack node of a packed-only weight or literal (wasm/index.ts direct_json). */
interface _Pack {
  /** its main instruction index */
  node: number;
  trans: boolean;
  k: number;
  n: number;
  /** where its output (the packed weight) is now */
  ptr: number;
  bytes: number;
  /** a buffer of the same size the next swap packs into (as _Slot.spare) */
  spare?: number;
}

/** A packed-only weight or host literal: no bytes of its own, packed from its source by the host. */
interface _Direct {
  weight: number;
  literal: number;
  name: string;
  /** its stored dims (float32) */
  rows: number;
  cols: number;
  packs: _Pack[];
}

/** Where a packed-only tensor's bytes come from: a file range (read in chunks) or host memory. */
type _Source = { file: FileRange; what: string; after?: string } | { bytes: Uint8Array };

/** Rows of the packing's column strips (wasm/kernels/gemm.ts NR): a transposed packing's chunks hold whole strips. */
const _NR = 8;
/** Rows of the packing's k blocks (wasm/kernels/gemm.ts KC), a multiple of _NR. */
const _KC = 256;

/**
 * Stored rows per staging chunk of `rowBytes` each: whole KC-row blocks where the chunk holds
 * one (a chunk of B's k rows then fills each strip of its panels end to end, so the packing
 * writes long runs; chunks of strips write longer runs too), else whole NR-row strips.
 */
function _chunkRows(rowBytes: number, chunkBytes: number): number {
  const fit = Math.floor(chunkBytes / rowBytes);
  const unit = fit >= _KC ? _KC : _NR;
  return Math.max(_NR, Math.floor(fit / unit) * unit);
}

/** A tensor read into the core for a bind: at `ptr`, a staging allocation or (`inPlace`) its slot. */
interface _Staged {
  name: string;
  ptr: number;
  bytes: number;
  /** read straight into the slot of a weight not bound yet (nothing to free) */
  inPlace: boolean;
}

class RefExecutor implements Executor {
  #core: CoreProgram;
  #literals: readonly LiteralSource[];
  #gen = -1;
  #inSlots: (_Slot & { dtype: Tensor["dtype"]; dims: number[] })[] = [];
  #outSlots: (_Slot & { dtype: Tensor["dtype"]; dims: number[]; bounded?: number })[] = [];
  #weightSlots = new Map<string, _Slot[]>();
  #bound = new Set<string>();
  /** All hoisted weight-only nodes must run before the next eval (after finalize or a trap). */
  #prepared = false;
  /** Adapted weights: their base bytes (as bound) and the delta applied over them. */
  #adapted = new Map<string, { base: Uint8Array; delta: WeightDelta }>();
  /** [rows, cols] of each weight, for deltas */
  #dims = new Map<string, number[]>();
  /** Weights (core indices) bound since the last prepare: their hoisted nodes must rerun. */
  #dirty = new Set<number>();
  /** Packed-only weights by name (docs/internals.md "Packed-only weights"). */
  #direct = new Map<string, _Direct>();
  /** The staging chunk in the core's memory (0: none yet) and its size. */
  #chunk = 0;
  #chunkBytes = 0;
  lastPrepareNodes = 0;
  lastPrepareMs = 0;

  /** Whether this executor keeps packed-only weights packed only (decided once: a revival finalizes alike). */
  #packedOnly: boolean;

  constructor(core: CoreProgram, literals: readonly LiteralSource[]) {
    this.#core = core;
    this.#literals = literals;
    this.#packedOnly = core.directPack && refStaging.packedOnly;
    this.#live("finalize");
  }

  /** The engine, finalized; after a revival, finalized again with the bound weights restored. */
  #live(what: string): Engine {
    const engine = this.#core.engine(what);
    if (this.#gen === this.#core.generation) return engine;
    const old = this.#core.brokenMemory;
    const bound = new Map<string, Uint8Array>();
    const packed = new Map<string, Uint8Array[]>();
    if (old && this.#gen >= 0) {
      const mem = new Uint8Array(old);
      for (const name of this.#bound) {
        const d = this.#direct.get(name);
        if (d) packed.set(name, d.packs.map((p) => mem.slice(p.ptr, p.ptr + p.bytes)));
        else {
          const s = this.#weightSlots.get(name)![0];
          bound.set(name, mem.slice(s.ptr, s.ptr + s.bytes));
        }
      }
    }
    this.#finalize(engine, what);
    this.#gen = this.#core.generation;
    this.#core.brokenMemory = null;
    this.#bound.clear();
    this.#prepared = false;
    this.#dirty.clear();
    for (const [name, bytes] of bound) this.#copyIn(engine, name, bytes);
    // a packed-only weight: its packed bytes, as they were (the same program packs them the same way)
    for (const [name, bytes] of packed) {
      const d = this.#direct.get(name)!;
      d.packs.forEach((p, i) => engine.u8().set(bytes[i], p.ptr));
      this.#dirty.add(this.#weightSlots.get(name)![0].index);
      this.#bound.add(name);
    }
    return engine;
  }

  #finalize(engine: Engine, what: string): void {
    const e = engine.exports;
    const h = this.#core.handle(what);
    if (this.#packedOnly && e.set_direct_pack(h, 1) !== 0) {
      throw engine.error(what);
    }
    if (engine.call(what, () => e.finalize(h)) !== 0) throw engine.error(what);
    const info = this.#core.refreshInfo(what);
    this.#chunk = 0;
    this.#chunkBytes = 0;
    if (engine.call(what, () => e.direct_json(h)) !== 0) throw engine.error(what);
    const direct = engine.resultJson<_Direct[]>();
    for (const d of direct) for (const p of d.packs) p.trans = (p.trans as unknown) === 1;
    this.#direct = new Map(direct.filter((d) => d.weight >= 0).map((d) => [d.name, d]));
    const directLiterals = new Map(direct.filter((d) => d.literal >= 0).map((d) => [d.literal, d]));
    if (directLiterals.size) {
      // a literal only pack nodes read: packed from its source, chunk by chunk, never stored raw
      this.#ensureChunk(engine, [...directLiterals.values()]);
      const items: { d: _Direct; src: _Source; dsts: number[] }[] = [];
      for (const [id, d] of directLiterals) {
        const src = this.#literals[id];
        const lit = info.hostLiterals.find((l) => l.id === id)!;
        if (!src) {
          throw new KilnError(
            "format",
            `Literal '${lit.name}' refers to host literal ${id}, which was not given`,
          );
        }
        const dsts = d.packs.map((p) => p.ptr);
        if (src.file && !src.file.sha1 && src.file.length === lit.bytes) {
          items.push({ d, src: { file: src.file, what: `Cannot read literal '${lit.name}'` }, dsts });
          continue;
        }
        items.push({ d, src: { bytes: _literalBytes(src.bytes, lit) }, dsts });
      }
      this.#packAll(engine, _fileOrder(items, (x) => "file" in x.src ? x.src.file : undefined));
    }
    const reads: { file: FileRange; ptr: number; name: string }[] = [];
    for (const lit of info.hostLiterals) {
      if (directLiterals.has(lit.id)) continue;
      const src = this.#literals[lit.id];
      if (!src) {
        throw new KilnError(
          "format",
          `Literal '${lit.name}' refers to host literal ${lit.id}, which was not given`,
        );
      }
      const ptr = e.host_literal_ptr(h, lit.id);
      if (!ptr) throw new KilnError("internal", `No memory for literal '${lit.name}'`);
      if (src.file && !src.file.sha1 && src.file.length === lit.bytes) {
        // a range of a file (an external initializer): read straight into the core's memory, below
        reads.push({ file: src.file, ptr, name: lit.name });
        continue;
      }
      engine.u8().set(_literalBytes(src.bytes, lit), ptr);
    }
    // each file opened once, its ranges read in offset order
    const files = new _Files("Data file");
    try {
      for (const r of _fileOrder(reads, (x) => x.file)) {
        _readRange(
          engine,
          files.open(r.file.path, `literal '${r.name}'`),
          r.file,
          r.ptr,
          `Cannot read literal '${r.name}'`,
        );
      }
    } finally {
      files.close();
    }
    this.#inSlots = info.inputs.map((v, i) => ({ ...v, ptr: e.input_ptr(h, i), index: i }));
    this.#outSlots = info.outputs.map((v, i) => ({ ...v, ptr: e.output_ptr(h, i), index: i }));
    this.#weightSlots = new Map();
    info.weights.forEach((v, i) => {
      this.#dims.set(v.name, [...v.dims]);
      const slot = { name: v.name, bytes: v.bytes, ptr: e.weight_ptr(h, i), index: i };
      const list = this.#weightSlots.get(v.name);
      if (list) list.push(slot);
      else this.#weightSlots.set(v.name, [slot]);
    });
  }

  #copyIn(engine: Engine, name: string, bytes: Uint8Array): void {
    const d = this.#direct.get(name);
    if (d) {
      // packed in place (nothing to compare it with: the raw bytes are not kept)
      this.#ensureChunk(engine, [d]);
      this.#packAll(engine, [{ d, src: { bytes }, dsts: d.packs.map((p) => p.ptr) }]);
      this.#dirty.add(this.#weightSlots.get(name)![0].index);
      this.#bound.add(name);
      return;
    }
    const mem = engine.u8();
    for (const slot of this.#weightSlots.get(name)!) {
      mem.set(bytes, slot.ptr);
      this.#dirty.add(slot.index);
    }
    this.#bound.add(name);
  }

  /**
   * The staging chunk, large enough for eight stored rows of each of `directs` (one column strip
   * of a transposed packing); allocated before any view is taken (growing the memory detaches them).
   */
  #ensureChunk(engine: Engine, directs: readonly _Direct[]): void {
    const need = Math.max(refStaging.packChunkBytes, ...directs.map((d) => _NR * d.cols * 4));
    if (this.#chunkBytes >= need) return;
    const e = engine.exports;
    if (this.#chunk) e.free(this.#chunk);
    this.#chunk = 0;
    this.#chunkBytes = 0;
    // two chunks on a threaded core: the workers pack one while this thread reads into the other
    this.#chunk = engine.call("stage weights", () => e.alloc(engine.threads > 1 ? 2 * need : need));
    this.#chunkBytes = need;
  }

  /**
   * Packs packed-only tensors, each from its source into its destinations (one address per pack
   * node, in d.packs order): the stored rows are read a chunk at a time into the staging chunk (a
   * file range straight from the file, host bytes by copy) and each chunk is packed from there
   * while it is in cache, so each byte is written to memory once, packed. `#ensureChunk` first.
   * Throws KilnError "io" (src.what, then what the range needed) when a file ends first.
   *
   * On a threaded core (`refStaging.pipelinePack`, the default there) the packing of a chunk is
   * started on the workers and this thread reads the next chunk into the other staging buffer
   * meanwhile, then waits for that packing (taking its leftover tasks) and starts the next: the
   * read and the packing overlap. Same bytes as packing on one thread (each task packs whole
   * strips). Otherwise each chunk is packed after its read, on this thread; so is a weight packed
   * more than once.
   */
  #packAll(engine: Engine, items: readonly { d: _Direct; src: _Source; dsts: readonly number[] }[]): void {
    const e = engine.exports;
    const files = new _Files();
    const pipe = refStaging.pipelinePack && engine.threads > 1;
    let buf = 0; // the staging buffer the next chunk is read into (0 or 1; always 0 without pipe)
    let done = false;
    try {
      for (const { d, src, dsts } of items) {
        const rowBytes = d.cols * 4;
        const step = _chunkRows(rowBytes, this.#chunkBytes);
        const file = "file" in src ? src.file : null;
        const f = file ? files.open(file.path, `weight '${d.name}'`) : null;
        if (f) f.seekSync(file!.offset, SEEK_START);
        for (let row = 0; row < d.rows; row += step) {
          const rows = Math.min(step, d.rows - row);
          const n = rows * rowBytes;
          const at = this.#chunk + buf * this.#chunkBytes;
          const t0 = performance.now();
          if (f) {
            let got = 0;
            while (got < n) {
              const r = f.readSync(new Uint8Array(e.memory.buffer, at + got, n - got));
              if (r === null) {
                throw new KilnError(
                  "io",
                  `${(src as { what: string }).what}: file '${
                    file!.path
                  }' has ${f.statSync().size} bytes (it changed since it was checked), bytes ${
                    file!.offset
                  }..${file!.offset + file!.length} were needed${(src as { after?: string }).after ?? ""}`,
                );
              }
              got += r;
            }
            this.#staged.bytesRead += n;
          } else {
            const b = (src as { bytes: Uint8Array }).bytes;
            engine.u8().set(b.subarray(row * rowBytes, row * rowBytes + n), at);
          }
          const t1 = performance.now();
          if (pipe) e.pack_wait(); // the previous chunk's packing, from the other buffer
          if (pipe && d.packs.length === 1) {
            const p = d.packs[0];
            e.pack_rows(p.trans ? 1 : 0, at, row, rows, d.cols, p.k, p.n, dsts[0], 3);
            buf ^= 1;
          } else {
            d.packs.forEach((p, i) =>
              e.pack_rows(p.trans ? 1 : 0, at, row, rows, d.cols, p.k, p.n, dsts[i], 2)
            );
          }
          this.#staged.readMs += t1 - t0;
          this.#staged.packMs += performance.now() - t1;
        }
      }
      const t = performance.now();
      if (pipe) e.pack_wait();
      this.#staged.packMs += performance.now() - t;
      done = true;
    } finally {
      if (pipe && !done && !engine.broken) {
        // a failed read: the packing under way ends before the caller frees its destinations
        try {
          e.pack_wait();
        } catch { /* a trap: the engine is broken, its owner revives it; the read's error goes on */ }
      }
      files.close();
    }
  }

  /** The raw bytes of packed-only weight `d`, unpacked from its first packing (an adapter's base). */
  #unpack(engine: Engine, d: _Direct): Uint8Array {
    this.#ensureChunk(engine, [d]);
    const e = engine.exports;
    const p = d.packs[0];
    const rowBytes = d.cols * 4;
    const step = _chunkRows(rowBytes, this.#chunkBytes);
    const out = new Uint8Array(d.rows * rowBytes);
    for (let row = 0; row < d.rows; row += step) {
      const rows = Math.min(step, d.rows - row);
      const chunk = this.#chunk;
      e.pack_rows(p.trans ? 1 : 0, chunk, row, rows, d.cols, p.k, p.n, p.ptr, 1);
      out.set(engine.u8().subarray(chunk, chunk + rows * rowBytes), row * rowBytes);
    }
    return out;
  }

  /** Read and pack times of packed-only tensors since the last reset (a bind's report). */
  #staged = { readMs: 0, packMs: 0, bytesRead: 0 };

  isBound(name: string): boolean {
    return this.#bound.has(name);
  }

  /**
   * Binds `tensors`. A tensor that names a file range (a WeightSet for a ref program leaves them
   * unread) is read straight into a staging region in the core's memory: no host copy. Only when
   * every range is in are the staged tensors compared with the bound ones (in the core, stopping
   * at the first 64 bytes that differ) and the changed ones switched in by address (the core's
   * nodes then read the staged buffer; the old one stages the next swap), so a read that fails
   * midway leaves the bound weights as they were. Tensors held in memory (arrays, an
   * adapter's base) are compared and copied as they are.
   */
  bind(tensors: readonly BindTensor[]): Promise<BindResult> {
    try {
      const engine = this.#live("bind weights");
      const result: BindResult = { copied: 0, skipped: 0, bytesCopied: 0 };
      for (const t of tensors) {
        if (!this.#weightSlots.has(t.name)) {
          throw new KilnError("weights", `Cannot bind weights: '${t.name}' is not a weight of this program`);
        }
      }
      // a weight under an adapter needs its base bytes on the host: read as before
      let fromFile = tensors.filter((t) => t.file && !this.#adapted.has(t.name) && !this.#direct.has(t.name));
      // a packed-only weight (from a file or memory) is packed into its packings' spares
      let packed = tensors.filter((t) => this.#direct.has(t.name) && !this.#adapted.has(t.name));
      // the staging region must fit the core's memory beside what it holds (wasm32: 4 GiB): a
      // swap that would not is read on the host instead (compared and copied in the same way)
      const need = fromFile.reduce(
        (a, t) =>
          a + (this.#bound.has(t.name) && !this.#weightSlots.get(t.name)![0].spare ? t.file!.length : 0),
        0,
      ) + packed.reduce(
        (a, t) =>
          a +
          (this.#bound.has(t.name)
            ? this.#direct.get(t.name)!.packs.reduce((b, p) => b + (p.spare ? 0 : p.bytes), 0)
            : 0),
        0,
      );
      if (engine.exports.memory.buffer.byteLength + need > refStaging.limitBytes) fromFile = packed = [];
      const staged = new Set([...fromFile, ...packed]);
      const held = tensors.filter((t) => !staged.has(t));
      this.#staged = { readMs: 0, packMs: 0, bytesRead: 0 };
      const packing = packed.length ? this.#stagePacked(engine, packed) : null;
      const staging = fromFile.length ? this.#stage(engine, fromFile) : null;
      const changed: BindTensor[] = [];
      // every held tensor read (a lazy one from its file, once) before anything changes
      const bytes: Uint8Array[] = [];
      for (const t of held) {
        const s = this.#weightSlots.get(t.name)![0];
        const adapted = this.#adapted.get(t.name);
        // a packed-only weight keeps no raw bytes to compare with (read on the host: copied)
        const bound = adapted
          ? adapted.base
          : this.#direct.has(t.name)
          ? null
          : new Uint8Array(engine.exports.memory.buffer, s.ptr, s.bytes);
        const own = t.bytes;
        if (this.#bound.has(t.name) && bound && _sameContent(bound, own)) {
          result.skipped++;
          continue;
        }
        changed.push(t);
        bytes.push(own);
      }
      // a weight bound under an adapter becomes its base, adapted in the same bind
      const adapted = changed.map((t, i) => {
        const a = this.#adapted.get(t.name);
        return a ? this.#delta(t.name, bytes[i], a.delta) : null;
      });
      // the staged tensors that differ from the bound ones
      const t0 = performance.now();
      const switches: _Staged[] = [];
      if (staging) {
        const e = engine.exports;
        for (const st of staging.list) {
          const s = this.#weightSlots.get(st.name)![0];
          if (
            !st.inPlace && this.#bound.has(st.name) && s.bytes === st.bytes &&
            e.bytes_equal(s.ptr, st.ptr, st.bytes) === 1
          ) {
            result.skipped++;
          } else switches.push(st);
        }
      }
      // a packed-only weight: its new packing against the bound one (the packing is one-to-one)
      const packSwitches = (packing ?? []).filter((st) => {
        const p = st.d.packs[0];
        if (
          st.inPlace || !this.#bound.has(st.name) ||
          engine.exports.bytes_equal(p.ptr, p.spare!, p.bytes) !== 1
        ) {
          return true;
        }
        result.skipped++;
        return false;
      });
      const t1 = performance.now();
      // the switch (nothing above changed a bound weight): a staged weight by address, its old
      // buffer kept as the next swap's staging; a weight read in place as it is; a second slot
      // of the same weight (rare) by copy
      const e = engine.exports;
      const h = this.#core.handle("bind weights");
      let moved = false;
      for (const st of switches) {
        const slots = this.#weightSlots.get(st.name)!;
        if (!st.inPlace) {
          const old = e.set_weight_ptr(h, slots[0].index, st.ptr);
          if (old === 0) throw new KilnError("internal", `Cannot switch weight '${st.name}' in`);
          slots[0].spare = old;
          slots[0].ptr = st.ptr;
          moved = true;
        }
        const mem = engine.u8();
        for (const slot of slots) {
          if (slot.ptr !== st.ptr) mem.copyWithin(slot.ptr, st.ptr, st.ptr + st.bytes);
          this.#dirty.add(slot.index);
        }
        this.#bound.add(st.name);
        result.copied++;
        result.bytesCopied += st.bytes;
      }
      for (const st of packSwitches) {
        if (!st.inPlace) {
          for (const p of st.d.packs) {
            const old = e.set_packed_ptr(h, p.node, p.spare!);
            if (old === 0) {
              throw new KilnError("internal", `Cannot switch the packing of weight '${st.name}' in`);
            }
            p.ptr = p.spare!;
            p.spare = old;
          }
          moved = true;
        }
        this.#dirty.add(this.#weightSlots.get(st.name)![0].index);
        this.#bound.add(st.name);
        result.copied++;
        result.bytesCopied += st.bytes;
      }
      if (moved) {
        if (e.weights_moved(h) !== 0) throw engine.error("bind weights");
        // an output may alias a weight
        for (const slot of this.#outSlots) slot.ptr = e.output_ptr(h, slot.index);
      }
      const t2 = performance.now();
      changed.forEach((t, i) => {
        const a = adapted[i];
        if (a) {
          this.#adapted.set(t.name, { base: bytes[i].slice(), delta: this.#adapted.get(t.name)!.delta });
          result.adapted = (result.adapted ?? 0) + 1;
        }
        this.#copyIn(engine, t.name, a ?? bytes[i]);
        result.copied++;
        result.bytesCopied += bytes[i].byteLength;
      });
      if (staging || packing) {
        result.staging = {
          readMs: (staging?.readMs ?? 0) + this.#staged.readMs,
          compareMs: t1 - t0,
          switchMs: t2 - t1,
          bytesRead: (staging?.bytesRead ?? 0) + this.#staged.bytesRead,
          packMs: this.#staged.packMs,
        };
      }
      return Promise.resolve(result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads each tensor's file range into the staging region in the core's memory: the weight's
   * spare buffer, allocated on its first swap and kept (every allocation made first: growing the
   * memory detaches views; then one fresh view per read). A weight not bound yet is read straight
   * into its slot instead (`inPlace`): it stays unbound, so unusable, until the switch, and needs
   * no spare (a program's first bind). Each file is opened once. On any failure the error is
   * thrown: no bound weight has changed (a spare holds no weight).
   */
  #stage(
    engine: Engine,
    tensors: readonly BindTensor[],
  ): { list: _Staged[]; readMs: number; bytesRead: number } {
    const list: (_Staged & { file: FileRange; source: string })[] = [];
    for (const t of tensors) {
      const file = t.file!;
      const slot = this.#weightSlots.get(t.name)![0];
      if (file.length !== slot.bytes) {
        throw new KilnError(
          "weights",
          `Cannot bind weight '${t.name}' from ${t.source}: ${file.length} bytes, the program needs ${slot.bytes}`,
        );
      }
      const inPlace = !this.#bound.has(t.name); // (its length checked above)
      if (!inPlace && !slot.spare) {
        slot.spare = engine.call("stage weights", () => engine.exports.alloc(file.length));
      }
      const ptr = inPlace ? slot.ptr : slot.spare!;
      list.push({ name: t.name, ptr, bytes: file.length, inPlace, file, source: t.source });
    }
    const t0 = performance.now();
    let bytesRead = 0;
    // grouped by file, in offset order: one open per file, reads that go forward
    const byPath = new Map<string, typeof list>();
    for (const st of list) {
      const l = byPath.get(st.file.path);
      if (l) l.push(st);
      else byPath.set(st.file.path, [st]);
    }
    for (const [path, sts] of byPath) {
      sts.sort((a, b) => a.file.offset - b.file.offset);
      using f = openRegularSync(path, "Weight file", `of weight '${sts[0].name}'`).file;
      for (const st of sts) {
        bytesRead += _readRange(
          engine,
          f,
          st.file,
          st.ptr,
          `Cannot bind weight '${st.name}' from ${st.source}`,
          " (nothing was bound)",
        );
      }
    }
    return { list, readMs: performance.now() - t0, bytesRead };
  }

  /**
   * Packs each packed-only tensor (docs/internals.md "Packed-only weights") into the spares of its
   * packings, allocated on its first swap and kept, or, for a weight not bound yet, into its
   * packings themselves (`inPlace`). Every allocation comes first; then each tensor is read in
   * chunks (file ranges grouped by file, in offset order) and packed from the chunk. On any failure
   * the error is thrown: no bound weight has changed (a spare holds no weight).
   */
  #stagePacked(
    engine: Engine,
    tensors: readonly BindTensor[],
  ): { name: string; d: _Direct; bytes: number; inPlace: boolean }[] {
    const list: {
      name: string;
      d: _Direct;
      bytes: number;
      inPlace: boolean;
      t: BindTensor;
      dsts: number[];
    }[] = [];
    for (const t of tensors) {
      const d = this.#direct.get(t.name)!;
      const bytes = d.rows * d.cols * 4;
      const have = t.file ? t.file.length : t.bytes.byteLength;
      if (have !== bytes) {
        throw new KilnError(
          "weights",
          `Cannot bind weight '${t.name}' from ${t.source}: ${have} bytes, the program needs ${bytes}`,
        );
      }
      const inPlace = !this.#bound.has(t.name);
      if (!inPlace) {
        for (const p of d.packs) {
          if (!p.spare) p.spare = engine.call("stage weights", () => engine.exports.alloc(p.bytes));
        }
      }
      list.push({ name: t.name, d, bytes, inPlace, t, dsts: d.packs.map((p) => inPlace ? p.ptr : p.spare!) });
    }
    this.#ensureChunk(engine, list.map((x) => x.d));
    this.#packAll(
      engine,
      _fileOrder(list, (x) => x.t.file).map((x) => ({
        d: x.d,
        dsts: x.dsts,
        src: x.t.file
          ? {
            file: x.t.file,
            what: `Cannot bind weight '${x.name}' from ${x.t.source}`,
            after: " (nothing was bound)",
          }
          : { bytes: x.t.bytes },
      })),
    );
    return list;
  }

  #delta(name: string, base: Uint8Array, d: WeightDelta): Uint8Array {
    const dims = this.#dims.get(name)!;
    return applyDelta(base, dims[0], dims[1], d);
  }

  adapt(deltas: readonly WeightDelta[], clear: readonly string[]): Promise<BindResult> {
    try {
      const engine = this.#live("apply an adapter");
      // every delta computed before anything changes
      const writes: {
        name: string;
        bytes: Uint8Array;
        base: Uint8Array | null;
        delta: WeightDelta | null;
      }[] = [];
      for (const d of deltas) {
        const slot = this.#weightSlots.get(d.name)?.[0];
        if (!slot || !this.#bound.has(d.name)) {
          throw new KilnError("weights", `Cannot apply the adapter: weight '${d.name}' is not bound`);
        }
        const direct = this.#direct.get(d.name);
        const base = this.#adapted.get(d.name)?.base ??
          (direct ? this.#unpack(engine, direct) : engine.u8().slice(slot.ptr, slot.ptr + slot.bytes));
        writes.push({ name: d.name, bytes: this.#delta(d.name, base, d), base, delta: d });
      }
      for (const name of clear) {
        const a = this.#adapted.get(name);
        if (a) writes.push({ name, bytes: a.base, base: null, delta: null });
      }
      for (const w of writes) {
        this.#copyIn(engine, w.name, w.bytes);
        if (w.delta) this.#adapted.set(w.name, { base: w.base!, delta: w.delta });
        else this.#adapted.delete(w.name);
      }
      return Promise.resolve({ copied: 0, skipped: 0, bytesCopied: 0, adapted: writes.length });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Runs the out-of-date hoisted nodes: all after finalize, else those downstream of the bound weights. */
  prepare(): Promise<void> {
    try {
      this.#prepareSync(this.#live("prepare"));
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #prepareSync(engine: Engine): void {
    const e = engine.exports;
    const h = this.#core.handle("prepare");
    const t0 = performance.now();
    if (!this.#prepared) {
      if (engine.call("prepare", () => e.prepare(h)) !== 0) throw engine.error("prepare");
    } else if (this.#dirty.size) {
      const idx = new Int32Array([...this.#dirty]);
      const p = engine.put(new Uint8Array(idx.buffer));
      try {
        if (engine.call("prepare", () => e.prepare_weights(h, p, idx.length)) !== 0) {
          throw engine.error("prepare");
        }
      } finally {
        if (!engine.broken) engine.free(p);
      }
    } else {
      this.lastPrepareNodes = 0;
      this.lastPrepareMs = 0;
      return;
    }
    this.#prepared = true;
    this.#dirty.clear();
    this.lastPrepareNodes = e.last_prepare_nodes();
    this.lastPrepareMs = performance.now() - t0;
  }

  run(inputs: Record<string, Tensor>, outputs?: ReadonlySet<string>): Promise<Record<string, Tensor>> {
    return this.#run(inputs, outputs, false);
  }

  /** One eval timing every node on the host's clock (wall time on the main thread, waits for workers included). */
  async profile(inputs: Record<string, Tensor>): Promise<NodeTime[]> {
    let nodes: NodeTime[] = [];
    await this.#run(inputs, undefined, true, (engine) => nodes = engine.resultJson<NodeTime[]>());
    return nodes;
  }

  #run(
    inputs: Record<string, Tensor>,
    outputs: ReadonlySet<string> | undefined,
    profiled: boolean,
    onRan?: (engine: Engine) => void,
  ): Promise<Record<string, Tensor>> {
    try {
      const engine = this.#live("eval");
      this.#prepareSync(engine);
      const mem = engine.u8();
      for (const slot of this.#inSlots) mem.set(tensorBytes(inputs[slot.name]), slot.ptr);
      const h = this.#core.handle("eval");
      const e = engine.exports;
      if (engine.call("eval", () => profiled ? e.run_profiled(h) : e.run(h)) !== 0) {
        throw engine.error("eval");
      }
      onRan?.(engine);
      const out: Record<string, Tensor> = {};
      const after = engine.u8();
      for (const slot of this.#outSlots) {
        if (outputs && !outputs.has(slot.name)) continue;
        let dims = [...slot.dims];
        let n = slot.bytes;
        if (slot.bounded) {
          // a data-dependent size: the actual extent, its data packed at the start of the bound
          dims = dims.map((_, d) => engine.exports.output_dim(h, slot.index, d));
          n = elementCount(dims) * dtypeSize(slot.dtype);
        }
        const bytes = after.slice(slot.ptr, slot.ptr + n);
        setOwn(out, slot.name, { dtype: slot.dtype, dims, data: viewAs(slot.dtype, bytes) });
      }
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  report(): TargetReport {
    return { device: "WebAssembly", hostNodes: [], deviceBytes: 0 };
  }

  dispose(): void {
    this.#weightSlots.clear();
  }
}

/** `items` with those read from files first, grouped by file and in offset order (reads that go forward). */
function _fileOrder<T>(items: readonly T[], file: (x: T) => FileRange | undefined): T[] {
  return [...items].sort((a, b) => {
    const fa = file(a), fb = file(b);
    if (!fa || !fb) return (fa ? 0 : 1) - (fb ? 0 : 1);
    return fa.path < fb.path ? -1 : fa.path > fb.path ? 1 : fa.offset - fb.offset;
  });
}

/** The weight files a bind has open, one per path, closed together. */
class _Files {
  #open = new Map<string, HostFile>();

  constructor(readonly what = "Weight file") {}

  /** `path` open (once); `of` names what is read, for messages ("weight 'w'"). */
  open(path: string, of: string): HostFile {
    let f = this.#open.get(path);
    if (!f) {
      f = openRegularSync(path, this.what, `of ${of}`).file;
      this.#open.set(path, f);
    }
    return f;
  }

  close(): void {
    for (const f of this.#open.values()) f.close();
    this.#open.clear();
  }
}

/**
 * Reads `range` of the open file `f` into the core's memory at `ptr` (no host copy); throws
 * KilnError "io", headed by `what` (and `after` at its end), when the file ends first. Returns
 * the bytes read.
 */
function _readRange(
  engine: Engine,
  f: HostFile,
  range: FileRange,
  ptr: number,
  what: string,
  after = "",
): number {
  f.seekSync(range.offset, SEEK_START);
  let got = 0;
  while (got < range.length) {
    // a fresh view per read: nothing here grows the memory, but a view must never outlive a growth
    const n = f.readSync(new Uint8Array(engine.exports.memory.buffer, ptr + got, range.length - got));
    if (n === null) {
      throw new KilnError(
        "io",
        `${what}: file '${range.path}' has ${f.statSync().size} bytes (it changed since it was checked), bytes ${range.offset}..${
          range.offset + range.length
        } were needed${after}`,
      );
    }
    got += n;
  }
  return got;
}

function _sameContent(b: Uint8Array, t: Uint8Array): boolean {
  const n = b.byteLength;
  if (n !== t.byteLength) return false;
  // Cheap probes first: new weights almost always differ in the first bytes sampled.
  for (let k = 0; k < 64; k++) {
    const i = Math.floor((k * (n - 1)) / 63);
    if (b[i] !== t[i]) return false;
  }
  return _equalBytes(b, t);
}

/**
 * Byte-for-byte equality, 4 bytes at a time where both views allow it. Exact, unlike a hash,
 * and 4-5x cheaper than SHA-1 of both sides (GPT-2's 497 MB: about 150 ms against 700 ms on the
 * development VM), which is why the ref target compares the bound bytes instead of hashing them.
 */
function _equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.byteLength;
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const w = n >>> 2;
    const a4 = new Int32Array(a.buffer, a.byteOffset, w);
    const b4 = new Int32Array(b.buffer, b.byteOffset, w);
    for (let k = 0; k < w; k++) if (a4[k] !== b4[k]) return false;
    i = w << 2;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The ref target's compile pipeline, in order (wasm/passes/targets.ts `compilePasses`). */
export const REF_PASSES: readonly string[] = [
  "eliminate_identity",
  "fold_constants",
  "cse",
  "pack_gemm_weights",
  "dce",
  "fuse_elementwise",
  "hoist_prepare",
  "memory_plan",
];

/** The reference target: the WebAssembly core, no permission beyond reading the model. */
export const refTarget: Target = {
  name: "ref",
  passes: REF_PASSES,
  literalPasses: ["replace_external_weights", "hoist_prepare"],
  readsFiles: false,
  specializes: true,
  bindsFileRanges: true,
  threaded: true,
  instantiate(core, literals) {
    return new RefExecutor(core, literals);
  },
};

/** A host literal's bytes, checked against the length its dtype and dims need. */
function _literalBytes(
  bytes: Uint8Array,
  lit: {
    name: string;
    bytes: number;
    dtype: Parameters<typeof describe>[0];
    dims: Parameters<typeof describe>[1];
  },
): Uint8Array {
  if (bytes.length !== lit.bytes) {
    throw new KilnError(
      "format",
      `Literal '${lit.name}' has ${bytes.length} bytes, ${describe(lit.dtype, lit.dims)} needs ${lit.bytes}`,
    );
  }
  return bytes;
}
