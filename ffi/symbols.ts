/**
 * The symbol table of libkiln_hip (hip/include/kiln_hip.h), one `as const` object: the library
 * type derives from it. Strings and byte ranges cross as "buffer" (never a pointer helper), so
 * every symbol works under a scoped `--allow-ffi=<library path>`. Long calls (file reads,
 * executions) are declared a second time as nonblocking: they run on Deno's blocking pool and
 * return a Promise.
 * @module
 */

/** The ABI version these bindings were written for (KILN_ABI_VERSION). */
export const KILN_ABI_VERSION = 6;

export const SYMBOLS = {
  kiln_abi_version: { parameters: [], result: "i32" },
  kiln_last_error: { parameters: ["buffer", "u64"], result: "i64" },
  kiln_devices_json: { parameters: ["buffer", "u64"], result: "i64" },
  kiln_ops_json: { parameters: ["buffer", "u64"], result: "i64" },
  kiln_ctx_create: { parameters: ["i32", "u64"], result: "pointer" },
  kiln_ctx_destroy: { parameters: ["pointer"], result: "void" },
  kiln_prog_create: { parameters: ["pointer", "buffer", "u64", "u32"], result: "pointer" },
  kiln_prog_destroy: { parameters: ["pointer"], result: "void" },
  kiln_prog_error: { parameters: ["pointer", "buffer", "u64"], result: "i64" },
  kiln_prog_report: { parameters: ["pointer", "buffer", "u64"], result: "i64" },
  kiln_literal_write: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_literal_read_file: {
    parameters: ["pointer", "u32", "buffer", "u64", "u64", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  kiln_literal_read_file_sync: {
    name: "kiln_literal_read_file",
    parameters: ["pointer", "u32", "buffer", "u64", "u64", "buffer"],
    result: "i32",
  },
  kiln_bind_begin: { parameters: ["pointer"], result: "i32" },
  kiln_bind_bytes: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_bind_file: { parameters: ["pointer", "u32", "buffer", "u64", "u64"], result: "i32" },
  kiln_bind_stage: { parameters: ["pointer"], result: "i32", nonblocking: true },
  kiln_bind_commit: { parameters: ["pointer", "buffer", "u64"], result: "i64", nonblocking: true },
  kiln_bind_error: { parameters: ["pointer", "buffer", "u64"], result: "i64" },
  kiln_set_add: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_set_select: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_set_remove: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_hostset_create: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_hostset_put: { parameters: ["pointer", "i32", "u32", "buffer", "u64"], result: "i32" },
  kiln_hostset_stage: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  kiln_hostset_remove: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_bind_delta: {
    parameters: ["pointer", "u32", "buffer", "u64", "buffer", "u64", "u32", "f32", "u32"],
    result: "i32",
  },
  kiln_bind_abort: { parameters: ["pointer"], result: "i32" },
  kiln_bind_revert: { parameters: ["pointer"], result: "i32" },
  kiln_bind_release: { parameters: ["pointer"], result: "i32" },
  kiln_input_write: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_output_read: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_value_read: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_value_write: { parameters: ["pointer", "u32", "buffer", "u64"], result: "i32" },
  kiln_prepare_select: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  kiln_exec: { parameters: ["pointer", "i32", "i32"], result: "i32", nonblocking: true },
  kiln_host_node: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  kiln_prog_set_profiling: { parameters: ["pointer", "i32"], result: "i32" },
  kiln_prog_profile: { parameters: ["pointer", "buffer", "u64"], result: "i64" },
} as const;

/** @internal The opened library's functions (Deno FFI). */
export type KilnHipSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Status codes (kiln_hip.h). */
export const STATUS = {
  OK: 0,
  NO_DEVICE: -1,
  DEVICE: -2,
  OUT_OF_MEMORY: -3,
  ARGUMENT: -4,
  SCHEDULE: -5,
  IO: -6,
  CHECKSUM: -7,
  KERNEL: -8,
} as const;

/** kiln_prog_create flags. */
export const PROG_NO_VENDOR_BLAS = 1;
export const PROG_NO_GRAPHS = 2;
export const PROG_NO_FUSION = 4;
export const PROG_TF32 = 8;
/** kiln_prog_create flag: kiln's own Conv kernels even where cuDNN loads. */
export const PROG_NO_VENDOR_DNN = 16;
/** kiln_prog_create flags: GEMMs on float16 / bfloat16 copies of their weight-only B operands. */
export const PROG_FP16 = 32;
export const PROG_BF16 = 64;
/** kiln_exec lists. */
export const LIST_RUN = 0;
export const LIST_PREPARE = 1;
