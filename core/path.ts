/**
 * Paths on the host's file system, by the platform's own rules: node:path (POSIX, or Windows with
 * its drive letters and backslashes), which Deno and Node provide through
 * `process.getBuiltinModule`; where there is none (a browser, which has no files) a POSIX subset.
 * Locations inside models (ONNX external data) are relative and use `/`, which both accept.
 * @module
 */

import { nodeBuiltin } from "./host.ts";

/** The operations kiln uses (node:path's, or the POSIX subset). */
export interface PathOps {
  /** the separator ("/" or "\\") */
  readonly sep: string;
  isAbsolute(p: string): boolean;
  join(...parts: string[]): string;
  dirname(p: string): string;
  basename(p: string): string;
  resolve(...parts: string[]): string;
  relative(from: string, to: string): string;
}

/** A POSIX subset for hosts without node:path. */
const _posix: PathOps = {
  sep: "/",
  isAbsolute: (p) => p.startsWith("/"),
  join: (...parts) => _normalize(parts.filter((x) => x !== "").join("/")) || ".",
  dirname: (p) => {
    const t = p.replace(/\/+$/, "");
    if (t === "") return p.startsWith("/") ? "/" : ".";
    const i = t.lastIndexOf("/");
    return i < 0 ? "." : i === 0 ? "/" : t.slice(0, i);
  },
  basename: (p) => p.replace(/\/+$/, "").split("/").pop() ?? "",
  resolve: (...parts) => {
    let p = "";
    for (const x of parts) p = x.startsWith("/") ? x : `${p}/${x}`;
    return "/" + _normalize(p).replace(/^\/+/, "");
  },
  relative: (from, to) => {
    const a = _posix.resolve(from).split("/").filter(Boolean),
      b = _posix.resolve(to).split("/").filter(Boolean);
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
  },
};

function _normalize(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === ".." && out.length && out[out.length - 1] !== "..") out.pop();
    else if (seg !== ".." || !abs) out.push(seg);
  }
  return (abs ? "/" : "") + out.join("/");
}

/** Path helpers over `ops` (the host's, or a chosen one in tests). */
export function pathsOver(ops: PathOps) {
  return {
    ops,
    /** `dir` joined with `rel` ("" dir: `rel` itself) */
    join(dir: string, rel: string): string {
      return dir === "" ? rel : ops.join(dir, rel);
    },
    /** the folder of a file path ("." for a bare name) */
    dirname(p: string): string {
      return ops.dirname(p);
    },
    /** the last part of a path */
    basename(p: string): string {
      return ops.basename(p);
    },
    /** an absolute, normalized path of `p` (relative ones against `cwd`) */
    absolute(p: string, cwd: string): string {
      return ops.resolve(cwd, p);
    },
    /** true when `path` is `root` or inside it (both absolute, real paths) */
    within(path: string, root: string): boolean {
      const rel = ops.relative(root, path);
      return rel === "" || (!rel.startsWith("..") && !ops.isAbsolute(rel));
    },
  };
}

function _hostOps(): PathOps {
  return nodeBuiltin<PathOps>("node:path") ?? _posix;
}

/** The host's paths. */
export const paths: ReturnType<typeof pathsOver> = pathsOver(_hostOps());

/** The POSIX subset (tests compare it with node:path's POSIX rules). */
export const posixPathOps: PathOps = _posix;

/** A file path from a `file:` URL, by the host's rules (Windows: `file:///C:/x` is `C:\x`). */
export function fileUrlPath(url: URL): string {
  const u = nodeBuiltin<{ fileURLToPath(u: URL): string }>("node:url");
  return u ? u.fileURLToPath(url) : decodeURIComponent(url.pathname);
}
