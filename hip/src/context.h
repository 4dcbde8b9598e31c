// A device context: the device, kiln's device memory accounting (with an optional limit), and
// the pinned staging buffers that file ranges are read into on their way to the device.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common.h"
#include "hash.h"
#include "loader.h"

namespace kiln {

class Context {
 public:
  /** Opens device `index`; null with err on failure. */
  static Context* create(int32_t index, uint64_t memoryLimit, Error& err);
  ~Context();

  int32_t device() const { return device_; }
  const hipDeviceProp_t& props() const { return props_; }

  /** Device memory through the accounting; null with err (how much was asked, held, free). */
  char* alloc(uint64_t bytes, const std::string& what, Error& err);
  void release(char* p, uint64_t bytes);
  uint64_t used() const { return used_.load(); }

  /**
   * Copies bytes [offset, offset + length) of a regular file into device memory at dst on
   * `stream`, through the pinned staging buffers (read and copy overlapped), updating `hash`
   * and `sha` (either may be null) with every byte read. Synchronizes `stream` before returning.
   * `what` names the tensor for error messages.
   */
  bool readFileToDevice(const std::string& path, uint64_t offset, uint64_t length, char* dst, hipStream_t stream,
                        ContentHash* hash, Sha1* sha, const std::string& what, Error& err);

  /** The swap pipeline of this context (its pinned ring is made on the first load and kept). */
  Loader& loader() { return *loader_; }

  /**
   * Held by whatever allocates, frees or uploads device memory for a bind (which runs while evals
   * go on) and by a graph capture: hipMalloc/hipFree and pinned allocations synchronize the
   * device, and a synchronization during a capture on another thread invalidates the capture.
   */
  std::mutex& deviceMutex() { return deviceMutex_; }

 private:
  Context() {}
  bool ensureStaging(Error& err);

  int32_t device_ = 0;
  hipDeviceProp_t props_{};
  uint64_t limit_ = 0;
  std::atomic<uint64_t> used_{0};
  std::mutex stagingMutex_;
  std::mutex deviceMutex_;
  char* staging_[2] = {nullptr, nullptr};
  hipEvent_t stagingDone_[2] = {nullptr, nullptr};
  std::unique_ptr<Loader> loader_;
};

/** Chunk size of the pinned staging buffers. */
constexpr uint64_t kStagingBytes = uint64_t(16) << 20;

}  // namespace kiln
