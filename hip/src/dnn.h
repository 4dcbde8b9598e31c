// The vendor DNN library, found at run time: cuDNN on NVIDIA (libcudnn.so.9 or .8), opened with
// dlopen and called through kiln's own declarations of the few functions it uses (the build needs
// no cuDNN headers or libraries), as blas.h does for cuBLAS. It runs float32 convolutions: the
// plan (descriptors, algorithm, workspace) is made once per Conv node when the program is
// created, and an eval only calls cudnnConvolutionForward. Where it does not load (the emulator,
// AMD builds: MIOpen is not wired yet, machines without cuDNN) or a conv has no plan, kiln's own
// Conv kernels run (kernels/conv.hip) and the program's info says why.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace kiln {

/** A convolution as the library sees it: NC + 1 to 3 spatial dims, symmetric padding. */
struct DnnConvShape {
  int spatial = 2;  // 1 to 3 (1-D convs are given as 2-D with a unit height)
  int64_t n = 0, c = 0, m = 0, group = 1;
  int64_t in[3] = {1, 1, 1}, kernel[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dilation[3] = {1, 1, 1};
  /** the epilogue asked for: a per-channel bias, then a Relu (NaN passes through) */
  bool bias = false, relu = false;
  /**
   * Channels-last (graph API only): x and y stored NHWC where set, and the filter then KRSC
   * (output channels, then the spatial dims, then input channels). Set by the program's
   * channels-last planning (program.cpp), never by lowering.
   */
  bool xNhwc = false, yNhwc = false;
  bool channelsLast() const { return xNhwc || yNhwc; }
};

/** One planned convolution: the library's descriptors, the algorithm chosen and its workspace. */
class DnnConv {
 public:
  ~DnnConv();
  uint64_t workspaceBytes = 0;
  int algo = -1;
  /**
   * The bias (and the Relu, and a residual z) run inside the library's call
   * (cudnnConvolutionBiasActivationForward): strict float32, a bias was asked for, and a Relu too
   * or the algorithm is the one the library fuses a bias alone with.
   */
  bool fused = false;
  /** Planned through cuDNN's graph API: engine `engine` runs it (algo stays -1). */
  bool graphApi = false;
  int64_t engine = -1;
  /** The algorithm's name and math ("implicit precomp GEMM, FMA"), for reports. */
  std::string describe() const;

 private:
  friend class Dnn;
  void* x_ = nullptr;
  void* w_ = nullptr;
  void* y_ = nullptr;
  void* conv_ = nullptr;
  void* bias_ = nullptr;
  void* act_ = nullptr;
  int math_ = 0;
  // the graph API's execution plan, and every descriptor made for it (destroyed with the plan)
  void* plan_ = nullptr;
  std::vector<void*> owned_;
  // the variant pack of the last call and the addresses it holds (x, w, y, workspace): a program's
  // addresses change only when weights move, so it is made again only then
  mutable void* pack_ = nullptr;
  mutable const void* packFor_[4] = {nullptr, nullptr, nullptr, nullptr};
};

class Dnn {
 public:
  /** A handle bound to `stream`, or null with the reason in `why` (not an error). */
  static Dnn* create(hipStream_t stream, std::string& why);
  ~Dnn();

  /** "cudnn 9.x (libcudnn.so.9)" */
  const std::string& name() const { return name_; }

  /** The most workspace a plan may take (the algorithms that need more are passed over). */
  static constexpr uint64_t kMaxWorkspaceBytes = 256ull << 20;

  /**
   * Plans a float32 convolution (tf32: tensor-core math allowed, else FMA-only kernels, exact
   * float32 products); null with `why` when the library refuses the shape or has no algorithm.
   */
  std::unique_ptr<DnnConv> plan(const DnnConvShape& s, bool tf32, std::string& why);

  /** y = conv(x, w) on the handle's stream (workspace of plan.workspaceBytes); false with err. */
  bool forward(const DnnConv& plan, const float* x, const float* w, float* y, void* workspace, Error& err);
  /**
   * y = act(conv(x, w) + z + bias) in one call (a plan with `fused`): z (null: none) has y's
   * shape and may be y itself; act is the Relu when the plan was made with one.
   */
  bool forwardFused(const DnnConv& plan, const float* x, const float* w, const float* bias, const float* z, float* y,
                    void* workspace, Error& err);

 private:
  Dnn() {}
  /** The graph API's plan for `s`, into p (false with why: the legacy API is tried then). */
  bool planGraph(const DnnConvShape& s, bool tf32, DnnConv& p, std::string& why);
  void* handle_ = nullptr;
  std::string name_;
};

}  // namespace kiln
