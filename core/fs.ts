/**
 * kiln's file access on the host, in one place, with the rules hostile inputs need:
 *
 * - **Regular files only.** A file kiln reads is checked with `stat` before it is opened: a FIFO,
 *   a device, a socket or a directory where a data file is expected fails with a message that
 *   names it and what it was wanted for, instead of hanging in `open` or failing with a bare OS
 *   error. (Between the check and the open the path could still be swapped; a data file is
 *   re-checked after opening.)
 * - **Containment by real path.** A location a model or weight set names relative to its folder
 *   is resolved with every symbolic link followed, and refused when it leads outside the folder
 *   (`resolveInside`); the caller opens the resolved path.
 * - **Atomic, durable writes.** A file kiln writes is written to a temporary file beside it,
 *   synced to disk, and renamed into place (`writeAtomic`): a write that fails (disk full, the
 *   process killed) or two writers racing on one path leave the old file or a whole new one,
 *   never a torn file.
 * @module
 */
import { KilnError } from "./errors.ts";
import { host, type HostFile, type HostFileInfo } from "./host.ts";
import { paths } from "./path.ts";

/** What a non-regular file is, for messages. */
function _kind(info: HostFileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  if (info.isSocket) return "a socket";
  if (info.isSymlink) return "a symbolic link";
  return "not a regular file";
}

function _why(e: unknown): string {
  if (host.isNotFound(e)) return "does not exist";
  if (host.isPermission(e)) {
    return `cannot be read (no permission: ${(e as Error).message.split("\n")[0]})`;
  }
  return `cannot be opened (${(e as Error).message.split("\n")[0]})`;
}

/** "<what> '<path>' <of>": the head of a message about a file. */
function _named(path: string, what: string, of?: string): string {
  return `${what} '${path}'${of ? ` ${of}` : ""}`;
}

/**
 * Stats `path` and checks it is a regular file. Messages read "<what> '<path>' <of> is a FIFO,
 * not a regular file", e.g. what "External data file", of "of tensor 'w'".
 */
export async function statRegular(path: string, what: string, of?: string): Promise<HostFileInfo> {
  let info: HostFileInfo;
  try {
    info = await host.stat(path);
  } catch (e) {
    throw new KilnError("io", `${_named(path, what, of)} ${_why(e)}`);
  }
  if (!info.isFile) {
    throw new KilnError("io", `${_named(path, what, of)} is ${_kind(info)}, not a regular file`);
  }
  return info;
}

/** `statRegular`, synchronously. */
export function statRegularSync(path: string, what: string, of?: string): HostFileInfo {
  let info: HostFileInfo;
  try {
    info = host.statSync(path);
  } catch (e) {
    throw new KilnError("io", `${_named(path, what, of)} ${_why(e)}`);
  }
  if (!info.isFile) {
    throw new KilnError("io", `${_named(path, what, of)} is ${_kind(info)}, not a regular file`);
  }
  return info;
}

/** Opens a regular file for reading (checked first: never blocks on a FIFO); returns it and its size. */
export async function openRegular(
  path: string,
  what: string,
  of?: string,
): Promise<{ file: HostFile; size: number }> {
  await statRegular(path, what, of);
  let file: HostFile;
  try {
    file = await host.open(path, { read: true });
  } catch (e) {
    throw new KilnError("io", `${_named(path, what, of)} ${_why(e)}`);
  }
  const info = await file.stat();
  if (!info.isFile) {
    file.close();
    throw new KilnError("io", `${_named(path, what, of)} is ${_kind(info)}, not a regular file`);
  }
  return { file, size: info.size };
}

/** `openRegular`, synchronously. */
export function openRegularSync(
  path: string,
  what: string,
  of?: string,
): { file: HostFile; size: number } {
  statRegularSync(path, what, of);
  let file: HostFile;
  try {
    file = host.openSync(path, { read: true });
  } catch (e) {
    throw new KilnError("io", `${_named(path, what, of)} ${_why(e)}`);
  }
  const info = file.statSync();
  if (!info.isFile) {
    file.close();
    throw new KilnError("io", `${_named(path, what, of)} is ${_kind(info)}, not a regular file`);
  }
  return { file, size: info.size };
}

/** Reads a whole regular file (for small files: models, headers, .npy). */
export async function readRegular(path: string, what: string, of?: string): Promise<Uint8Array<ArrayBuffer>> {
  const { file, size } = await openRegular(path, what, of);
  using f = file;
  const buf = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = await f.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  if (got !== size) {
    throw new KilnError(
      "io",
      `${_named(path, what, of)} changed while it was read (${got} of ${size} bytes)`,
    );
  }
  return buf;
}

