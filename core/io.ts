/**
 * File range reads: one preallocated buffer per range, a read loop (a single read returns at
 * most ~2 GiB), never a whole-file copy (STACK.md 2).
 * @module
 */
import { KilnError } from "./errors.ts";

/** Reads `length` bytes at `offset` of an open file into a new buffer; throws if the file ends first. */
export async function readRangeFrom(
  file: Deno.FsFile,
  path: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
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

/** Reads `length` bytes at `offset` of the file at `path`. */
export async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new KilnError("io", `Cannot open '${path}': ${(e as Error).message}`);
  }
  using file = f;
  return await readRangeFrom(file, path, offset, length);
}
