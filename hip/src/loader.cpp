#include "loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

namespace kiln {

namespace {

double msBetween(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Chunk {
  uint32_t job;
  uint32_t index;  // within the job
  uint64_t start;  // within the job's range
  uint64_t length;
};

struct OpenFile {
  int fd = -1;
  uint64_t size = 0;
};

}  // namespace

Loader::~Loader() {
  hipSetDevice(device_);
  for (Worker& w : workers_) {
    for (Slot& s : w.slots) {
      if (s.host) hipHostFree(s.host);
      if (s.copied) hipEventDestroy(s.copied);
    }
    if (w.stream) hipStreamDestroy(w.stream);
  }
}

int Loader::threadCount() {
  if (const char* v = std::getenv("KILN_LOAD_THREADS")) {
    const int n = std::atoi(v);
    if (n >= 1 && n <= 64) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 4 : static_cast<int>(hw < 16 ? hw : 16);
}

bool Loader::ensure(int threads, Error& err) {
  hipSetDevice(device_);
  while (static_cast<int>(workers_.size()) < threads) {
    Worker w;
    bool ok = hipCheck(hipStreamCreateWithFlags(&w.stream, hipStreamNonBlocking), "hipStreamCreateWithFlags (loader)", err);
    for (Slot& s : w.slots) {
      void* p = nullptr;
      ok = ok && hipCheck(hipHostMalloc(&p, kLoadChunk, hipHostMallocDefault), "hipHostMalloc (pinned ring)", err);
      s.host = static_cast<char*>(p);
      ok = ok && hipCheck(hipEventCreate(&s.copied), "hipEventCreate (loader)", err);
    }
    workers_.push_back(w);  // kept even when half made: the destructor frees what exists
    if (!ok) return false;
  }
  return true;
}

bool Loader::run(const std::vector<LoadJob>& jobs, std::vector<Hash128>& hashes, LoadStats& stats, Error& err) {
  std::lock_guard<std::mutex> lock(mutex_);
  stats = LoadStats{};
  hashes.assign(jobs.size(), Hash128{});
  // each file opened once, checked regular and long enough through its descriptor
  std::map<std::string, OpenFile> files;
  struct Closer {
    std::map<std::string, OpenFile>& f;
    ~Closer() {
      for (auto& kv : f)
        if (kv.second.fd >= 0) close(kv.second.fd);
    }
  } closer{files};
  std::vector<Chunk> chunks;
  std::vector<std::vector<Hash128>> parts(jobs.size());
  for (uint32_t j = 0; j < jobs.size(); j++) {
    const LoadJob& job = jobs[j];
    auto it = files.find(job.path);
    if (it == files.end()) {
      OpenFile f;
      // O_NONBLOCK: a FIFO or device named as a data file must not hang the open
      f.fd = open(job.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      if (f.fd < 0) return err.fail(KILN_E_IO, job.what + ": cannot open '" + job.path + "': " + std::strerror(errno));
      struct stat st;
      if (fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f.fd);
        return err.fail(KILN_E_IO, job.what + ": '" + job.path + "' is not a regular file");
      }
      f.size = static_cast<uint64_t>(st.st_size);
      it = files.emplace(job.path, f).first;
    }
    const uint64_t size = it->second.size;
    if (job.offset > size || job.length > size - job.offset) {
      return err.fail(KILN_E_IO, job.what + ": file '" + job.path + "' has " + std::to_string(size) +
                                     " bytes, needs bytes " + std::to_string(job.offset) + ".." +
                                     std::to_string(job.offset + job.length));
    }
    const uint64_t n = (job.length + kLoadChunk - 1) / kLoadChunk;
    parts[j].resize(n);
    for (uint64_t c = 0; c < n; c++) {
      const uint64_t start = c * kLoadChunk;
      chunks.push_back(Chunk{j, static_cast<uint32_t>(c), start,
                             job.length - start < kLoadChunk ? job.length - start : kLoadChunk});
    }
  }
  int threads = threadCount();
  if (static_cast<size_t>(threads) > chunks.size()) threads = static_cast<int>(chunks.size() > 0 ? chunks.size() : 1);
  if (!ensure(threads, err)) return false;
  stats.threads = threads;

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errMutex;
  Error first;
  std::vector<double> readMs(threads, 0), waitMs(threads, 0), tailMs(threads, 0);
  const auto t0 = std::chrono::steady_clock::now();

  auto work = [&](int t) {
    Worker& w = workers_[t];
    Error e;
    auto fail = [&](int32_t status, const std::string& m) {
      std::lock_guard<std::mutex> l(errMutex);
      if (first.ok()) first.fail(status, m);
      failed = true;
    };
    hipSetDevice(device_);
    while (!failed.load(std::memory_order_relaxed)) {
      const size_t i = next.fetch_add(1);
      if (i >= chunks.size()) break;
      const Chunk& c = chunks[i];
      const LoadJob& job = jobs[c.job];
      Slot& s = w.slots[w.next];
      w.next ^= 1;
      if (s.pending) {
        const auto a = std::chrono::steady_clock::now();
        if (!hipCheck(hipEventSynchronize(s.copied), "hipEventSynchronize (loader)", e)) return fail(e.status, e.message);
        waitMs[t] += msBetween(a, std::chrono::steady_clock::now());
        s.pending = false;
      }
      const int fd = files[job.path].fd;
      const auto a = std::chrono::steady_clock::now();
      uint64_t got = 0;
      while (got < c.length) {
        const uint64_t at = job.offset + c.start + got;
        const ssize_t r = pread(fd, s.host + got, c.length - got, static_cast<off_t>(at));
        if (r < 0) {
          if (errno == EINTR) continue;
          return fail(KILN_E_IO, job.what + ": reading '" + job.path + "' at byte " + std::to_string(at) +
                                     " failed: " + std::strerror(errno));
        }
        if (r == 0) {
          return fail(KILN_E_IO, job.what + ": file '" + job.path + "' ends at byte " + std::to_string(at) +
                                     ", needs bytes " + std::to_string(job.offset) + ".." +
                                     std::to_string(job.offset + job.length));
        }
        got += static_cast<uint64_t>(r);
      }
      readMs[t] += msBetween(a, std::chrono::steady_clock::now());
      ContentHash h;
      h.update(reinterpret_cast<const uint8_t*>(s.host), c.length);
      parts[c.job][c.index] = h.finish();
      if (!hipCheck(hipMemcpyAsync(job.dst + c.start, s.host, c.length, hipMemcpyHostToDevice, w.stream),
                    "hipMemcpyAsync (loader)", e) ||
          !hipCheck(hipEventRecord(s.copied, w.stream), "hipEventRecord (loader)", e)) {
        return fail(e.status, e.message);
      }
      s.pending = true;
    }
    const auto a = std::chrono::steady_clock::now();
    if (!hipCheck(hipStreamSynchronize(w.stream), "hipStreamSynchronize (loader)", e)) fail(e.status, e.message);
    for (Slot& s : w.slots) s.pending = false;
    tailMs[t] = msBetween(a, std::chrono::steady_clock::now());
  };

  if (threads == 1) {
    work(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int t = 0; t < threads; t++) pool.emplace_back(work, t);
    for (std::thread& th : pool) th.join();
  }
  stats.wallMs = msBetween(t0, std::chrono::steady_clock::now());
  for (int t = 0; t < threads; t++) {
    stats.readMs += readMs[t];
    stats.waitMs += waitMs[t];
    if (tailMs[t] > stats.tailMs) stats.tailMs = tailMs[t];
  }
  if (!first.ok()) return err.fail(first.status, first.message);
  for (size_t j = 0; j < jobs.size(); j++) hashes[j] = combineChunks(parts[j], jobs[j].length);
  return true;
}

}  // namespace kiln
