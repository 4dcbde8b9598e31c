// Every op family's lowerings, registered once. One line per family file (kernels/*.hip; gemm.hip
// registers nothing: it holds kiln_gemm). The order is the registration order: a later family's
// lowering of an op would replace an earlier one's.
#include <mutex>

#include "../lower.h"

namespace kiln {

void registerEltwise();
void registerData();
void registerGather();
void registerGenerators();
void registerReduce();
void registerSoftmax();
void registerNorm();
void registerLoss();
void registerLinalg();
void registerConv();
void registerPool();
void registerResize();
void registerGridSample();
void registerMisc();

void registerAllLowerings() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerEltwise();
    registerData();
    registerGather();
    registerGenerators();
    registerReduce();
    registerSoftmax();
    registerNorm();
    registerLoss();
    registerLinalg();
    registerConv();
    registerPool();
    registerResize();
    registerGridSample();
    registerMisc();
  });
}

}  // namespace kiln
