/**
 * ONNX external data: parse a tensor's `external_data` entries (by key, never by position),
 * validate the location against the model's folder, and read weight bytes in ranges
 * (one preallocated buffer per tensor, `Deno.open` + seek + read loop; never a whole-file read).
 * @module
 */
import { openRegular, resolveInside } from "../fs.ts";
import { type FileRange, readRangeFrom } from "../io.ts";
import { KilnError } from "../errors.ts";
import type { ExternalDataRef } from "../ir/builder.ts";
import { importError } from "./errors.ts";
import type { onnx } from "./onnx_pb.js";
import { host, type HostFile, SEEK_START } from "../host.ts";
import { paths } from "../path.ts";

/**
 * The keys onnx reads for `external_data`. `basepath` is one of its ExternalDataInfo fields but
 * onnx's loader resolves `location` against the folder it is given, never against it, and so does
 * kiln: it is accepted and ignored (the containment rules apply to `location` alike). Any other
 * key is an error: onnx would ignore it, but a misspelt `offset` read as 0 would be silent garbage.
 */
const _KEYS = new Set(["location", "offset", "length", "checksum", "basepath"]);

/** An external-data reference whose `length` may still be unknown (defaults to the tensor's size). */
export interface ExternalEntry {
  location: string;
  offset: number;
  /** undefined when the model gives no `length` */
  length?: number;
  /** SHA1 hex of the file, "" when the model gives none */
  checksum: string;
}

/** Parses a decimal byte count from an `external_data` value. */
function _parseCount(tensor: string, key: string, value: string): number {
  if (!/^\d+$/.test(value.trim())) {
    throw importError(`External data of tensor '${tensor}': '${key}' is '${value}', not a byte count`);
  }
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n)) {
    throw importError(`External data of tensor '${tensor}': '${key}' ${value} is too large`);
  }
  return n;
}

/**
 * Reads a tensor's `external_data` entries by key. Requires `location`; `offset` defaults to 0;
 * `basepath` is ignored; unknown keys and repeated keys are errors.
 */
export function parseExternalEntries(
  tensor: string,
  entries: readonly onnx.IStringStringEntryProto[],
): ExternalEntry {
  const seen = new Map<string, string>();
  for (const e of entries) {
    const key = e.key ?? "";
    if (!_KEYS.has(key)) {
      throw importError(
        `External data of tensor '${tensor}' has an unknown key '${key}' (known: location, offset, length, checksum, basepath)`,
      );
    }
    if (seen.has(key)) throw importError(`External data of tensor '${tensor}' repeats the key '${key}'`);
    seen.set(key, e.value ?? "");
  }
  const location = seen.get("location");
  if (location === undefined || location === "") {
    throw importError(`External data of tensor '${tensor}' has no 'location'`);
  }
  const offset = seen.has("offset") ? _parseCount(tensor, "offset", seen.get("offset")!) : 0;
  const length = seen.has("length") ? _parseCount(tensor, "length", seen.get("length")!) : undefined;
  return { location, offset, length, checksum: seen.get("checksum") ?? "" };
}

/**
 * Checks a location's text and returns it normalized (relative, `/`-separated). Refuses absolute
 * paths (POSIX, UNC and drive letters), paths that leave the model's folder after normalization
 * (`..`), NUL bytes and empty paths. A purely textual check: no file system access.
 */
export function normalizeLocation(tensor: string, location: string): string {
  const refuse = (why: string) =>
    importError(`External data of tensor '${tensor}': location '${location}' ${why}`);
  if (location.includes("\0")) throw refuse("contains a NUL byte");
  if (/^[/\\]/.test(location) || /^[A-Za-z]:/.test(location)) {
    throw refuse("is absolute; it must be relative to the model's folder");
  }
  const parts: string[] = [];
  for (const seg of location.split(/[/\\]+/)) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length === 0) throw refuse("escapes the model's folder");
      parts.pop();
    } else {
      parts.push(seg);
    }
  }
  if (parts.length === 0) throw refuse("names no file");
  return parts.join("/");
}

/**
 * The full reference (length resolved) of an external tensor whose data takes `byteSize` bytes;
 * checks `length == byteSize`.
 */
