// Lowering: each op family (kernels/*.hip) registers, by ONNX op name, a function that turns a
// schedule node into a Kernel with everything resolved (dims, strides, dtypes, attribute values),
// or explains why it cannot (an element type or attribute combination without a device kernel):
// the node then runs on the host, with the reference kernel, and reports say which and why.
// A Kernel's run() only launches: it reads its buffers' device addresses from the Exec.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "schedule.h"

namespace kiln {

class Blas;
class Dnn;

/**
 * The 16-bit formats of GEMM weights (GpuOptions.precision "fp16" / "bf16"): IEEE binary16 or
 * bfloat16, stored as their bits, converted from float32 with round-to-nearest-even.
 */
enum HalfFormat : uint8_t { H_NONE = 0, H_FP16 = 1, H_BF16 = 2 };

/** What a kernel sees when it runs. */
struct Exec {
  hipStream_t stream = nullptr;
  /** device address of every schedule value (aliases resolved, weights as bound now) */
  const std::vector<char*>* ptrs = nullptr;
  /** scratch memory of kernelWorkspace bytes (the largest any kernel asked for) */
  char* workspace = nullptr;
  /** the vendor BLAS, or null (then kiln's own GEMM kernel runs) */
  Blas* blas = nullptr;
  /** the vendor DNN library the kernels were attached to (Kernel::attachDnn), or null */
  Dnn* dnn = nullptr;
  Error* err = nullptr;
  /**
   * A device word, zero before each execution: a kernel that meets bad data it cannot report
   * otherwise (an index out of range) stores its Kernel::node + 1 there; the executor then fails
   * with that kernel's `badData` message.
   */
  int32_t* status = nullptr;

  char* ptr(int32_t value) const { return value < 0 ? nullptr : (*ptrs)[static_cast<size_t>(value)]; }
  template <typename T>
  T* at(int32_t value) const {
    return reinterpret_cast<T*>(ptr(value));
  }
};

struct Kernel {
  virtual ~Kernel() {}
  /** Launches on x.stream; false with x.err set on failure. */
  virtual bool run(Exec& x) = 0;
  /** Scratch bytes the kernel needs in x.workspace. */
  int64_t workspace = 0;
  /** It calls kiln_gemm: the program then opens the vendor BLAS (when one loads). */
  bool blas = false;
  /**
   * It can run on the vendor DNN library instead of kiln's own kernels: the program opens the
   * library (when one loads) and calls attachDnn once, after lowering and fusion.
   */
  bool dnn = false;
  /**
   * Plans the kernel's work on `d` (tf32: tensor-core math allowed) and from then on runs it
   * there, setting `workspace` to what that needs; false with `why` keeps kiln's own kernels.
   */
  virtual bool attachDnn(Dnn& d, bool tf32, std::string& why) {
    (void)d;
    (void)tf32;
    why = "no vendor DNN path";
    return false;
  }
  /** Runs on an engine of the DNN library's graph API (for the program's report). */
  virtual bool dnnGraph() const { return false; }
  /**
   * Channels-last regions (program.cpp's planChannelsLast): how the kernel takes NHWC data.
   * L_CONV: a graph-API convolution reading x (its node's input 0) and writing y in either layout;
   * L_POOL: a pool reading and writing NHWC when switched; L_GLOBAL_POOL: a global pool reading
   * NHWC (its output, N x C x 1 x 1, is the same in both). Elementwise kernels (`elementwise`) take
   * any layout when every input has the output's dims.
   */
  enum Layout { L_NONE = 0, L_CONV = 1, L_POOL = 2, L_GLOBAL_POOL = 3 };
  virtual int layoutKind() const { return L_NONE; }
  /** It indexes every operand alike (unary, binary and variadic elementwise kernels, fused runs of them). */
  bool elementwise = false;
  /** The value a layout-aware kernel writes (a Conv with a Relu folded in writes the Relu's output). */
  virtual int32_t layoutOutput() const { return -1; }
  /**
   * Switches the kernel to channels-last: x read NHWC when xIn, y written NHWC when yOut;
   * false with `why` leaves it as it was.
   */
  virtual bool setChannelsLast(Dnn* d, bool tf32, bool xIn, bool yOut, std::string& why) {
    (void)d;
    (void)tf32;
    (void)xIn;
    (void)yOut;
    why = "no channels-last form";
    return false;
  }
  /**
   * A kernel that lays out derived constants once the weights it reads are bound (a channels-last
   * Conv's KRSC filter): run in the prepare step; null when there is none. `reads` is the value it
   * reads, `bytes` the device memory it writes (placed by the program: see place).
   */
  virtual std::unique_ptr<Kernel> relayout(int32_t& reads, uint64_t& bytes) {
    reads = -1;
    bytes = 0;
    return nullptr;
  }
  /** A relayout kernel's output memory, given once the program's block is allocated. */
  virtual void place(char* p) { (void)p; }
  /** Its schedule node (set by the program after lowering). */
  int32_t node = -1;
  /** What a nonzero status from this kernel means (see Exec::status). */
  std::string badData = "an index is out of range";
  /**
   * Constant bytes the kernel reads on the device (lookup tables built at lowering): the program
   * uploads them once, when it is created, and sets `tableDevice` to their device address.
   */
  std::vector<uint8_t> table;
  const char* tableDevice = nullptr;
  /** What profiles call it when it is not its node's op (a fused kernel: "Fused(Mul+Tanh+...)"). */
  std::string label;
  /** A MatMul or Gemm: the schedule value of its B operand, which precision fp16/bf16 may keep in 16 bits; else -1. */
  virtual int32_t gemmB() const { return -1; }
  /** Bytes of its A operand in 16 bits: the vendor BLAS path rounds A into the workspace before each call. */
  virtual int64_t gemmAHalfBytes() const { return 0; }
  /**
   * Set by the program (precision fp16/bf16, B weight-only): the GEMM reads B from `halfB`, a
   * 16-bit copy of gemmB()'s value in the same layout (made in the prepare step), and A rounded
   * to the same format, summing in float32 (kiln_gemm_half).
   */
  HalfFormat half = H_NONE;
  const uint16_t* halfB = nullptr;
};



/** A schedule node as lowering sees it. */
struct NodeView {
  const Schedule& s;
  const SNode& n;

