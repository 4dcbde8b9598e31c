/*
 * kiln_hip.h: the C ABI of libkiln_hip, kiln's GPU library (the `gpu` target).
 *
 * Boring on purpose: one prefix, opaque handles, every call returns a status (or a handle that
 * is NULL on failure), sizes and offsets are 64-bit, error text is copied into a caller's buffer,
 * outputs land in caller-allocated arrays, and no C++ type or exception crosses it. Nothing here
 * needs a pointer helper on the caller's side, so Deno can call every function under a scoped
 * `--allow-ffi=<path of this library>` (STACK.md 1.5): strings and byte ranges are passed as
 * buffers, handles are passed back as they came.
 *
 * The library runs programs described by a *schedule*, the compiled program as data written by
 * kiln's compiler core (docs/internals.md "Schedule"): values with their dtypes, dims and places,
 * nodes in order with their attributes, and the prepare/skip marks. kiln_prog_create lowers every
 * node to a device kernel; a node with no kernel becomes a *host step* that the caller runs (with
 * the reference kernel) between kiln_exec calls. Weights are bound in transactions that stage
 * into fresh device memory and switch only when every tensor is in (kiln_bind_*).
 *
 * Thread safety: different programs may be used from different threads at once. One program is
 * used by one thread at a time (the caller serializes its calls).
 */
#ifndef KILN_HIP_H
#define KILN_HIP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Exported from the shared library (the build hides everything else). */
#if defined(_WIN32)
#define KILN_API __declspec(dllexport)
#else
#define KILN_API __attribute__((visibility("default")))
#endif

/** Bumped whenever a signature or a schedule field changes. */
#define KILN_ABI_VERSION 6

/* Status codes: 0 is success, errors are negative. */
#define KILN_OK 0
#define KILN_E_NO_DEVICE (-1)     /* no GPU, no driver, or a device index out of range */
#define KILN_E_DEVICE (-2)        /* the HIP/CUDA runtime failed (text says which call) */
#define KILN_E_OUT_OF_MEMORY (-3) /* device or pinned memory: text says how much was asked and free */
#define KILN_E_ARGUMENT (-4)      /* a bad index, length or state */
#define KILN_E_SCHEDULE (-5)      /* a malformed schedule */
#define KILN_E_IO (-6)            /* a file could not be opened or read */
#define KILN_E_CHECKSUM (-7)      /* bytes read do not match their recorded SHA-1 */
#define KILN_E_KERNEL (-8)        /* a kernel or vendor BLAS call failed */

typedef struct kiln_ctx kiln_ctx;   /* one device */
typedef struct kiln_prog kiln_prog; /* one program on a device */

/* ---- library and devices -------------------------------------------------------------- */

/** KILN_ABI_VERSION of the library. */
KILN_API int32_t kiln_abi_version(void);

/**
 * The last error of a call that has no program (discovery, kiln_ctx_*, kiln_prog_create), copied
 * into buf as UTF-8 (truncated to cap, not NUL-terminated). Returns the full length.
 */
KILN_API int64_t kiln_last_error(uint8_t* buf, uint64_t cap);

/**
 * JSON about the library and what it finds: {"abi", "platform" ("cuda" | "hip" | "emulator"),
 * "runtimeVersion", "driverVersion", "devices": [{"index", "name", "arch", "memoryBytes",
 * "freeBytes", "multiprocessors"}], "error"}; a machine with no GPU gives "devices": [] and the
 * runtime's reason in "error". Written into buf (up to cap bytes); returns the full length.
 */
KILN_API int64_t kiln_devices_json(uint8_t* buf, uint64_t cap);

/**
 * The ONNX ops that have a device kernel (a JSON array of names), as registered by the kernel
 * families; a node of another op runs on the host. A registered op may still run on the host for
 * some element types or attributes (kiln_prog_report says which nodes and why).
 */
