/**
 * The `.kiln` program file: a compiled program (IR section) and, unless weightless, its
 * literals, each 4096-byte aligned with a SHA-1 per literal. Layout: docs/program-file.md.
 *
 * ```
 * 0    magic "KILNPRG\0" (8 bytes)
 * 8    u32 format version (1)
 * 12   u32 flags (bit 0: weightless: deferred weights, bound after loading)
 * 16   u32 section count
 * 20   u32 CRC-32 of the META section
 * 24   section table: count x { u32 kind, u32 reserved, u64 offset, u64 length } (24 bytes each)
 * ...  sections; META is UTF-8 JSON (with the IR section's SHA-1), IR is the core's
 *      serialized program, LITERALS holds the literal bytes at 4096-aligned offsets listed in
 *      META.literals, each with its SHA-1
 * ```
 * @module
 */
import { KilnError } from "./errors.ts";
import { openRegular, writeAtomic } from "./fs.ts";
import type { FileRange } from "./io.ts";
import { type DTypeName, dtypeSize, elementCount } from "./tensor.ts";
import { BytesFile, host, type HostFile, SEEK_START, sha1HexOf } from "./host.ts";

/** The first 8 bytes of every `.kiln` file. */
export const KILN_MAGIC = new TextEncoder().encode("KILNPRG\0");
/** The format version this build writes and reads. */
export const KILN_FORMAT_VERSION = 1;
/** Literal alignment in the file, for streaming and mapping. */
export const LITERAL_ALIGN = 4096;

const HEADER_BYTES = 24;
const SECTION_ENTRY_BYTES = 24;
/** Section kinds. */
export const SECTION_META = 1;
export const SECTION_IR = 2;
export const SECTION_LITERALS = 3;

/** One literal stored in the file. */
export interface LiteralEntry {
  /** the host literal id the IR names it by (absent in files that store every literal in id order) */
  id?: number;
  name: string;
  dtype: DTypeName;
  dims: number[];
  /** absolute offset in the file (a multiple of 4096) */
  offset: number;
  length: number;
  /** SHA-1 hex of the bytes */
  sha1: string;
}

/** The META section. */
export interface ProgramMeta {
  target: string;
  kilnVersion: string;
  created: string;
  weightless: boolean;
  /** SHA-1 hex of the IR section */
  irSha1: string;
  literals: LiteralEntry[];
  /** anything the program layer wants to keep (inputs, outputs, weight signature, source) */
  program: Record<string, unknown>;
}

/** What a reader gets back. */
export interface ProgramFileContents {
  meta: ProgramMeta;
  ir: Uint8Array;
  /** literal bytes, in META order */
  literals: Uint8Array[];
}

/** Input to the writer. */
export interface ProgramFileInput {
  target: string;
  kilnVersion: string;
  ir: Uint8Array;
  /**
   * The literals to store, each with the host literal id the IR names it by (default: its index).
   * A literal with `file` is copied from that file range in chunks, never read whole.
   */
  literals: {
    id?: number;
    name: string;
    dtype: DTypeName;
    dims: number[];
    readonly bytes: Uint8Array;
    readonly file?: FileRange;
  }[];
  /** the program has deferred weights (its weight set is kept elsewhere) */
  weightless?: boolean;
  program?: Record<string, unknown>;
}

/** SHA-1 hex of bytes (native speed through node:crypto). */
export function sha1Hex(bytes: Uint8Array): string {
  return host.sha1().update(bytes).digest("hex");
}