  int inputCount() const { return static_cast<int>(n.inputs.size()); }
  int outputCount() const { return static_cast<int>(n.outputs.size()); }
  bool has(int i) const { return i >= 0 && i < inputCount() && n.inputs[static_cast<size_t>(i)] >= 0; }
  int32_t inId(int i) const { return has(i) ? n.inputs[static_cast<size_t>(i)] : -1; }
  int32_t outId(int i) const { return n.outputs[static_cast<size_t>(i)]; }
  const SValue& in(int i) const { return s.values[static_cast<size_t>(n.inputs[static_cast<size_t>(i)])]; }
  const SValue& out(int i) const { return s.values[static_cast<size_t>(n.outputs[static_cast<size_t>(i)])]; }

  bool hasAttr(const char* name) const { return n.attrs.count(name) != 0; }
  int64_t attrInt(const char* name, int64_t dflt) const;
  float attrFloat(const char* name, float dflt) const;
  std::string attrString(const char* name, const std::string& dflt) const;
  std::vector<int64_t> attrInts(const char* name) const;
  std::vector<float> attrFloats(const char* name) const;

  /** The integer values of input i when it is an inline literal (int32/int64); false otherwise. */
  bool constInts(int i, std::vector<int64_t>& out) const;
  /** The values of input i as doubles when it is an inline literal of a numeric type. */
  bool constDoubles(int i, std::vector<double>& out) const;
};

using LowerFn = std::unique_ptr<Kernel> (*)(const NodeView& node, std::string& why);

/**
 * Elementwise fusion (fuse.cpp finds the regions, kernels/eltwise.hip runs them): a run of
 * consecutive float32 elementwise nodes with one output shape becomes one kernel that loads each
 * outside input once (broadcast), keeps intermediates in registers and writes only the values
 * used elsewhere.
 */
constexpr int kFuseMaxInputs = 8;
constexpr int kFuseMaxOutputs = 4;
constexpr int kFuseMaxOps = 24;

struct FusedRegion {
  /** its nodes, in schedule order (the kernel runs at the last one's step) */
  std::vector<int32_t> nodes;
  /** values read from outside the region */
  std::vector<int32_t> inputs;
  /** values the region writes (used after it, or program outputs) */
  std::vector<int32_t> outputs;
  /** the output shape every node of the region has */
  std::vector<int64_t> dims;
};

/** Who reads each value (by alias root), and which values must exist in memory whatever reads them. */
struct ValueUses {
  /** per root value: the schedule nodes that read it */
  std::vector<std::vector<int32_t>> readers;
  /** per root value: a program output, a module return or an alias root */
  std::vector<bool> pinned;
};
/** The uses of every value of the schedule (fuse.cpp), computed once for the fusion finders. */
ValueUses valueUses(const Schedule& s);

/** A MatMul operand read or written through strides: a Transpose folded into the GEMM. */
struct StridedOperand {
  /** the value read (the Transpose's input) or written (the Transpose's output) */
  int32_t value = -1;
  /** the operand's own dims, and the element strides at which they lie in `value` */
  std::vector<int64_t> dims, strides;
};

/**
 * A Transpose folded into the MatMul beside it (fuse.cpp): `operand` 0 (A), 1 (B) or 2 (the output).
 * An operand may come through a chain of Transposes, reshaping aliases and scalings by a constant
 * (Mul or Div by a scalar literal): `gone` are the chain's nodes that no longer run (the
 * Transposes and scalings), `transposes` how many of them are Transposes, and `alpha` the product
 * of the scalings, applied as the GEMM's alpha.
 */
struct TransposeFold {
  int32_t matmul = -1, transpose = -1;
  int operand = 0;
  StridedOperand view;
  std::vector<int32_t> gone;
  int transposes = 1;
  float alpha = 1.0f;
};

/**
 * MatMul with operands given as strided views (null: the node's own, contiguous), in
 * kernels/linalg.hip; null with `why` when a view fits no GEMM layout.
 */
std::unique_ptr<Kernel> lowerMatMulViews(const NodeView& node, const StridedOperand* a, const StridedOperand* b,
                                         const StridedOperand* y, std::string& why, float alpha = 1.0f);
/**
 * The Transposes of `module` that a MatMul beside them can read or write through strides
 * instead (each the only reader or producer of the value between them, with no other node
 * overwriting what the MatMul then reads, or reading what it writes, in between).
 */
std::vector<TransposeFold> findTransposeFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                              const ValueUses& uses);