KILN_API int64_t kiln_ops_json(uint8_t* buf, uint64_t cap);

/**
 * Opens device `index`. memoryLimit (bytes, 0 for none) caps the device memory this context's
 * programs may hold, leaving the rest to others. NULL on failure (kiln_last_error).
 */
KILN_API kiln_ctx* kiln_ctx_create(int32_t index, uint64_t memoryLimit);
KILN_API void kiln_ctx_destroy(kiln_ctx* ctx);

/* ---- programs -------------------------------------------------------------------------- */

/** kiln_prog_create flags */
#define KILN_PROG_NO_VENDOR_BLAS 1u /* use kiln's own GEMM kernel even where a vendor BLAS loads */
#define KILN_PROG_NO_GRAPHS 2u      /* launch the run list step by step instead of replaying a captured graph */
#define KILN_PROG_NO_FUSION 4u      /* one kernel per node: no fused elementwise regions */
#define KILN_PROG_TF32 8u           /* GEMMs (MatMul, Gemm, Conv) on TF32 tensor cores where the BLAS has them */
#define KILN_PROG_NO_VENDOR_DNN 16u /* use kiln's own Conv kernels even where a vendor DNN library (cuDNN) loads */
/*
 * 16-bit GEMM weights (at most one of the two): every MatMul and Gemm whose B is computed from
 * weights and literals only reads a float16 (bfloat16) copy of it, converted with round to nearest
 * even in the prepare step (so after every bind, weight-set switch or adapter change), with A
 * rounded to the same format and float32 sums; other GEMMs stay float32, Convs run with TF32 math
 * on the vendor DNN library (float32 on kiln's own). kiln_prog_report says what applies.
 */
#define KILN_PROG_FP16 32u
#define KILN_PROG_BF16 64u

/**
 * Lowers a schedule onto the device: allocates the arenas, buffers and literal arena, uploads the
 * schedule's inline literals, and builds the launch lists. Host literals (kiln_literal_*) and
 * weights (kiln_bind_*) are uploaded afterwards. NULL on failure (kiln_last_error).
 */
KILN_API kiln_prog* kiln_prog_create(kiln_ctx* ctx, const uint8_t* schedule, uint64_t length, uint32_t flags);
KILN_API void kiln_prog_destroy(kiln_prog* prog);

/** The program's last error (as kiln_last_error). */
KILN_API int64_t kiln_prog_error(kiln_prog* prog, uint8_t* buf, uint64_t cap);

/**
 * JSON about the program: {"deviceBytes", "arenaBytes", "literalBytes", "weightBytes",
 * "workspaceBytes", "blas", "kernels", "hostNodes": [schedule node indices], "hostReasons":
 * [why each has no device kernel], "precision" ("float32" | "tf32" | "fp16" | "bf16": the GEMMs'
 * arithmetic as it runs), "precisionWhy" (what was asked for and does not apply, or stays
 * float32), "halfGemms", "floatGemms", "halfCopies", "halfBytes" (KILN_PROG_FP16/BF16: GEMMs on
 * 16-bit weights, GEMMs left float32, the 16-bit copies and their device bytes), "convPrecision"
 * ("tf32", "float32" or "" when not asked or no Conv), ...}. Returns the full length.
 */
KILN_API int64_t kiln_prog_report(kiln_prog* prog, uint8_t* buf, uint64_t cap);

/* ---- literals -------------------------------------------------------------------------- */

/** Uploads host literal `id` from the caller's memory (length must be the literal's bytes). */
KILN_API int32_t kiln_literal_write(kiln_prog* prog, uint32_t id, const uint8_t* data, uint64_t length);

/**
 * Uploads host literal `id` from bytes [offset, offset + length) of a file (path: UTF-8,
 * NUL-terminated), through pinned staging memory. With sha1 (40 hex characters; an empty string
 * for none) the bytes read are checked against it before anything is uploaded.
 */
