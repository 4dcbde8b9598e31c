/**
 * `kiln externalize`: moves a model's initializers into one external-data file beside the new
 * model, as onnx's `convert_model_to_external_data` does (all tensors to one file, those of at
 * least `threshold` bytes), so that they can be deferred (`deferExternalWeights`) and swapped.
 * Initializers of subgraphs (If and Loop bodies) move too; tensors already in external data are
 * read (under the usual containment rules) and rewritten into the new file. Both files are
 * written atomically; the source is never modified.
 * @module
 */
import { KilnError } from "../errors.ts";
import { readRegular, writeAll, writeAtomic } from "../fs.ts";
import { decodeModel } from "./import.ts";
import { ExternalDataReader, parseExternalEntries, resolveExternalRef } from "./external_data.ts";
import { onnx } from "./onnx_pb.js";
import { isExternal, tensorDims, tensorProtoData } from "./tensor_proto.ts";
import { dtypeFromOnnx, dtypeSize, elementCount, isSupportedOnnxType } from "../tensor.ts";
import { paths } from "../path.ts";

/** Options of {@linkcode externalizeOnnx}. */
export interface ExternalizeOptions {
  /** tensors of at least this many bytes move (default 1024, onnx's size_threshold) */
  threshold?: number;
  /** the data file's name beside the new model (default: its name + ".data") */
  location?: string;
  /** each tensor starts at a multiple of this many bytes (default 64) */
  align?: number;
}

/** What {@linkcode externalizeOnnx} did. */
export interface ExternalizeReport {
  /** the new model */
  model: string;
  /** its data file */
  data: string;
  /** tensors now in the data file */
  tensors: number;
  /** their bytes */
  bytes: number;
  /** tensors left inline (under the threshold, or strings) */
  inline: number;
}

function _dirOf(path: string): string {
  return paths.dirname(path);
}

function _graphs(g: onnx.IGraphProto | null | undefined, out: onnx.IGraphProto[]): void {
  if (!g) return;
  out.push(g);
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      _graphs(a.g, out);
      for (const sg of a.graphs ?? []) _graphs(sg, out);
    }
  }
}

/** Writes `dst` (and its data file) from `src` with the initializers moved to external data. */
export async function externalizeOnnx(
  src: string,
  dst: string,
  options: ExternalizeOptions = {},
): Promise<ExternalizeReport> {
  const threshold = options.threshold ?? 1024;
  const align = options.align ?? 64;
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new KilnError("argument", `Cannot externalize: threshold ${threshold} is not a byte count`);
  }
  if (!Number.isSafeInteger(align) || align < 1) {
    throw new KilnError("argument", `Cannot externalize: alignment ${align} is not a positive integer`);
  }
  const base = paths.basename(dst);
  const location = options.location ?? `${base}.data`;
  if (
    !location || location.includes("/") || location.includes("\\") || location === "." || location === ".."
  ) {
    throw new KilnError(
      "argument",
      `Cannot externalize: the data file '${location}' must be a plain file name`,
    );
  }
  const model = decodeModel(await readRegular(src, "ONNX model"), src);
  const graphs: onnx.IGraphProto[] = [];
  _graphs(model.graph, graphs);
  const reader = new ExternalDataReader(_dirOf(src));
  const parts: { offset: number; bytes: Uint8Array }[] = [];
  let size = 0, moved = 0, movedBytes = 0, inline = 0;
  try {
    for (const g of graphs) {
      for (const t of g.initializer ?? []) {
        const name = t.name ?? "";
        const code = t.data_type ?? 0;
        if (!isSupportedOnnxType(code) || code === 8 /* STRING */) {
          inline++;
          continue;
        }
        const dims = tensorDims(t, `Initializer '${name}'`);
        const nbytes = elementCount(dims) * dtypeSize(dtypeFromOnnx(code));
        if (nbytes < threshold) {
          if (isExternal(t)) {
            throw new KilnError(
              "argument",
              `Cannot externalize '${src}': initializer '${name}' is in external data and under the threshold; lower it`,
            );
          }
          inline++;
          continue;
        }
        const bytes = isExternal(t)
          ? await reader.read(
            name,
            resolveExternalRef(name, parseExternalEntries(name, t.external_data ?? []), nbytes),
          )
          : tensorProtoData(t, `Initializer '${name}'`).bytes;
        const offset = Math.ceil(size / align) * align;
        parts.push({ offset, bytes });
        size = offset + bytes.byteLength;
        // the tensor's data moves: no inline field may keep a copy
        t.raw_data = new Uint8Array(0);
        t.float_data = [];
        t.int32_data = [];
        t.int64_data = [];
        t.double_data = [];
        t.uint64_data = [];
        t.data_location = onnx.TensorProto.DataLocation.EXTERNAL;
        t.external_data = [
          { key: "location", value: location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(bytes.byteLength) },
        ];
        moved++;
        movedBytes += bytes.byteLength;
      }
    }
  } finally {
    reader.close();
  }
  const dataPath = `${_dirOf(dst)}/${location}`;
  await writeAtomic(dataPath, async (f) => {
    let at = 0;
    for (const p of parts) {
      if (p.offset > at) await writeAll(f, new Uint8Array(p.offset - at));
      await writeAll(f, p.bytes);
      at = p.offset + p.bytes.byteLength;
    }
  }, "External data file");
  const encoded = onnx.ModelProto.encode(model as onnx.ModelProto).finish();
  await writeAtomic(dst, (f) => writeAll(f, encoded), "ONNX model");
  return { model: dst, data: dataPath, tensors: moved, bytes: movedBytes, inline };
}
