// Every op family's lowerings, registered once. One line per family file (kernels/*.hip).
#include <mutex>

#include "../lower.h"

namespace kiln {

void registerEltwise();
void registerData();
void registerReduce();
void registerNorm();
void registerLinalg();
void registerConv();
void registerPool();
void registerResize();
void registerMisc();

void registerAllLowerings() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerEltwise();
    registerData();
    registerReduce();
    registerNorm();
    registerLinalg();
    registerConv();
    registerPool();
    registerResize();
    registerMisc();
  });
}

}  // namespace kiln