export function resolveExternalRef(tensor: string, entry: ExternalEntry, byteSize: number): ExternalDataRef {
  const location = normalizeLocation(tensor, entry.location);
  const length = entry.length ?? byteSize;
  if (length !== byteSize) {
    throw importError(
      `External data of tensor '${tensor}' in '${location}': length is ${length} bytes, the tensor needs ${byteSize}`,
    );
  }
  return { location, offset: entry.offset, length, checksum: entry.checksum };
}

/** Joins a folder and a normalized relative location. */
function _join(dir: string, location: string): string {
  return paths.join(dir, location);
}

interface _OpenFile {
  file: HostFile;
  size: number;
  /** its real path (symbolic links resolved, checked inside the folder) */
  real: string;
}

/**
 * Reads external tensors' bytes from files under one folder: each file is opened once, each
 * tensor's range is read into its own preallocated buffer with a seek + read loop.
 * Call `close()` when done (also on failure).
 */
export class ExternalDataReader {
  readonly #dir: string;
  readonly #files = new Map<string, _OpenFile>();
  /** SHA-1 of each file whose checksum some tensor records (computed once, on first read) */
  readonly #sha1 = new Map<string, string>();

  /** `dir`: the model's folder (absolute or relative to the working directory). */
  constructor(dir: string) {
    this.#dir = dir;
  }

  async #open(tensor: string, location: string): Promise<_OpenFile> {
    const known = this.#files.get(location);
    if (known) return known;
    try {
      // the real path: a symbolic link may not lead out of the model's folder
      const path = await resolveInside(this.#dir, location, `External data of tensor '${tensor}'`);
      const open = {
        ...(await openRegular(path, "External data file", `of tensor '${tensor}'`)),
        real: path,
      };
      this.#files.set(location, open);
      return open;
    } catch (e) {
      if (e instanceof KilnError) throw importError(e.message, {}, "io");
      throw e;
    }
  }

  /** The SHA-1 hex of a whole open file (read in chunks). */
  async #fileSha1(location: string, file: HostFile): Promise<string> {
    const known = this.#sha1.get(location);
    if (known) return known;
    const h = host.sha1();
    const buf = new Uint8Array(1 << 22);
    await file.seek(0, SEEK_START);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
    const hex = h.digest("hex");
    this.#sha1.set(location, hex);
    return hex;
  }

  /**
   * Reads the bytes of `ref` (already validated by `resolveExternalRef`); a checksum the model
   * records for the file (SHA-1 of the whole file) is verified first, as a bind verifies it.
   */
  async read(tensor: string, ref: ExternalDataRef): Promise<Uint8Array> {
    const { file, path } = await this.#check(tensor, ref);
    try {
      return await readRangeFrom(file, path, ref.offset, ref.length);
    } catch (e) {
      throw importError(`External data of tensor '${tensor}': ${(e as Error).message}`, {}, "io");
    }
  }

  /**
   * Checks `ref` as `read` does (the file inside the folder, regular, long enough; its checksum
   * when the model records one) without reading the tensor: where its bytes are (the real path),
   * for a reader that puts them straight where they go (the ref target's core memory).
   */
  async locate(tensor: string, ref: ExternalDataRef): Promise<FileRange> {
    const { real } = await this.#check(tensor, ref);
    return { path: real, offset: ref.offset, length: ref.length };
  }

  /** Opens `ref`'s file and checks its checksum (when recorded) and length; throws an import error. */
  async #check(
    tensor: string,
    ref: ExternalDataRef,
  ): Promise<{ file: HostFile; path: string; real: string }> {
    const { file, size, real } = await this.#open(tensor, ref.location);
    const path = _join(this.#dir, ref.location);
    if (ref.checksum) {
      const got = await this.#fileSha1(ref.location, file);
      if (got !== ref.checksum.toLowerCase()) {
        throw importError(
          `External data of tensor '${tensor}': file '${path}' fails its checksum: SHA-1 ${got}, the model records ${ref.checksum}`,
          {},
          "io",
        );
      }
    }
    if (ref.offset + ref.length > size) {
      throw importError(
        `External data of tensor '${tensor}': bytes ${ref.offset}..${
          ref.offset + ref.length
        } are past the end of '${path}' (${size} bytes)`,
      );
    }
    return { file, path, real };
  }

  /** Closes every file this reader opened. */
  close(): void {
    for (const { file } of this.#files.values()) file.close();
    this.#files.clear();
  }
}
