/**
 * The target seam: what a target is to the rest of kiln. A target names its compile pipeline and
 * its literal passes (both run by the core's pass manager over every module; the core takes the
 * target's name), and instantiates an executor for a compiled program. `ref` (the WebAssembly
 * core) and `gpu` (libkiln_hip through Deno FFI) implement it, in a file each beside this one;
 * nothing else in kiln tests a target's name.
 * @module
 */
import type { CoreProgram } from "../core_program.ts";
import type { FileRange } from "../io.ts";
import type { Tensor } from "../tensor.ts";
import type { DeviceOptions } from "../../ffi/device.ts";

/** The targets kiln has. */
export type TargetName = "ref" | "gpu";

/** A literal the host keeps for a compiled program: bytes in memory or a range of a file. */
export interface LiteralSource {
  name: string;
  /** its bytes (read lazily from `file` when the literal came from one) */
  readonly bytes: Uint8Array;
  /** where its bytes are, when they come from a file (a target may read them itself) */
  readonly file?: FileRange & { sha1?: string };
}

/** A weight tensor to bind: bytes in memory or a range of a file. */
export interface BindTensor {
  name: string;
  /** its bytes (read lazily from `file` when it came from one) */
  readonly bytes: Uint8Array;
  readonly file?: FileRange;
  /** where it came from, for messages */
  source: string;
}

/**
 * A low-rank delta for one float32 weight of dims [rows, cols] (a LoRA adapter's, resolved):
 * W = W0 + scale·B·A, with B rows × rank and A rank × cols, row-major; when `transposed`,
 * W = W0 + scale·(B·A)ᵀ, with B cols × rank and A rank × rows.
 */
export interface WeightDelta {
  /** the weight */
  name: string;
  /** B, row-major */
  b: Float32Array;
  /** A, row-major */
  a: Float32Array;
  /** the factors' inner dimension */
  rank: number;
  /** the delta's scale */
  scale: number;
  /** the delta is (B·A)ᵀ */
  transposed: boolean;
}

/** What an executor's bind did. */
export interface BindResult {
  /** tensors copied in */
  copied: number;
  /** weights whose low-rank delta was applied, changed or cleared (adapt, or a bind under an adapter) */
  adapted?: number;
  /** tensors skipped: their content was already bound */
  skipped: number;
  /** bytes copied in */
  bytesCopied: number;
  /** where the time went (targets that read weights themselves: gpu) */
  phases?: BindPhases;
  /** where the time went on ref: file ranges read into the core's staging region, compared, switched */
  staging?: StagingPhases;
}

/** A ref bind's phases (`BindResult.staging`). */
export interface StagingPhases {
  /** reading file ranges into the staging region in the core's memory (no host copy) */
  readMs: number;
  /** comparing staged tensors with the bound ones (the unchanged are skipped) */
  compareMs: number;
  /** copying the changed tensors from the staging region into their slots, once all were read */
  switchMs: number;
  /** bytes read from files */
  bytesRead: number;
  /**
   * packing packed-only weights from the staged chunks, as they are read (docs/internals.md
   * "Packed-only weights"; not part of readMs)
   */
  packMs?: number;
}

/** Where a bind spent its time, milliseconds. */
export interface BindPhases {
  /** checking every file range before anything is read */
  validateMs: number;
  /** reading, hashing and uploading, overlapped: from the first read to the last byte on the device */
  loadMs: number;
  /** time in file reads, summed over the reader threads */
  readMs: number;
  /** hashing what was read (each piece while in cache) and starting its copies, summed over the threads */
  hashMs?: number;
  /** waiting for copies still in flight after the last read (the pipeline's tail) */
  uploadTailMs: number;
  /** rerunning the weight-only nodes (layouts, derived weights) downstream of what changed */
  prepareMs: number;
  /** reader threads */
  threads: number;
  /**
   * how the files were read: "ring" (pread into the pinned ring, the default) or "mmap"
   * (KILN_LOAD_MODE=mmap: the files mapped and registered with the device, copied from there)
   */
  loadMode?: "ring" | "mmap";
  /** the mmap mode: mapping and registering the files (part of loadMs), ms */
  registerMs?: number;
}

/** A node that runs on the host because the target has no kernel for it. */
export interface HostNode {
  /** the ONNX node name */
  name: string;
  /** its op, or the fused kernel it heads ("Fused(Mul+Tanh+Add)") */
  op: string;
  /** why the target runs it on the host */
  reason: string;
}

