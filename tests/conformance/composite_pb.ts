/**
 * The backend tests' sequence and optional values: `SequenceProto` and `OptionalProto` files
 * (input_N.pb / output_N.pb of a sequence or optional value), read into tensors. kiln's generated
 * ONNX module has no such messages; their few fields are read here from the wire format.
 * @module
 */
import { readTensorProto } from "../../core/onnx/import.ts";
import type { Tensor } from "../../core/tensor.ts";

/** A test value: a tensor, a sequence of tensors, or an absent optional (null). */
export type TestValue = Tensor | Tensor[] | null;

/** The length-delimited fields of a message: field number -> list of byte ranges. */
function _fields(b: Uint8Array): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (p >= b.length) throw new Error("truncated protobuf");
      const x = b[p++];
      v += (x & 0x7f) * 2 ** shift;
      if (!(x & 0x80)) return v;
      shift += 7;
    }
  };
  while (p < b.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const n = varint();
      if (p + n > b.length) throw new Error("truncated protobuf");
      const list = out.get(field) ?? [];
      list.push(b.subarray(p, p + n));
      out.set(field, list);
      p += n;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

/** A SequenceProto of tensors. */
export function readSequenceProto(bytes: Uint8Array): Tensor[] {
  const f = _fields(bytes);
  if (f.has(5) || f.has(6) || f.has(7)) throw new Error("sequence of non-tensors");
  return (f.get(3) ?? []).map((t) => readTensorProto(t));
}

/** An OptionalProto of a tensor or a sequence of tensors; null when absent. */
export function readOptionalProto(bytes: Uint8Array): Tensor | Tensor[] | null {
  const f = _fields(bytes);
  const t = f.get(3);
  if (t?.length) return readTensorProto(t[0]);
  const s = f.get(5);
  if (s?.length) return readSequenceProto(s[0]);
  return null;
}
