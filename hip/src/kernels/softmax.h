// The axis kernel of softmax.hip, which LpNormalization (norm.hip) and SoftmaxCrossEntropyLoss's
// log-softmax (loss.hip) run too: a softmax-family op or an Lp norm along one axis of x, viewed as
// [outer, len, inner].
#pragma once
#include <cstdint>

#include "../lower.h"

namespace kiln {

enum : int { SM_SOFTMAX = 0, SM_LOG = 1, SM_HARDMAX = 2, SM_LP1 = 3, SM_LP2 = 4 };

struct AxisParams {
  int mode;
  int64_t outer, len, inner;
};

/**
 * Launches the axis kernel: p.mode along the axis of xp (element type dt, a float type) into op;
 * false with x.err set on failure.
 */
bool launchAxis(Exec& x, const AxisParams& p, int dt, const void* xp, void* op, const char* what);

/** The axis kernel as a node's Kernel (scalar: a rank-0 x, whose softmax family gives 1, 0 for LogSoftmax). */
struct AxisKernel : Kernel {
  AxisParams p{};
  int dt = DT_FLOAT;
  bool scalar = false;
  int32_t in = -1, out = -1;
  const char* label = "softmax";
  bool run(Exec& x) override;
};

}  // namespace kiln