let _crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE) of bytes: the META section's check (it is small; SHA-1 guards the rest). */
export function crc32(bytes: Uint8Array): number {
  if (!_crcTable) {
    _crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      _crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = _crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function _align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Writes a program file. Literals are streamed to the file one by one (no whole-file buffer).
 * @example
 * ```ts ignore
 * await writeProgramFile("model.kiln", { target: "ref", kilnVersion: "0.1.0", ir, literals: [] });
 * ```
 */
export async function writeProgramFile(path: string, input: ProgramFileInput): Promise<void> {
  const weightless = input.weightless ?? false;
  const lits = input.literals;
  const entries: LiteralEntry[] = lits.map((l, i) => {
    const want = elementCount(l.dims) * dtypeSize(l.dtype);
    const have = l.file ? l.file.length : l.bytes.byteLength;
    if (have !== want) {
      throw new KilnError(
        "format",
        `Cannot save literal '${l.name}': it has ${have} bytes, its shape needs ${want}`,
      );
    }
    return {
      id: l.id ?? i,
      name: l.name,
      dtype: l.dtype,
      dims: l.dims,
      offset: 0,
      length: have,
      // filled in as the bytes are written (a SHA-1 is always 40 hex characters, so META keeps its size)
      sha1: "0".repeat(40),
    };
  });
  const meta: ProgramMeta = {
    target: input.target,
    kilnVersion: input.kilnVersion,
    created: new Date().toISOString(),
    weightless,
    irSha1: sha1Hex(input.ir),
    literals: entries,
    program: input.program ?? {},
  };
  // The META size depends on the offsets it lists; offsets depend on META's size. Fix the
  // point by padding: compute with a generous width, then fill offsets.
  const sectionCount = 3;
  const tableEnd = HEADER_BYTES + sectionCount * SECTION_ENTRY_BYTES;
  let metaBytes = new TextEncoder().encode(JSON.stringify(meta));
  let metaLen = metaBytes.byteLength + 32 * entries.length + 64; // room for offsets
  let irOff = 0, litStart = 0;
  for (let iter = 0; iter < 3; iter++) {
    irOff = tableEnd + metaLen;
    litStart = _align(irOff + input.ir.byteLength, LITERAL_ALIGN);
    let off = litStart;
    for (const e of entries) {
      e.offset = off;
      off = _align(off + e.length, LITERAL_ALIGN);
    }
    metaBytes = new TextEncoder().encode(JSON.stringify(meta));
    if (metaBytes.byteLength <= metaLen) break;
    metaLen = metaBytes.byteLength + 64;
  }
  const litEnd = entries.length
    ? entries[entries.length - 1].offset + entries[entries.length - 1].length
    : litStart;

  const head = new Uint8Array(irOff);
  const dv = new DataView(head.buffer);
  head.set(KILN_MAGIC, 0);
  dv.setUint32(8, KILN_FORMAT_VERSION, true);
  dv.setUint32(12, weightless ? 1 : 0, true);
  dv.setUint32(16, sectionCount, true);
  dv.setUint32(20, crc32(metaBytes), true);
  const sections: [number, number, number][] = [
    [SECTION_META, tableEnd, metaBytes.byteLength],
    [SECTION_IR, irOff, input.ir.byteLength],
    [SECTION_LITERALS, litStart, litEnd - litStart],
  ];
  sections.forEach(([kind, off, len], i) => {
    const p = HEADER_BYTES + i * SECTION_ENTRY_BYTES;
    dv.setUint32(p, kind, true);
    dv.setBigUint64(p + 8, BigInt(off), true);
    dv.setBigUint64(p + 16, BigInt(len), true);
  });
  head.set(metaBytes, tableEnd); // the rest of the META slot stays zero (JSON ends at its length)

  await writeAtomic(path, async (f) => {
    await _writeAll(f, head);
    await _writeAll(f, input.ir);
    for (let i = 0; i < entries.length; i++) {
      await f.seek(entries[i].offset, SEEK_START);
      const file = lits[i].file;
      if (file) {
        entries[i].sha1 = await _copyRange(f, file);
      } else {
        await _writeAll(f, lits[i].bytes);
        entries[i].sha1 = sha1Hex(lits[i].bytes);
      }
    }
    await f.truncate(Math.max(litEnd, irOff + input.ir.byteLength));
    // META again, with the literals' SHA-1s (same length as the placeholders)
    const finalMeta = new TextEncoder().encode(JSON.stringify(meta));
    if (finalMeta.byteLength !== metaBytes.byteLength) {
      throw new KilnError("internal", "META changed size while writing the literals");
    }
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, crc32(finalMeta), true);
    await f.seek(20, SEEK_START);
    await _writeAll(f, crc);
    await f.seek(tableEnd, SEEK_START);
    await _writeAll(f, finalMeta);
  }, "Program file");
}

/** Copies a file range into `f` at its position, 16 MiB at a time; returns the bytes' SHA-1. */
async function _copyRange(f: HostFile, range: FileRange): Promise<string> {
  using s = (await openRegular(range.path, "Literal source file")).file;
  await s.seek(range.offset, SEEK_START);
  const h = host.sha1();
  const buf = new Uint8Array(Math.min(range.length, 16 << 20));
  let done = 0;
  while (done < range.length) {
    const want = Math.min(buf.length, range.length - done);
    const n = await s.read(buf.subarray(0, want));
    if (n === null) {
      throw new KilnError(
        "io",
        `File '${range.path}' ends at byte ${range.offset + done}, but bytes ${range.offset}..${
          range.offset + range.length
        } were needed`,
      );
    }
    h.update(buf.subarray(0, n));
    await _writeAll(f, buf.subarray(0, n));
    done += n;
  }
  return h.digest("hex");
}

async function _writeAll(f: HostFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await f.write(bytes.subarray(off));
}

async function _readExact(f: HostFile, offset: number, length: number, path: string, what: string) {
  const buf = new Uint8Array(length);
  await f.seek(offset, SEEK_START);
  let got = 0;
  while (got < length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) {
      throw new KilnError(
        "format",
        `Program file '${path}' is truncated: ${what} needs bytes ${offset}..${
          offset + length
        }, the file ends at ${offset + got}`,
      );
    }
    got += n;
  }
  return buf;
}