/** A Relu applied by the Conv before it (fuse.cpp): the Conv writes the Relu's output, rectified. */
struct ConvReluFold {
  int32_t conv = -1, relu = -1;
};

/**
 * The Relus of `module` that directly follow the Conv whose output only they read, and whose own
 * output lies over none of the Conv's inputs (the Conv writes it while still reading them).
 */
std::vector<ConvReluFold> findConvReluFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                            const ValueUses& uses);
/**
 * A residual block's end, Relu(Add(Conv(x), z)), as one call of the DNN library (fuse.cpp finds
 * it): the Conv, its bias, the Add and the Relu in consecutive run-list steps, the Conv's and the
 * Add's outputs read by nothing else, and the Relu's output lying over none of the Conv's inputs
 * (it may be z itself: the library adds z in place).
 */
struct ConvResidualFold {
  int32_t conv = -1, add = -1, relu = -1;
  /** the Add's other input */
  int32_t residual = -1;
};
std::vector<ConvResidualFold> findConvResidualFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                                    const ValueUses& uses);
/**
 * The Conv of `conv` writing `reluOut` = Relu(conv + bias + residual) in one fused call of `dnn`,
 * planned now; null with `why` when the library cannot fuse it (kiln's own kernels never take a
 * residual: their GEMM would write over z while the Add still needs it).
 */
std::unique_ptr<Kernel> lowerConvResidual(const NodeView& conv, int32_t residual, int32_t reluOut, Dnn& dnn, bool tf32,
                                          std::string& why);
/** The Conv of `conv` writing `reluOut` through a Relu (kernels/conv.hip, GEMM path), or null with `why`. */
std::unique_ptr<Kernel> lowerConvRelu(const NodeView& conv, int32_t reluOut, std::string& why);

/** Whether node `n` can be part of a fused elementwise kernel (kernels/eltwise.hip decides). */
bool fusableElementwise(const NodeView& node);
/** The fused kernel of a region, or null with `why`. */
std::unique_ptr<Kernel> lowerFusedElementwise(const Schedule& s, const FusedRegion& region, std::string& why);
/**
 * The regions worth fusing (two nodes or more) among the nodes of `module` that run in the run
 * list (`runs[node]`: lowered to a kernel, not skipped, not a prepare node).
 */
std::vector<FusedRegion> findElementwiseRegions(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                                const ValueUses& uses);

/** Registers the lowering of ONNX op `op` (kernels/all.cpp calls each family's register function). */
void registerLowering(const char* op, LowerFn fn);
/** The lowering of `op`, or null. */
LowerFn findLowering(const std::string& op);
/** Registers every family once. */
void registerAllLowerings();
/** The names of the ops with a registered lowering, sorted. */
std::vector<std::string> loweredOps();

// ---- shared helpers for lowerings ----

constexpr int kMaxDims = 8;

/** A float element type: float32, float64, float16 or bfloat16. */
inline bool floatType(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || dt == DT_FLOAT16 || dt == DT_BFLOAT16; }

/** Row-major element strides of dims. */
std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& dims);

/** A launch grid for n elements processed by a grid-stride loop of `threads` per block. */
dim3 gridFor(int64_t n, int threads);

/**
 * Checks a kernel launch: records "<node>: launch failed: <runtime text>" in x.err; returns
 * false on failure.
 */
bool launched(Exec& x, const char* what);

}  // namespace kiln