/** Where and how a program runs. */
export interface TargetReport {
  /** the device, e.g. "NVIDIA H200 (sm_90)"; "WebAssembly" on ref */
  device: string;
  /** nodes that fell back to the reference kernels (copied to and from the device) */
  hostNodes: HostNode[];
  /** device memory the program holds, bytes (0 on ref) */
  deviceBytes: number;
  /** the GEMM library, where there is one */
  blas?: string;
  /** the convolution library (gpu), where there is one */
  dnn?: DnnReport;
  /** how evals launch (gpu): as a replayed graph, or kernel by kernel and why */
  graphs?: GraphReport;
  /** fusion (gpu) */
  fusion?: FusionReport;
  /** the GEMMs' arithmetic (gpu): "float32", or "tf32" / "fp16" / "bf16" where asked for and applied */
  precision?: PrecisionReport;
}

/** The gpu target's arithmetic (GpuOptions.precision), as it runs. */
export interface PrecisionReport {
  /**
   * the GEMMs' arithmetic: "float32" (strict), "tf32" (TF32 tensor cores), "fp16" / "bf16"
   * (MatMul and Gemm with weight-only B read 16-bit weights, A rounded per GEMM, float32 sums)
   */
  mode: "float32" | "tf32" | "fp16" | "bf16";
  /**
   * what was asked for and does not apply, and (fp16/bf16) what runs in another precision: GEMMs
   * whose B is computed in each eval (float32), Convs (TF32 on cuDNN, float32 on kiln's kernels)
   */
  why?: string;
  /** fp16/bf16: MatMul/Gemm nodes that read a 16-bit copy of their weight-only B */
  gemms16?: number;
  /** fp16/bf16: MatMul/Gemm nodes left float32 (their B is computed in each eval) */
  gemms32?: number;
  /** fp16/bf16: the Convs' arithmetic, when the program has any */
  convs?: "tf32" | "float32";
  /** fp16/bf16: device bytes of the 16-bit weight copies (kept beside the float32 weights) */
  bytes16?: number;
}

/** Where the gpu target's convolutions run (GpuOptions.vendorDnn). */
export interface DnnReport {
  /** e.g. "cudnn 9.10.2 (libcudnn.so.9)", or "kiln (why none loaded)" */
  library: string;
  /** kernels (Convs) that run on it */
  kernels: number;
  /** kernels it refused: they run on kiln's own Conv kernels */
  misses: number;
  /** why the first of them was refused */
  missWhy?: string;
  /**
   * of `kernels`, those planned through cuDNN's graph API (an engine its heuristics rank; the
   * default in TF32), the others through its legacy convolution API
   */
  graphApi: number;
  /**
   * of `graphApi`, those that run channels-last (NHWC activations, KRSC filters laid out in the
   * prepare step)
   */
  channelsLast?: number;
  /** why no Conv runs channels-last, where that was tried (TF32 programs) */
  channelsLastWhy?: string;
}

/** What the gpu target fused (GpuOptions.fusion). */
export interface FusionReport {
  /** elementwise nodes that run inside fused kernels */
  nodes: number;
  /** the fused kernels they form */
  kernels: number;
  /**
   * Transposes folded into the MatMul beside them (the GEMM reads or writes through strides), also
   * through reshapes and scalings between them
   */
  transposes: number;
  /** Mul or Div of a MatMul operand by a scalar constant, applied as the GEMM's alpha */
  scalings: number;
  /** Relus applied by the Conv before them (its bias pass rectifies and writes the Relu's output) */
  epilogues: number;
  /**
   * residual block ends, Relu(Add(Conv(x), z)), run as one call of the DNN library (bias, sum and
   * Relu inside the convolution's kernel)
   */
  residuals: number;
  /** why the first residual block end found stayed apart (absent when none did) */
  residualMissWhy?: string;
}

/** Whether a program's evals replay a captured graph (gpu). */
export interface GraphReport {
  /** evals replay the run list as one captured HIP/CUDA graph */
  enabled: boolean;
  /** why they launch kernel by kernel instead (when not enabled) */
  why?: string;
  /** captures so far: one per set of device addresses evals ran with (a swap adds one) */
  captures: number;
  /** evals that replayed a graph */
  replays: number;
}

/** The time of one node in a profiled eval (gpu: device time; ref: wall time on the main thread). */
export interface NodeTime {
  /** the ONNX node name */
  name: string;
  /** its op, or the fused kernel it heads ("Fused(Mul+Tanh+Add)") */
  op: string;
  /** milliseconds */
  ms: number;
}

