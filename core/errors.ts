/**
 * KilnError: every failure of the compiler core (shape inference, unsupported ops, run-time
 * kernel errors, corrupt programs), with the node, op and shapes involved.
 * @module
 */

/** One diagnostic recorded by the WASM core. */
export interface Diagnostic {
  /** Machine-readable code, e.g. "shape". */
  code: KilnErrorCode;
  /** ONNX node (or value) name; "" when none. */
  node: string;
  /** Op name; "" when none. */
  op: string;
  /** What went wrong, in one line. */
  message: string;
  /** The node's input shapes, e.g. "float32[2,3], float32[4]". */
  shapes: string;
}

/**
 * What a KilnError's `code` can be: the core's diagnostics ("shape" to "memory", as
 * DIAGNOSTIC_CODES names them), then the host's: "onnx" (a model that does not import), "io" (a
 * file), "input" (eval inputs, arguments of library calls), "weights" (weight sets, adapters),
 * "argument" (an option out of range), "options" (compile options), "permission" (a Deno
 * permission the call needs), "target" (a program on the wrong target), "unsupported"
 * (a feature the target lacks), "disposed", "no_gpu", "gpu" (a failed library call),
 * "aborted" (a call whose AbortSignal fired) and "internal".
 */
export type KilnErrorCode =
  | "shape"
  | "unsupported_op"
  | "attribute"
  | "graph"
  | "needs_constant"
  | "runtime"
  | "dtype"
  | "validate"
  | "format"
  | "memory"
  | "onnx"
  | "io"
  | "input"
  | "weights"
  | "argument"
  | "options"
  | "permission"
  | "target"
  | "unsupported"
  | "disposed"
  | "no_gpu"
  | "gpu"
  | "aborted"
  | "internal";

/** The core's numeric diagnostic codes (wasm/ir/diag.ts) by name. */
export const DIAGNOSTIC_CODES: Record<number, KilnErrorCode> = {
  1: "shape",
  2: "unsupported_op",
  3: "attribute",
  4: "graph",
  5: "needs_constant",
  6: "runtime",
  7: "dtype",
  8: "validate",
  9: "format",
  10: "memory",
};

/** What a KilnError carries besides its message. */
export interface KilnErrorContext {
  /** the ONNX node involved */
  node?: string;
  /** its op */
  op?: string;
  /** its input shapes */
  shapes?: string;
  /** every diagnostic the core recorded */
  diagnostics?: Diagnostic[];
}

/**
 * A kiln failure. `code` is one of "shape", "unsupported_op", "attribute", "graph",
 * "needs_constant", "runtime", "dtype", "validate", "format", "memory", "input", "internal",
 * "io" and the like.
 *
 * @example
 * ```ts
 * import { KilnError } from "./errors.ts";
 * const e = new KilnError("input", "Missing input 'x'");
 * console.assert(e.code === "input");
 * ```
 */
export class KilnError extends Error {
  /** Machine-readable code. */
  readonly code: KilnErrorCode;
  /** The ONNX node involved, if any. */
  readonly node?: string;
  /** Its op, if any. */
  readonly op?: string;
  /** Its input shapes, if known. */
  readonly shapes?: string;
  /** Every diagnostic the core recorded for this failure. */
  readonly diagnostics: Diagnostic[];

  /** An error with a machine-readable `code`, a one-line `message`, and where it happened. */
  constructor(code: KilnErrorCode, message: string, ctx: KilnErrorContext = {}) {
    super(message);
    this.name = "KilnError";
    this.code = code;
    this.node = ctx.node || undefined;
    this.op = ctx.op || undefined;
    this.shapes = ctx.shapes || undefined;
    this.diagnostics = ctx.diagnostics ?? [];
  }
}

const _PHASE: Record<string, string> = {
  shape: "Shape inference failed",
  dtype: "Shape inference failed",
  needs_constant: "Shape inference failed",
  attribute: "Bad attribute",
  runtime: "Run failed",
  validate: "IR validation failed",
};

/** Builds the KilnError for a list of core diagnostics (the first one leads the message). */
export function errorFromDiagnostics(diags: Diagnostic[], fallback: string): KilnError {
  if (diags.length === 0) return new KilnError("internal", fallback);
  const d = diags[0];
  let msg: string;
  if (d.node || d.op) {
    const phase = _PHASE[d.code];
    const at = `node '${d.node}'${d.op ? ` (${d.op})` : ""}`;
    msg = phase
      ? `${phase} at ${at}: ${d.message}`
      : d.message.includes(`'${d.node}'`)
      ? d.message
      : `${d.message} at ${at}`;
  } else {
    msg = d.message;
  }
  if (diags.length > 1) msg += ` (and ${diags.length - 1} more)`;
  return new KilnError(d.code, msg, { node: d.node, op: d.op, shapes: d.shapes, diagnostics: diags });
}

/**
 * Throws KilnError "aborted" when `signal` has fired: "<what> was aborted (<its reason>)". Long
 * calls check it between their steps (each tensor read, before a bind switches), so an abort
 * takes effect at the next step and leaves what was there before.
 */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (!signal?.aborted) return;
  const r = signal.reason;
  const why = r instanceof Error ? r.message : r === undefined ? "" : String(r);
  const e = new KilnError("aborted", `${what} was aborted${why ? ` (${why})` : ""}`);
  (e as { cause?: unknown }).cause = r;
  throw e;
}
