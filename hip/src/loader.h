// The swap pipeline: file ranges read by several threads into a pinned ring that is allocated
// once per context, each chunk hashed as it lands and copied to the device on its reader's own
// stream, so page-cache reads, hashing and PCIe copies overlap. Pinning host memory costs about
// half a second per GiB, which is why the ring is made on the first swap and kept, never per swap.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "hash.h"

namespace kiln {

/** One range of a file bound for device memory at dst; `what` names the tensor in errors. */
struct LoadJob {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
  char* dst = nullptr;
  std::string what;
};

/** Where a load spent its time. */
struct LoadStats {
  /** reader threads used */
  int threads = 0;
  /** from the first read to the last byte on the device, ms */
  double wallMs = 0;
  /** summed over the threads: time in pread, ms */
  double readMs = 0;
  /** summed over the threads: time waiting for a ring slot's copy to finish, ms */
  double waitMs = 0;
  /** after the last read: waiting for the copies still in flight, ms (the pipeline's tail) */
  double tailMs = 0;
};

class Loader {
 public:
  explicit Loader(int32_t device) : device_(device) {}
  ~Loader();

  /**
   * Reads every job's range into its device memory. `hashes[i]` is job i's chunked content hash
   * (hashChunked of the same bytes). All the copies are complete when it returns true; on false
   * err names the file, tensor and byte that failed, and device memory may hold part of the data.
   */
  bool run(const std::vector<LoadJob>& jobs, std::vector<Hash128>& hashes, LoadStats& stats, Error& err);

  /** Reader threads: KILN_LOAD_THREADS when set (1..64), else min(16, hardware threads). */
  static int threadCount();

 private:
  struct Slot {
    char* host = nullptr;
    hipEvent_t copied = nullptr;
    bool pending = false;
  };
  struct Worker {
    hipStream_t stream = nullptr;
    Slot slots[2];
    int next = 0;
  };
  bool ensure(int threads, Error& err);

  int32_t device_;
  std::mutex mutex_;  // one load at a time per context: the ring is shared
  std::vector<Worker> workers_;
};

}  // namespace kiln
