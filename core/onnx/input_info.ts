/**
 * Graph inputs -> `ValueInfo`: the declared element type and dims, symbolic dims filled from
 * `inputDims`, and the checks of `inputDims` and `constantInputs` against the model, with
 * messages that say which `--dims` to give.
 * @module
 */
import { describe, dtypeFromOnnx, elementCount, onnxCode, type Tensor } from "../tensor.ts";
import { importError, inputError } from "./errors.ts";
import type { ValueInfo } from "./import_types.ts";
import type { onnx } from "./onnx_pb.js";
import { checkElementType, isValidDim, MAX_DIM } from "./tensor_proto.ts";

/** TypeProto value kinds other than tensors, for messages. */
const _TYPE_KINDS: Record<string, string> = {
  sequence_type: "a sequence",
  optional_type: "an optional",
  map_type: "a map",
  sparse_tensor_type: "a sparse tensor",
};

/** A graph input's dtype and static dims; `given` fills symbolic or missing dims. */
export function inputInfo(
  v: onnx.IValueInfoProto,
  given: number[] | undefined,
  where = "Graph input",
): ValueInfo {
  const name = v.name ?? "";
  const tt = v.type?.tensor_type;
  if (!v.type || !tt) {
    const field = v.type ? Object.keys(v.type).find((k) => k.endsWith("_type")) : undefined;
    const kind = field ? `is ${_TYPE_KINDS[field] ?? field}` : "has no type";
    throw importError(
      `${where} '${name}' ${kind}; kiln supports only tensors with a declared element type`,
    );
  }
  const code = tt.elem_type ?? 0;
  checkElementType(code, `${where} '${name}'`);
  const dtype = dtypeFromOnnx(code);
  const declared = tt.shape ? (tt.shape.dim ?? []) : undefined;
  if (given) {
    // checked here, before anything narrows a dim to 32 bits
    if (!Array.isArray(given)) {
      throw inputError(`inputDims for '${name}' must be an array of dims, got ${given}`);
    }
    const bad = given.findIndex((d) => !isValidDim(d));
    if (bad >= 0) {
      throw inputError(
        `inputDims for '${name}' must be non-negative integers up to ${MAX_DIM} (2^31 - 1), got [${
          given.join(",")
        }] (dim ${bad} is ${given[bad]})`,
      );
    }
    if (declared && declared.length !== given.length) {
      throw inputError(
        `inputDims for '${name}' has rank ${given.length}, the model declares rank ${declared.length} (${
          _dimsText(declared)
        })`,
      );
    }
  }
  if (!declared && !given) {
    throw inputError(
      `${where} '${name}' has no shape; give its dims in options.inputDims` +
        (where === "Graph input" ? ` (command line: --dims ${name}=1x3x224x224, say)` : ""),
    );
  }
  const rank = declared ? declared.length : given!.length;
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) {
    const d = declared?.[i];
    const fixed = d?.dim_value ?? undefined;
    // a dim_value past 2^53 decodes as a bigint; one past 2^31 - 1 does not fit the core's dims
    if (typeof fixed === "bigint" || (typeof fixed === "number" && !isValidDim(fixed))) {
      throw importError(
        `${where} '${name}' dim ${i} is invalid (${fixed}): dims must be integers from 0 to ${MAX_DIM}`,
      );
    }
    if (typeof fixed === "number") {
      if (given && given[i] !== fixed) {
        throw inputError(
          `inputDims for '${name}' gives dim ${i} = ${given[i]}, but the model fixes it to ${fixed} (${
            _dimsText(declared!)
          })`,
        );
      }
      dims.push(fixed);
    } else if (given) {
      dims.push(given[i]);
    } else {
      const sym = d?.dim_param ? `'${d.dim_param}'` : "unknown";
      throw inputError(
        `${where} '${name}' dim ${i} is ${sym} (${_dimsText(declared!)}); give it in options.inputDims` +
          (where === "Graph input" ? ` (command line: --dims ${name}=${_dimsExample(declared!)})` : ""),
      );
    }
  }
  return { name, dtype, dims };
}

/** Checks a `constantInputs` tensor against the graph input it binds (element type, dims, size). */
export function checkConstantInput(v: onnx.IValueInfoProto, t: Tensor): void {
  const name = v.name ?? "";
  const tt = v.type?.tensor_type;
  if (!Array.isArray(t.dims) || !t.dims.every(isValidDim)) {
    throw inputError(
      `constantInputs '${name}' has dims [${t.dims}]; dims must be integers from 0 to ${MAX_DIM} (2^31 - 1)`,
    );
  }
  if (tt?.elem_type && tt.elem_type !== onnxCode(t.dtype)) {
    const want = dtypeFromOnnx(tt.elem_type);
    throw inputError(
      `constantInputs '${name}' is ${describe(t.dtype, t.dims)}, the model declares ${want}`,
    );
  }
  const declared = tt?.shape?.dim;
  if (declared) {
    const bad = declared.length !== t.dims.length ||
      declared.some((d, i) => d.dim_value != null && d.dim_value !== t.dims[i]);
    if (bad) {
      throw inputError(
        `constantInputs '${name}' has dims [${t.dims.join(",")}], the model declares ${_dimsText(declared)}`,
      );
    }
  }
  if (t.data.length !== elementCount(t.dims)) {
    throw inputError(
      `constantInputs '${name}' has ${t.data.length} elements, dims [${t.dims.join(",")}] need ${
        elementCount(t.dims)
      }`,
    );
  }
}

/** The declared dims as a `--dims` value, symbolic and unknown dims as `N` (e.g. `Nx3x224x224`). */
function _dimsExample(dims: onnx.TensorShapeProto.IDimension[]): string {
  return dims.map((d) => d.dim_value != null && !d.dim_param ? String(d.dim_value) : "N").join("x");
}

function _dimsText(dims: onnx.TensorShapeProto.IDimension[]): string {
  return `[${
    dims.map((d) => d.dim_param ? d.dim_param : d.dim_value != null ? String(d.dim_value) : "?").join(",")
  }]`;
}