KILN_API int32_t kiln_literal_read_file(kiln_prog* prog, uint32_t id, const uint8_t* path, uint64_t offset,
                               uint64_t length, const uint8_t* sha1);

/* ---- weights: bind transactions ---------------------------------------------------------- */

/**
 * Starts a transaction. Tensors added to it are staged into fresh device memory; kiln_bind_commit
 * switches the program to them only when every one is in, so that a failure at any point leaves
 * the weights bound before serving. A tensor whose content hash (computed while reading) equals
 * the bound one's is skipped.
 */
KILN_API int32_t kiln_bind_begin(kiln_prog* prog);
/** Stages weight slot `slot` from the caller's memory (hashed and copied during the call). */
KILN_API int32_t kiln_bind_bytes(kiln_prog* prog, uint32_t slot, const uint8_t* data, uint64_t length);
/** Queues weight slot `slot` from a file range (read by kiln_bind_commit). */
KILN_API int32_t kiln_bind_file(kiln_prog* prog, uint32_t slot, const uint8_t* path, uint64_t offset, uint64_t length);
/**
 * Checks the queued file ranges and reads them into staged device buffers (through the loader's
 * pinned ring, hashed on the way), switching nothing: kiln_exec may run on other threads
 * meanwhile and keeps using the bound weights. On error the transaction is over (nothing was
 * switched). Bind calls report their failures through kiln_bind_error, not kiln_prog_error.
 */
KILN_API int32_t kiln_bind_stage(kiln_prog* prog);
/**
 * Stages what kiln_bind_stage did not, then switches to the staged weights (call it between
 * executions). The previous buffers are kept until kiln_bind_release (or kiln_bind_revert,
 * which switches back). Report JSON into buf: {"copied", "skipped", "bytesRead",
 * "bytesUploaded", "readMs", "validateMs", "loadMs", ..., "slots": [changed slot indices]}.
 * Returns the report's full length, or an error status; on error nothing was switched.
 */
KILN_API int64_t kiln_bind_commit(kiln_prog* prog, uint8_t* report, uint64_t cap);
/** The last failure of a kiln_bind_* or kiln_set_add/remove call, written like kiln_last_error. */
KILN_API int64_t kiln_bind_error(kiln_prog* prog, uint8_t* buf, uint64_t cap);

/**
 * Resident weight sets. kiln_set_add ends a bind transaction (kiln_bind_begin, every weight
 * queued, optionally kiln_bind_stage) by keeping its staged weights as set `id` (>= 0) instead of
 * switching to them; a weight equal to the bound one is copied on the device. kiln_set_select
 * makes executions read set `id` (-1: the bound weights) until another is selected (call it
 * between executions, and rerun the prepare list); kiln_set_remove frees a set.
 */
KILN_API int32_t kiln_set_add(kiln_prog* prog, int32_t id);
KILN_API int32_t kiln_set_select(kiln_prog* prog, int32_t id);
KILN_API int32_t kiln_set_remove(kiln_prog* prog, int32_t id);

/**
 * Host-resident weight sets: kiln_hostset_create makes set `id` (>= 0); kiln_hostset_put copies
 * weight slot `slot` into it (pinned on first use: about 0.5 s per GiB, once); inside a bind
 * transaction, kiln_hostset_stage stages every weight from it at the host-to-device rate (those
 * equal to the bound ones skipped), and kiln_bind_commit switches as for any bind.
 */