/** Runs one compiled program on one target. */
export interface Executor {
  /**
   * Binds weight tensors (validated by the caller against the weight signature): staged, then
   * switched all at once; on failure the weights bound before keep serving. Tensors whose content
   * is already bound are skipped.
   */
  bind(tensors: readonly BindTensor[]): Promise<BindResult>;
  /**
   * Reads and uploads `tensors` into staged buffers without switching anything, so that evals
   * can go on meanwhile (targets that can: gpu); the next `bind` of the same array commits them.
   */
  stage?(tensors: readonly BindTensor[]): Promise<void>;
  /** Drops what `stage` left staged for `tensors` (an aborted bind): the bound weights stay. */
  discard?(tensors: readonly BindTensor[]): void;
  /**
   * Applies low-rank deltas over the kept base weights, all at once (between evals): `deltas`
   * set those weights' deltas, `clear` returns those weights to their base exactly. A delta stays
   * applied over weights bound later (they become its base) until cleared. On failure nothing
   * changes.
   */
  adapt(deltas: readonly WeightDelta[], clear: readonly string[]): Promise<BindResult>;
  /** Whether weight `name` has been bound. */
  isBound(name: string): boolean;
  /** Runs the weight-only nodes that are out of date (after finalize or a bind). */
  prepare(): Promise<void>;
  /** One evaluation (inputs validated by the caller); only `outputs` are read back when given. */
  run(inputs: Record<string, Tensor>, outputs?: ReadonlySet<string>): Promise<Record<string, Tensor>>;
  /**
   * Resident weight sets (targets that can: gpu): `addSet` stages a whole set beside evals and
   * returns a commit to run between evals, which keeps it under `name`; `selectSet` makes evals
   * read it (null: the bound weights) and reruns the prepare step; `removeSet` frees it.
   */
  addSet?(name: string, tensors: readonly BindTensor[]): Promise<() => void>;
  selectSet?(name: string | null): Promise<void>;
  removeSet?(name: string): void;
  /** The resident weight sets' names. */
  setNames?(): string[];
  /**
   * Host-resident weight sets (gpu): `addHostSet` copies a whole set into pinned host memory;
   * `stageHostSet` stages it for the next `bind` of the tensors it returns (a bind at the
   * host-to-device rate); `removeHostSet` frees it.
   */
  addHostSet?(name: string, tensors: readonly BindTensor[]): Promise<void>;
  stageHostSet?(name: string): Promise<readonly BindTensor[]>;
  removeHostSet?(name: string): void;
  hostSetNames?(): string[];
  /** One evaluation timing each node, in launch order (gpu: device time; ref: wall time per node). */
  profile?(inputs: Record<string, Tensor>): Promise<NodeTime[]>;
  /** Where and how it runs. */
  report(): TargetReport;
  /** Prepare nodes the last prepare ran, and how long it took (tests, benchmarks). */
  readonly lastPrepareNodes: number;
  readonly lastPrepareMs: number;
  dispose(): void;
}

/** Options of the gpu target (ignored by ref). */
export interface GpuOptions extends DeviceOptions {
  /** the libkiln_hip file to use (default: KILN_HIP_LIBRARY, then the build outputs) */
  library?: string;
}

/** A target. */
export interface Target {
  readonly name: TargetName;
  /** Its compile pipeline, in order (wasm/passes/targets.ts `compilePasses`). */
  readonly passes: readonly string[];
  /** The passes that lower baked weights for it (`literalPasses`). */
  readonly literalPasses: readonly string[];
  /** True when it reads weight and literal files itself (file ranges stay unread in JavaScript). */
  readonly readsFiles: boolean;
  /**
   * True when it runs dynamic programs (core/dynamic.ts): specializations compiled into the
   * compiled program's own instance, sharing its weights.
   */
  readonly specializes?: boolean;
  /**
   * True when its executor's bind reads a weight's file range itself (ref: straight into the
   * core's memory), so that a WeightSet for its programs leaves file tensors unread.
   */
  readonly bindsFileRanges?: boolean;
  /**
   * True when its kernels run in the WebAssembly core, so that the `threads` option applies
   * (ref); false where they run elsewhere (gpu: its host-run nodes stay on one thread).
   */
  readonly threaded: boolean;
  /** An executor for a compiled program whose host literals are `literals` (by host literal id). */
  instantiate(core: CoreProgram, literals: readonly LiteralSource[], options: GpuOptions): Executor;
}