/**
 * Reads and checks a program file: magic, version, section bounds, META, and (unless
 * `verify: false`) every literal's SHA-1. Corrupt, truncated and future-version files fail
 * with a KilnError of code "format".
 */
export async function readProgramFile(
  source: string | { name: string; bytes: Uint8Array },
  options: { verify?: boolean; literals?: boolean } = {},
): Promise<ProgramFileContents> {
  const verify = options.verify ?? true;
  // a program file in memory (load from bytes, a Blob, a Response or a URL) reads the same way
  const path = typeof source === "string" ? source : source.name;
  const opened = typeof source === "string"
    ? await openRegular(path, "Program file")
    : { file: new BytesFile(source.bytes), size: source.bytes.byteLength };
  using file = opened.file;
  const size = opened.size;
  if (size < HEADER_BYTES) {
    throw new KilnError("format", `'${path}' is not a kiln program file: it is only ${size} bytes`);
  }
  const head = await _readExact(file, 0, HEADER_BYTES, path, "the header");
  for (let i = 0; i < KILN_MAGIC.length; i++) {
    if (head[i] !== KILN_MAGIC[i]) {
      throw new KilnError("format", `'${path}' is not a kiln program file (bad magic)`);
    }
  }
  const dv = new DataView(head.buffer);
  const version = dv.getUint32(8, true);
  if (version !== KILN_FORMAT_VERSION) {
    throw new KilnError(
      "format",
      `Program file '${path}' has format version ${version}; this kiln reads version ${KILN_FORMAT_VERSION}` +
        (version > KILN_FORMAT_VERSION ? " (written by a newer kiln)" : ""),
    );
  }
  const count = dv.getUint32(16, true);
  if (count < 1 || count > 64) {
    throw new KilnError("format", `Program file '${path}' is corrupt: ${count} sections`);
  }
  const table = await _readExact(file, HEADER_BYTES, count * SECTION_ENTRY_BYTES, path, "the section table");
  const tv = new DataView(table.buffer);
  const sections = new Map<number, { offset: number; length: number }>();
  for (let i = 0; i < count; i++) {
    const p = i * SECTION_ENTRY_BYTES;
    const kind = tv.getUint32(p, true);
    const off64 = tv.getBigUint64(p + 8, true);
    const len64 = tv.getBigUint64(p + 16, true);
    // checked as integers before they become numbers: nothing past the file, nothing wrapped
    if (off64 > BigInt(size) || len64 > BigInt(size) - off64) {
      throw new KilnError(
        "format",
        `Program file '${path}' is truncated or corrupt: section ${kind} claims bytes ${off64}..${
          off64 + len64
        }, the file has ${size}`,
      );
    }
    const offset = Number(off64);
    const length = Number(len64);
    if (offset + length > size) {
      throw new KilnError(
        "format",
        `Program file '${path}' is truncated: section ${kind} ends at byte ${
          offset + length
        }, the file has ${size}`,
      );
    }
    sections.set(kind, { offset, length });
  }
  const metaSec = sections.get(SECTION_META), irSec = sections.get(SECTION_IR);
  if (!metaSec || !irSec) {
    throw new KilnError("format", `Program file '${path}' is corrupt: META or IR section missing`);
  }
  const metaRaw = await _readExact(file, metaSec.offset, metaSec.length, path, "META");
  if (crc32(metaRaw) !== dv.getUint32(20, true)) {
    throw new KilnError("format", `Program file '${path}' is corrupt: its META section fails its checksum`);
  }
  let meta: ProgramMeta;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(metaRaw));
  } catch {
    throw new KilnError("format", `Program file '${path}' is corrupt: its META section is not valid JSON`);
  }
  if (!meta || !Array.isArray(meta.literals) || typeof meta.target !== "string") {
    throw new KilnError("format", `Program file '${path}' is corrupt: META lacks target or literals`);
  }
  const ir = await _readExact(file, irSec.offset, irSec.length, path, "the IR section");
  if (verify && (await sha1HexOf(ir)) !== meta.irSha1) {
    throw new KilnError("format", `Program file '${path}' is corrupt: its IR section fails its checksum`);
  }
  const literals: Uint8Array[] = [];
  if (options.literals ?? true) {
    for (const e of meta.literals) {
      if (
        !Number.isSafeInteger(e.offset) || !Number.isSafeInteger(e.length) || e.offset < 0 || e.length < 0 ||
        e.offset + e.length > size
      ) {
        throw new KilnError(
          "format",
          `Program file '${path}' is truncated: literal '${e.name}' needs bytes ${e.offset}..${
            e.offset + e.length
          }, the file has ${size}`,
        );
      }
      const bytes = await _readExact(file, e.offset, e.length, path, `literal '${e.name}'`);
      if (verify && (await sha1HexOf(bytes)) !== e.sha1) {
        throw new KilnError(
          "format",
          `Program file '${path}' is corrupt: literal '${e.name}' fails its checksum`,
        );
      }
      literals.push(bytes);
    }
  }
  return { meta, ir, literals };
}