KILN_API int32_t kiln_hostset_create(kiln_prog* prog, int32_t id);
KILN_API int32_t kiln_hostset_put(kiln_prog* prog, int32_t id, uint32_t slot, const uint8_t* data, uint64_t length);
KILN_API int32_t kiln_hostset_stage(kiln_prog* prog, int32_t id);
KILN_API int32_t kiln_hostset_remove(kiln_prog* prog, int32_t id);
/**
 * Low-rank deltas (LoRA adapters). Inside a bind transaction, weight slot `slot` (float32, two
 * dims [rows, cols]) is set to its base weight plus scale * B * A: B is rows x rank and A is
 * rank x cols, row-major (with KILN_DELTA_TRANSPOSED, the delta is (B * A) transposed: B is
 * cols x rank and A is rank x rows). The base is the weight as bound (kept on the device while a
 * delta applies, so deltas never accumulate); rank 0 (b and a NULL) clears the slot's delta,
 * which restores the base exactly. A delta stays applied over weights bound later, until cleared.
 * The factors are copied during the call; the GEMMs run at kiln_bind_commit. Lengths in bytes.
 */
#define KILN_DELTA_TRANSPOSED 1u
KILN_API int32_t kiln_bind_delta(kiln_prog* prog, uint32_t slot, const float* b, uint64_t bLength, const float* a,
                                 uint64_t aLength, uint32_t rank, float scale, uint32_t flags);
/** Drops a transaction that was not committed. */
KILN_API int32_t kiln_bind_abort(kiln_prog* prog);
/** After a commit: switches back to the weights bound before it. */
KILN_API int32_t kiln_bind_revert(kiln_prog* prog);
/** After a commit: frees the weights bound before it. */
KILN_API int32_t kiln_bind_release(kiln_prog* prog);

/* ---- execution ------------------------------------------------------------------------- */

/** Copies input `index` in (length must be its bytes). */
KILN_API int32_t kiln_input_write(kiln_prog* prog, uint32_t index, const uint8_t* data, uint64_t length);
/** Copies output `index` out into the caller's buffer (length must be its bytes). */
KILN_API int32_t kiln_output_read(kiln_prog* prog, uint32_t index, uint8_t* data, uint64_t length);
/** Copies schedule value `value` out (host steps read their inputs). */
KILN_API int32_t kiln_value_read(kiln_prog* prog, uint32_t value, uint8_t* data, uint64_t length);
/** Copies schedule value `value` in (host steps write their outputs). */
KILN_API int32_t kiln_value_write(kiln_prog* prog, uint32_t value, const uint8_t* data, uint64_t length);

#define KILN_LIST_RUN 0     /* the main module's nodes, If branches included */
#define KILN_LIST_PREPARE 1 /* the prepare nodes chosen by kiln_prepare_select */

/**
 * Chooses the prepare nodes the next KILN_LIST_PREPARE execution runs: those downstream of the
 * weight slots listed in `slots` (count i32 values), or all of them when count < 0. Returns how
 * many it chose, or a negative status.
 */
KILN_API int32_t kiln_prepare_select(kiln_prog* prog, const int32_t* slots, int32_t count);

/**
 * Runs list `list` from step `pc` (0 to start). Returns 0 when the list is done (the device is
 * synchronized), or pc + 1 (> 0) of a host step: run schedule node kiln_host_node(prog, list, pc)
 * on the host, then call again from pc + 1. Negative: an error status (kiln_prog_error).
 */
KILN_API int32_t kiln_exec(kiln_prog* prog, int32_t list, int32_t pc);
/** The schedule node index of host step `pc` of `list`, or a negative status. */
KILN_API int32_t kiln_host_node(kiln_prog* prog, int32_t list, int32_t pc);

/**
 * Profiling: while on, executions of KILN_LIST_RUN record the device time of every step (and
 * replay no graph). kiln_prog_profile writes the last profiled execution as JSON,
 * {"steps":[[node, ms], ...]} in launch order (a fused kernel adds its label: [node, ms, "Fused(Mul+Add)"]),
 * written like kiln_last_error.
 */
KILN_API int32_t kiln_prog_set_profiling(kiln_prog* prog, int32_t on);
KILN_API int64_t kiln_prog_profile(kiln_prog* prog, uint8_t* buf, uint64_t cap);

#ifdef __cplusplus
}
#endif

#endif /* KILN_HIP_H */
