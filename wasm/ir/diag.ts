// Diagnostics: expected failures are recorded here and reported by status code, never by
// abort (AssemblyScript has no try/catch and an abort damages the instance). The host
// reads the list after a call returns a non-zero status and turns it into a KilnError.

export const E_OK: i32 = 0;
/** Shape inference failed: incompatible shapes, bad rank, bad axis. */
export const E_SHAPE: i32 = 1;
/** No operator of that name (or not at that opset). */
export const E_UNSUPPORTED_OP: i32 = 2;
/** An attribute is missing, of the wrong kind, or out of range. */
export const E_ATTRIBUTE: i32 = 3;
/** The graph is malformed: unknown value, cycle, bad encoding. */
export const E_GRAPH: i32 = 4;
/** An input that decides an output shape is not a compile-time constant. */
export const E_NEEDS_CONSTANT: i32 = 5;
/** A kernel failed at run time (index out of range, bad input). */
export const E_RUNTIME: i32 = 6;
/** An element type that the op does not support. */
export const E_DTYPE: i32 = 7;
/** IR validation after a pass failed: a bug in that pass. */
export const E_VALIDATE: i32 = 8;
/** A serialized program is corrupt, truncated or of another version. */
export const E_FORMAT: i32 = 9;
/** Out of memory (the 4 GiB wasm32 limit). */
export const E_MEMORY: i32 = 10;

export class Diagnostic {
  code: i32;
  /** ONNX node name (or value name), "" when none. */
  node: string;
  /** op name, "" when none. */
  op: string;
  message: string;
  /** input shapes, e.g. "float32[2,3], float32[4]" */
  shapes: string;

  constructor(code: i32, node: string, op: string, message: string, shapes: string) {
    this.code = code;
    this.node = node;
    this.op = op;
    this.message = message;
    this.shapes = shapes;
  }
}

export const diagnostics = new Array<Diagnostic>();

/** Records a diagnostic and returns its code (so callers can `return report(...)`). */
export function report(code: i32, node: string, op: string, message: string, shapes: string = ""): i32 {
  diagnostics.push(new Diagnostic(code, node, op, message, shapes));
  return code;
}

export function clearDiagnostics(): void {
  diagnostics.length = 0;
}

function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += "\\\"";
    else if (c == 92) out += "\\\\";
    else if (c == 10) out += "\\n";
    else if (c < 32) out += " ";
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** The diagnostics as a JSON array, read by the host. */
export function diagnosticsJson(): string {
  let s = "[";
  for (let i = 0; i < diagnostics.length; i++) {
    const d = diagnostics[i];
    if (i > 0) s += ",";
    s += "{\"code\":" + d.code.toString() + ",\"node\":" + jsonString(d.node) + ",\"op\":" +
      jsonString(d.op) + ",\"message\":" + jsonString(d.message) + ",\"shapes\":" +
      jsonString(d.shapes) + "}";
  }
  return s + "]";
}

export { jsonString };
