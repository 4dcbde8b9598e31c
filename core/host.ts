/**
 * The host kiln runs on, chosen at run time: file access goes through here so the same code runs
 * under Deno (its own file API, with its permissions) and Node (node:fs). Where neither exists (a
 * browser) the file calls fail with a clear error: there, models and weights come as bytes, URLs
 * or Responses. Only what kiln uses is here: random-access reads and writes of one file, stat,
 * real paths, folders, renames, removals.
 *
 * The interfaces are the subset of Deno's file API kiln calls, so under Deno the host is Deno's
 * own objects, unwrapped; under Node each call maps onto node:fs.
 * @module
 */

/** What `stat` says of a path (the fields kiln reads). */
export interface HostFileInfo {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  isFifo?: boolean | null;
  isCharDevice?: boolean | null;
  isBlockDevice?: boolean | null;
  isSocket?: boolean | null;
  size: number;
  mtime: Date | null;
}

/** Seek origins (the values of Deno.SeekMode). */
export const SEEK_START = 0;
export const SEEK_CURRENT = 1;
export const SEEK_END = 2;

/** An open file: sequential reads and writes from a position that `seek` moves. */
export interface HostFile {
  read(p: Uint8Array): Promise<number | null>;
  readSync(p: Uint8Array): number | null;
  write(p: Uint8Array): Promise<number>;
  seek(offset: number, whence: number): Promise<number>;
  seekSync(offset: number, whence: number): number;
  stat(): Promise<HostFileInfo>;
  statSync(): HostFileInfo;
  syncData(): Promise<void>;
  /** sets the file's length (zeros past the old end) */
  truncate(length: number): Promise<void>;
  close(): void;
  [Symbol.dispose](): void;
}

/** How to open a file. */
export interface HostOpenOptions {
  read?: boolean;
  write?: boolean;
  /** fail when it exists */
  createNew?: boolean;
  create?: boolean;
  truncate?: boolean;
}

/** An incremental SHA-1 (node:crypto's, at native speed). */
export interface Sha1 {
  update(bytes: Uint8Array): Sha1;
  /** the digest as lowercase hex */
  digest(encoding: "hex"): string;
}

/** The host's file system. */
export interface Host {
  /** "deno", "node", or "none" (no file system: a browser) */
  readonly name: "deno" | "node" | "none";
  stat(path: string): Promise<HostFileInfo>;
  statSync(path: string): HostFileInfo;
  open(path: string, options: HostOpenOptions): Promise<HostFile>;
  openSync(path: string, options: HostOpenOptions): HostFile;
  realPath(path: string): Promise<string>;
  mkdir(path: string, options?: { recursive?: boolean }): Promise<void>;
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array<ArrayBuffer>>;
  readTextFile(path: string): Promise<string>;
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  makeTempDir(prefix: string): Promise<string>;
  cwd(): string;
  readonly pid: number;
  /**
   * A SHA-1 (program-file literals, external-data checksums, weight files). Deno and Node have
   * node:crypto; elsewhere this throws (WebCrypto's digest is one-shot and asynchronous, and
   * those checksums are of files, which a browser has none of).
   */
  sha1(): Sha1;
  /** the error says the path does not exist */
  isNotFound(e: unknown): boolean;
  /** the error says access was refused (the OS, or Deno's permissions) */
  isPermission(e: unknown): boolean;
}

// ---- Deno ------------------------------------------------------------------------------------

type NodeCrypto = typeof import("node:crypto");

function _denoHost(crypto: NodeCrypto): Host {
  const D = (globalThis as unknown as { Deno: typeof Deno }).Deno;
  return {
    sha1: () => crypto.createHash("sha1"),
    name: "deno",
    stat: (p) => D.stat(p),
    statSync: (p) => D.statSync(p),
    open: (p, o) => D.open(p, o),
    openSync: (p, o) => D.openSync(p, o),
    realPath: (p) => D.realPath(p),
    mkdir: (p, o) => D.mkdir(p, o),
    remove: (p, o) => D.remove(p, o),
    rename: (a, b) => D.rename(a, b),
    readFile: (p) => D.readFile(p),
    readTextFile: (p) => D.readTextFile(p),
    writeFile: (p, b) => D.writeFile(p, b),
    makeTempDir: (prefix) => D.makeTempDir({ prefix }),
    cwd: () => D.cwd(),
    pid: D.pid,
    isNotFound: (e) => e instanceof D.errors.NotFound,
    isPermission: (e) => e instanceof D.errors.PermissionDenied || e instanceof D.errors.NotCapable,
  };
}

// ---- bytes -----------------------------------------------------------------------------------

