// The op registry: every op kiln knows, by ONNX name. Each family file registers its ops.
import { Op } from "./op";

const ops = new Map<string, Op>();

export function registerOp(op: Op): void {
  ops.set(op.name, op);
}

export function findOp(name: string): Op | null {
  return ops.has(name) ? ops.get(name) : null;
}

export function opNames(): Array<string> {
  return ops.keys();
}
