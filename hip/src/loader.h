// The swap pipeline: file ranges read by several threads into a pinned ring that is allocated
// once per context, each chunk hashed as it lands and copied to the device on its reader's own
// stream, so page-cache reads, hashing and PCIe copies overlap. Pinning host memory costs about
// half a second per GiB, which is why the ring is made on the first swap and kept, never per swap.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
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

/**
 * The files of a load, each opened once (never hangs on a FIFO or device: O_NONBLOCK, then regular
 * files only) and every range checked against its file's size through that descriptor, so the
 * bytes checked are the bytes read. Closes them when destroyed.
 */
class FileSet {
 public:
  FileSet() = default;
  FileSet(const FileSet&) = delete;
  FileSet& operator=(const FileSet&) = delete;
  ~FileSet();
  /**
   * Opens `path` (once) and checks bytes [offset, offset + length) are in it; on a problem appends a
   * line naming `what` to `problems` and returns false.
   */
  bool check(const std::string& path, uint64_t offset, uint64_t length, const std::string& what,
             std::string& problems);
  /** The descriptor of a checked file; -1 when it was never checked or failed to open. */
  int fd(const std::string& path) const;
  /** The size of a checked file (0 when it was never checked). */
  uint64_t size(const std::string& path) const;

 private:
  struct Entry {
    int fd = -1;
    uint64_t size = 0;
    std::string problem;  // why it cannot be read ("" when open)
  };
  std::vector<std::pair<std::string, Entry>> files_;
};

/**
 * Reads n bytes at byte `at` of a range [offset, offset + length) of `path` into buf, retrying
 * short reads; a failure or an early end of file names the tensor, file and byte.
 */
bool preadRange(int fd, char* buf, uint64_t n, uint64_t at, const std::string& path, uint64_t offset,
                uint64_t length, const std::string& what, Error& err);

/** Where a load spent its time. */
struct LoadStats {
  /** reader threads used */
  int threads = 0;
  /** from the first read to the last byte on the device, ms */
  double wallMs = 0;
  /** summed over the threads: time in pread, ms */
  double readMs = 0;
  /** summed over the threads: time hashing what was read, ms */
  double hashMs = 0;
  /** summed over the threads: time waiting for a ring slot's copy to finish, ms */
  double waitMs = 0;
  /** after the last read: waiting for the copies still in flight, ms (the pipeline's tail) */
  double tailMs = 0;
  /** the mapped mode (KILN_LOAD_MODE=mmap): mapping and registering the files, ms */
  double registerMs = 0;
  /** "ring" (pread into the pinned ring) or "mmap" (copies from registered file mappings) */
  const char* mode = "ring";
};

class Loader {
 public:
  explicit Loader(int32_t device) : device_(device) {}
  ~Loader();

  /**
   * Reads every job's range (checked in `files`) into its device memory. `hashes[i]` is job i's chunked content hash
   * (hashChunked of the same bytes). All the copies are complete when it returns true; on false
   * err names the file, tensor and byte that failed, and device memory may hold part of the data.
   */
  bool run(const std::vector<LoadJob>& jobs, const FileSet& files, std::vector<Hash128>& hashes, LoadStats& stats,
           Error& err);

  /**
   * The same load from the files' page-cache pages: each file mapped (mmap), registered with the
   * device (hipHostRegister, read-only: the pages are pinned where they are), copied to the
   * device straight from the mapping on the workers' streams while the threads hash it, then
   * unregistered. Chosen by KILN_LOAD_MODE=mmap, to measure against the ring: registering pins
   * every page on every swap, where the ring was pinned once.
   */
  bool runMapped(const std::vector<LoadJob>& jobs, const FileSet& files, std::vector<Hash128>& hashes,
                 LoadStats& stats, Error& err);
  /** Reader threads: KILN_LOAD_THREADS when set (1..64), else min(16, hardware threads). */
  static int threadCount();
  /**
   * A ring chunk is read in pieces of this many bytes: each piece is hashed right after its read,
   * while it is still in the reader core's cache, and its copy to the device starts at once.
   * KILN_LOAD_PIECE (bytes, 64 KiB .. kLoadChunk) overrides it, a measuring knob.
   */
  static uint64_t pieceBytes();

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
  /** The reader threads for `chunks` chunks (at most one per chunk), their workers made; 0 with err on failure. */
  int workersFor(size_t chunks, Error& err);

  int32_t device_;
  std::mutex mutex_;  // one load at a time per context: the ring is shared
  std::vector<Worker> workers_;
};

}  // namespace kiln