/** A read-only HostFile over bytes in memory: code that reads files reads a buffer the same way. */
export class BytesFile implements HostFile {
  #b: Uint8Array;
  #pos = 0;
  /** `bytes` are read in place, not copied. */
  constructor(bytes: Uint8Array) {
    this.#b = bytes;
  }
  /** Copies up to `p.byteLength` bytes from the position; null at the end. */
  readSync(p: Uint8Array): number | null {
    if (p.byteLength === 0) return 0;
    const n = Math.min(p.byteLength, this.#b.byteLength - this.#pos);
    if (n <= 0) return null;
    p.set(this.#b.subarray(this.#pos, this.#pos + n));
    this.#pos += n;
    return n;
  }
  /** `readSync`, as a promise. */
  read(p: Uint8Array): Promise<number | null> {
    return Promise.resolve(this.readSync(p));
  }
  /** Refused: the bytes are read-only. */
  write(): Promise<number> {
    return Promise.reject(new Error("bytes given to kiln are read-only"));
  }
  /** Moves the position. */
  seekSync(offset: number, whence: number): number {
    const base = whence === SEEK_START ? 0 : whence === SEEK_CURRENT ? this.#pos : this.#b.byteLength;
    this.#pos = base + offset;
    return this.#pos;
  }
  /** `seekSync`, as a promise. */
  seek(offset: number, whence: number): Promise<number> {
    return Promise.resolve(this.seekSync(offset, whence));
  }
  /** A regular file of the bytes' length. */
  statSync(): HostFileInfo {
    return { isFile: true, isDirectory: false, isSymlink: false, size: this.#b.byteLength, mtime: null };
  }
  /** `statSync`, as a promise. */
  stat(): Promise<HostFileInfo> {
    return Promise.resolve(this.statSync());
  }
  /** Nothing to sync. */
  syncData(): Promise<void> {
    return Promise.resolve();
  }
  /** Refused: the bytes are read-only. */
  truncate(): Promise<void> {
    return Promise.reject(new Error("bytes given to kiln are read-only"));
  }
  /** Nothing to close. */
  close(): void {}
  /** Nothing to close. */
  [Symbol.dispose](): void {}
}

// ---- Node ------------------------------------------------------------------------------------

type NodeFs = typeof import("node:fs");
type NodeStats = import("node:fs").Stats;

function _info(s: NodeStats): HostFileInfo {
  return {
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
    isSymlink: s.isSymbolicLink(),
    isFifo: s.isFIFO(),
    isCharDevice: s.isCharacterDevice(),
    isBlockDevice: s.isBlockDevice(),
    isSocket: s.isSocket(),
    size: s.size,
    mtime: s.mtime,
  };
}

function _flags(fs: NodeFs, o: HostOpenOptions): number {
  const c = fs.constants;
  let f = o.write ? (o.read ? c.O_RDWR : c.O_WRONLY) : c.O_RDONLY;
  if (o.createNew) f |= c.O_CREAT | c.O_EXCL;
  else if (o.create) f |= c.O_CREAT;
  if (o.truncate) f |= c.O_TRUNC;
  return f;
}

/** A node:fs file descriptor with a position, read and written with positional calls. */
class _NodeFile implements HostFile {
  #fs: NodeFs;
  #fd: number;
  #pos = 0;
  constructor(fs: NodeFs, fd: number) {
    this.#fs = fs;
    this.#fd = fd;
  }
  read(p: Uint8Array): Promise<number | null> {
    return new Promise((resolve, reject) => {
      this.#fs.read(this.#fd, p, 0, p.byteLength, this.#pos, (e, n) => {
        if (e) return reject(e);
        this.#pos += n;
        resolve(n === 0 && p.byteLength > 0 ? null : n);
      });
    });
  }
  readSync(p: Uint8Array): number | null {
    const n = this.#fs.readSync(this.#fd, p, 0, p.byteLength, this.#pos);
    this.#pos += n;
    return n === 0 && p.byteLength > 0 ? null : n;
  }
  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#fs.write(this.#fd, p, 0, p.byteLength, this.#pos, (e, n) => {
        if (e) return reject(e);
        this.#pos += n;
        resolve(n);
      });
    });
  }
  seekSync(offset: number, whence: number): number {
    const base = whence === SEEK_START
      ? 0
      : whence === SEEK_CURRENT
      ? this.#pos
      : this.#fs.fstatSync(this.#fd).size;
    this.#pos = base + offset;
    return this.#pos;
  }
  seek(offset: number, whence: number): Promise<number> {
    return Promise.resolve(this.seekSync(offset, whence));
  }
  stat(): Promise<HostFileInfo> {
    return new Promise((resolve, reject) => {
      this.#fs.fstat(this.#fd, (e, s) => (e ? reject(e) : resolve(_info(s))));
    });
  }
  statSync(): HostFileInfo {
    return _info(this.#fs.fstatSync(this.#fd));
  }
  syncData(): Promise<void> {
    return new Promise((resolve, reject) => this.#fs.fdatasync(this.#fd, (e) => (e ? reject(e) : resolve())));
  }
  truncate(length: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#fs.ftruncate(this.#fd, length, (e) => (e ? reject(e) : resolve()))
    );
  }
  close(): void {
    if (this.#fd < 0) return;
    this.#fs.closeSync(this.#fd);
    this.#fd = -1;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

function _nodeHost(
  fs: NodeFs,
  crypto: NodeCrypto,
  proc: { pid: number; cwd(): string },
  tmpdir: string,
): Host {
  const p = fs.promises;
  const code = (e: unknown) => (e as { code?: string } | null)?.code;
  return {
    sha1: () => crypto.createHash("sha1"),
    name: "node",
    stat: async (path) => _info(await p.stat(path)),
    statSync: (path) => _info(fs.statSync(path)),
    // a raw descriptor (fs.open's callback), not a FileHandle, which would close it again when collected
    open: (path, o) =>
      new Promise((resolve, reject) =>
        fs.open(path, _flags(fs, o), 0o644, (e, fd) => (e ? reject(e) : resolve(new _NodeFile(fs, fd))))
      ),
    openSync: (path, o) => new _NodeFile(fs, fs.openSync(path, _flags(fs, o), 0o644)),
    realPath: (path) => p.realpath(path),
    mkdir: async (path, o) => {
      await p.mkdir(path, { recursive: o?.recursive ?? false });
    },
    remove: (path, o) => p.rm(path, { recursive: o?.recursive ?? false }),
    rename: (a, b) => p.rename(a, b),
    readFile: async (path) => {
      const b = await p.readFile(path);
      return new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength);
    },
    readTextFile: (path) => p.readFile(path, "utf8"),
    writeFile: (path, bytes) => p.writeFile(path, bytes),
    makeTempDir: (prefix) => p.mkdtemp(`${tmpdir}/${prefix}`),
    cwd: () => proc.cwd(),
    pid: proc.pid,
    isNotFound: (e) => code(e) === "ENOENT",
    isPermission: (e) => code(e) === "EACCES" || code(e) === "EPERM",
  };
}

// ---- none (a browser) ------------------------------------------------------------------------

function _noHost(): Host {
  const no = (path: string): never => {
    throw new Error(
      `No file system here (no Deno, no Node): '${path}' cannot be read; give models and weights as bytes`,
    );
  };
  return {
    name: "none",
    stat: (path) => Promise.reject(no(path)),
    statSync: no,
    open: (path) => Promise.reject(no(path)),
    openSync: no,
    realPath: (path) => Promise.reject(no(path)),
    mkdir: (path) => Promise.reject(no(path)),
    remove: (path) => Promise.reject(no(path)),
    rename: (path) => Promise.reject(no(path)),
    readFile: (path) => Promise.reject(no(path)),
    readTextFile: (path) => Promise.reject(no(path)),
    writeFile: (path) => Promise.reject(no(path)),
    makeTempDir: (prefix) => Promise.reject(no(prefix)),
    cwd: () => "/",
    pid: 0,
    sha1: () => {
      throw new Error("No SHA-1 here (no node:crypto): file checksums need Deno or Node");
    },
    isNotFound: () => false,
    isPermission: () => false,
  };
}

type Builtins = {
  getBuiltinModule?: (name: string) => unknown;
  pid: number;
  cwd(): string;
  versions?: { node?: string };
};

/**
 * A node: module through `process.getBuiltinModule` (Deno 2, Node >= 20.16), or undefined where
 * there is none (a browser) or the host refuses it.
 */
export function nodeBuiltin<T>(name: string): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (n: string) => unknown } }).process;
  try {
    return proc?.getBuiltinModule?.(name) as T | undefined;
  } catch {
    return undefined;
  }
}