/** `dir` + `/` + `rel`, without doubling the slash. */
export function joinPath(dir: string, rel: string): string {
  return paths.join(dir, rel);
}

/** True when `path` is `root` or inside it (both real, absolute paths; the platform's rules). */
function _within(path: string, root: string): boolean {
  return paths.within(path, root);
}

/**
 * Resolves `location` (relative, already checked textually: no `..` past the folder, not
 * absolute) against `dir` with every symbolic link followed, and checks the result stays inside
 * `dir`'s real path. Returns the real path to open, or the joined path when the file does not
 * exist (the caller reports it missing). `what` names the tensor for messages.
 */
export async function resolveInside(dir: string, location: string, what: string): Promise<string> {
  const joined = joinPath(dir, location);
  let root: string;
  try {
    root = await host.realPath(dir === "" ? "." : dir);
  } catch (e) {
    throw new KilnError("io", `${what}: folder '${dir}' ${_why(e)}`);
  }
  let real: string;
  try {
    real = await host.realPath(joined);
  } catch (e) {
    if (host.isNotFound(e)) return joined;
    throw new KilnError("io", `${what}: '${joined}' ${_why(e)}`);
  }
  if (!_within(real, root)) {
    throw new KilnError(
      "io",
      `${what}: location '${location}' leads to '${real}', outside the folder '${root}' (through a symbolic link)`,
    );
  }
  return real;
}

/** The real path of `path` when it exists, else undefined. */
export async function realPathOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await host.realPath(path);
  } catch {
    return undefined;
  }
}

/** Creates folder `path` (and its parents) unless it exists; a file in its place is a clear error. */
export async function ensureDir(path: string, what: string): Promise<void> {
  try {
    const info = await host.stat(path);
    if (info.isDirectory) return;
    throw new KilnError("io", `${what} '${path}' is ${info.isFile ? "a file" : _kind(info)}, not a folder`);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    if (!host.isNotFound(e)) throw new KilnError("io", `${what} '${path}' ${_why(e)}`);
  }
  try {
    await host.mkdir(path, { recursive: true });
  } catch (e) {
    throw new KilnError(
      "io",
      `Cannot create ${what.toLowerCase()} '${path}': ${(e as Error).message.split("\n")[0]}`,
    );
  }
}

let _tmpSeq = 0;

/**
 * Writes `path` atomically and durably: `fill` writes a temporary file in the same folder, which
 * is synced and renamed over `path` only when `fill` succeeded; on any failure the temporary file
 * is removed and `path` keeps what it had. `what` names the file for messages ("Program file").
 */
export async function writeAtomic(
  path: string,
  fill: (f: HostFile) => Promise<void>,
  what: string,
): Promise<void> {
  const dir = paths.dirname(path);
  const base = /[\\/]$/.test(path) ? "" : paths.basename(path);
  if (base === "" || base === "." || base === "..") {
    throw new KilnError("io", `${what} '${path}' is not a file name`);
  }
  try {
    const info = await host.stat(path);
    if (!info.isFile) throw new KilnError("io", `${what} '${path}' is ${_kind(info)}, not a regular file`);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    // absent: it is created
  }
  // the temporary file lies in the same folder as the file, so the rename is atomic
  const tmp = paths.join(
    dir,
    `.${base}.kiln-tmp-${host.pid}-${Date.now().toString(36)}-${(_tmpSeq++).toString(36)}`,
  );
  let f: HostFile;
  try {
    f = await host.open(tmp, { write: true, createNew: true });
  } catch (e) {
    throw new KilnError(
      "io",
      `Cannot write ${what.toLowerCase()} '${path}': ${(e as Error).message.split("\n")[0]}`,
    );
  }
  try {
    try {
      await fill(f);
      await f.syncData();
    } finally {
      f.close();
    }
    await host.rename(tmp, path);
  } catch (e) {
    try {
      await host.remove(tmp);
    } catch {
      // already gone
    }
    if (e instanceof KilnError) throw e;
    throw new KilnError(
      "io",
      `Cannot write ${what.toLowerCase()} '${path}': ${(e as Error).message.split("\n")[0]}`,
    );
  }
}

/** Writes all of `bytes` to `f`. */
export async function writeAll(f: HostFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await f.write(bytes.subarray(off));
}

/** Writes a whole file atomically (see `writeAtomic`). */
export function writeFileAtomic(path: string, bytes: Uint8Array, what: string): Promise<void> {
  return writeAtomic(path, (f) => writeAll(f, bytes), what);
}
