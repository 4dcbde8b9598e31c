/**
 * File range reads: one preallocated buffer per range, a read loop (a single read returns at
 * most ~2 GiB), never a whole-file copy (STACK.md 2).
 * @module
 */
import { KilnError } from "./errors.ts";
import { openRegular, openRegularSync } from "./fs.ts";
import { type HostFile, SEEK_START } from "./host.ts";

/** Reads `length` bytes at `offset` of an open file into a new buffer; throws if the file ends first. */
export async function readRangeFrom(
  file: HostFile,
  path: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, SEEK_START);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) {
      throw new KilnError(
        "io",
        `File '${path}' ends at byte ${offset + got}, but bytes ${offset}..${offset + length} were needed`,
      );
    }
    got += n;
  }
  return buf;
}

/** Reads `length` bytes at `offset` of the regular file at `path`. */
export async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const { file } = await openRegular(path, "File");
  using f = file;
  return await readRangeFrom(f, path, offset, length);
}

/** A byte range of a file: where a tensor's bytes are, for targets that read files themselves. */
export interface FileRange {
  /** the file (as given: relative paths resolve against the working directory) */
  path: string;
  /** byte offset */
  offset: number;
  /** byte length */
  length: number;
}

/** Reads a file range synchronously (lazy tensors read on first use). */
export function readRangeSync(range: FileRange): Uint8Array<ArrayBuffer> {
  using file = openRegularSync(range.path, "File").file;
  const buf = new Uint8Array(range.length);
  file.seekSync(range.offset, SEEK_START);
  let got = 0;
  while (got < range.length) {
    const n = file.readSync(buf.subarray(got));
    if (n === null) {
      throw new KilnError(
        "io",
        `File '${range.path}' ends at byte ${range.offset + got}, but bytes ${range.offset}..${
          range.offset + range.length
        } were needed`,
      );
    }
    got += n;
  }
  return buf;
}

/**
 * Defines `bytes` on `obj` as a read of `range` at each access and records the range as
 * `obj.file`, so that a target that reads files itself never reads them in JavaScript.
 */
export function withLazyBytes<T extends object, R extends FileRange>(
  obj: T,
  range: R,
): T & { readonly bytes: Uint8Array; readonly file: R } {
  // not cached: a lazy tensor may be larger than what JavaScript should hold on to
  Object.defineProperty(obj, "file", { value: { ...range }, enumerable: true });
  Object.defineProperty(obj, "bytes", { get: () => readRangeSync(range), enumerable: true });
  return obj as T & { readonly bytes: Uint8Array; readonly file: R };
}