/**
 * Chooses the host synchronously, with no top-level await: a module that awaits while it loads
 * makes a worker that imports it miss the messages sent to it meanwhile (Deno drops them). The
 * node: modules come from `process.getBuiltinModule` (Deno 2, Node >= 20.16), so a browser never
 * loads them.
 */
function _detect(): Host {
  const g = globalThis as unknown as { Deno?: unknown; process?: Builtins };
  const proc = g.process;
  const builtin = <T>(name: string): T => {
    if (!proc?.getBuiltinModule) {
      throw new Error(`kiln needs process.getBuiltinModule (Deno 2, Node >= 20.16) to load ${name}`);
    }
    return proc.getBuiltinModule(name) as T;
  };
  if (g.Deno) return _denoHost(builtin<NodeCrypto>("node:crypto"));
  if (proc?.versions?.node) {
    const os = builtin<typeof import("node:os")>("node:os");
    return _nodeHost(builtin<NodeFs>("node:fs"), builtin<NodeCrypto>("node:crypto"), proc, os.tmpdir());
  }
  return _noHost();
}

/** The host this process runs on. */
export const host: Host = _detect();

/**
 * SHA-1 hex of `bytes`: node:crypto where the host has it (native speed, incremental), else
 * WebCrypto's one-shot digest (browsers: a program file loaded from bytes is verified there too).
 */
export async function sha1HexOf(bytes: Uint8Array): Promise<string> {
  if (host.name !== "none") return host.sha1().update(bytes).digest("hex");
  return await sha1HexWebCrypto(bytes);
}

/** SHA-1 hex through WebCrypto (`crypto.subtle`). */
export async function sha1HexWebCrypto(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-1", bytes as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (const b of d) hex += b.toString(16).padStart(2, "0");
  return hex;
}
