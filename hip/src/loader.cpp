#include "loader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
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

/** Every job's range cut into kLoadChunk chunks, in order; parts[j] gets a slot per chunk of job j. */
std::vector<Chunk> cutChunks(const std::vector<LoadJob>& jobs, std::vector<std::vector<Hash128>>& parts) {
  std::vector<Chunk> chunks;
  parts.assign(jobs.size(), {});
  for (uint32_t j = 0; j < jobs.size(); j++) {
    const uint64_t n = (jobs[j].length + kLoadChunk - 1) / kLoadChunk;
    parts[j].resize(n);
    for (uint64_t c = 0; c < n; c++) {
      const uint64_t start = c * kLoadChunk;
      chunks.push_back(Chunk{j, static_cast<uint32_t>(c), start,
                             jobs[j].length - start < kLoadChunk ? jobs[j].length - start : kLoadChunk});
    }
  }
  return chunks;
}

/** Runs work(t) for t < threads, on the calling thread when there is one, and waits for all. */
template <typename F>
void onThreads(int threads, F& work) {
  if (threads == 1) {
    work(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; t++) pool.emplace_back(work, t);
  for (std::thread& th : pool) th.join();
}

}  // namespace

FileSet::~FileSet() {
  for (auto& f : files_)
    if (f.second.fd >= 0) close(f.second.fd);
}

uint64_t FileSet::size(const std::string& path) const {
  for (const auto& f : files_)
    if (f.first == path) return f.second.size;
  return 0;
}

int FileSet::fd(const std::string& path) const {
  for (const auto& f : files_)
    if (f.first == path) return f.second.fd;
  return -1;
}

bool FileSet::check(const std::string& path, uint64_t offset, uint64_t length, const std::string& what,
                    std::string& problems) {
  auto add = [&](const std::string& p) {
    if (!problems.empty()) problems += "\n";
    problems += what + ": " + p;
    return false;
  };
  Entry* e = nullptr;
  for (auto& f : files_)
    if (f.first == path) e = &f.second;
  if (e == nullptr) {
    files_.emplace_back(path, Entry{});
    e = &files_.back().second;
    // O_NONBLOCK: a FIFO or device named as a data file must not hang the open
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
      e->problem = "cannot open '" + path + "': " + std::strerror(errno);
    } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      e->problem = "'" + path + "' is not a regular file";
    } else {
      e->fd = fd;
      e->size = static_cast<uint64_t>(st.st_size);
    }
  }
  if (!e->problem.empty()) return add(e->problem);
  if (offset > e->size || length > e->size - offset) {
    return add("file '" + path + "' has " + std::to_string(e->size) + " bytes, needs bytes " + std::to_string(offset) +
               ".." + std::to_string(offset + length));
  }
  return true;
}

bool preadRange(int fd, char* buf, uint64_t n, uint64_t at, const std::string& path, uint64_t offset,
                uint64_t length, const std::string& what, Error& err) {
  uint64_t got = 0;
  while (got < n) {
    const ssize_t r = pread(fd, buf + got, n - got, static_cast<off_t>(at + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return err.fail(KILN_E_IO, what + ": reading '" + path + "' at byte " + std::to_string(at + got) +
                                     " failed: " + std::strerror(errno));
    }
    if (r == 0) {
      return err.fail(KILN_E_IO, what + ": file '" + path + "' ends at byte " + std::to_string(at + got) +
                                     ", needs bytes " + std::to_string(offset) + ".." + std::to_string(offset + length));
    }
    got += static_cast<uint64_t>(r);
  }
  return true;
}

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

uint64_t Loader::pieceBytes() {
  // 1 MiB: within any reader core's L2, so the hash reads the piece from cache rather than from
  // DRAM a second time (measured on the H200's host: see docs/gpu.md, the swap pipeline)
  uint64_t n = uint64_t(1) << 20;
  if (const char* v = std::getenv("KILN_LOAD_PIECE")) {
    const long long x = std::atoll(v);
    if (x >= (64 << 10) && static_cast<uint64_t>(x) <= kLoadChunk) n = static_cast<uint64_t>(x);
  }
  return n;
}

int Loader::workersFor(size_t chunks, Error& err) {
  int threads = threadCount();
  if (static_cast<size_t>(threads) > chunks) threads = static_cast<int>(chunks > 0 ? chunks : 1);
  return ensure(threads, err) ? threads : 0;
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

bool Loader::run(const std::vector<LoadJob>& jobs, const FileSet& files, std::vector<Hash128>& hashes,
                 LoadStats& stats, Error& err) {
  const char* mode = std::getenv("KILN_LOAD_MODE");
  if (mode && std::strcmp(mode, "mmap") == 0) return runMapped(jobs, files, hashes, stats, err);
  std::lock_guard<std::mutex> lock(mutex_);
  stats = LoadStats{};
  hashes.assign(jobs.size(), Hash128{});
  std::vector<int> fds(jobs.size());
  for (uint32_t j = 0; j < jobs.size(); j++) {
    const LoadJob& job = jobs[j];
    fds[j] = files.fd(job.path);
    if (fds[j] < 0) return err.fail(KILN_E_ARGUMENT, job.what + ": '" + job.path + "' was not checked before the load");
  }
  std::vector<std::vector<Hash128>> parts;
  const std::vector<Chunk> chunks = cutChunks(jobs, parts);
  const int threads = workersFor(chunks.size(), err);
  if (threads == 0) return false;
  stats.threads = threads;

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errMutex;
  Error first;
  std::vector<double> readMs(threads, 0), hashMs(threads, 0), waitMs(threads, 0), tailMs(threads, 0);
  const uint64_t piece = pieceBytes();
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
      // piece by piece: read, start its copy, hash it while it is still in this core's cache
      ContentHash h;
      for (uint64_t at = 0; at < c.length; at += piece) {
        const uint64_t n = c.length - at < piece ? c.length - at : piece;
        const auto a = std::chrono::steady_clock::now();
        if (!preadRange(fds[c.job], s.host + at, n, job.offset + c.start + at, job.path, job.offset, job.length,
                        job.what, e)) {
          return fail(e.status, e.message);
        }
        const auto b = std::chrono::steady_clock::now();
        readMs[t] += msBetween(a, b);
        if (!hipCheck(hipMemcpyAsync(job.dst + c.start + at, s.host + at, n, hipMemcpyHostToDevice, w.stream),
                      "hipMemcpyAsync (loader)", e)) {
          return fail(e.status, e.message);
        }
        h.update(reinterpret_cast<const uint8_t*>(s.host + at), n);
        hashMs[t] += msBetween(b, std::chrono::steady_clock::now());
      }
      if (!hipCheck(hipEventRecord(s.copied, w.stream), "hipEventRecord (loader)", e)) return fail(e.status, e.message);
      s.pending = true;
      parts[c.job][c.index] = h.finish();
    }
    const auto a = std::chrono::steady_clock::now();
    if (!hipCheck(hipStreamSynchronize(w.stream), "hipStreamSynchronize (loader)", e)) fail(e.status, e.message);
    for (Slot& s : w.slots) s.pending = false;
    tailMs[t] = msBetween(a, std::chrono::steady_clock::now());
  };

  onThreads(threads, work);
  stats.wallMs = msBetween(t0, std::chrono::steady_clock::now());
  for (int t = 0; t < threads; t++) {
    stats.readMs += readMs[t];
    stats.hashMs += hashMs[t];
    stats.waitMs += waitMs[t];
    if (tailMs[t] > stats.tailMs) stats.tailMs = tailMs[t];
  }
  if (!first.ok()) return err.fail(first.status, first.message);
  for (size_t j = 0; j < jobs.size(); j++) hashes[j] = combineChunks(parts[j], jobs[j].length);
  return true;
}

bool Loader::runMapped(const std::vector<LoadJob>& jobs, const FileSet& files, std::vector<Hash128>& hashes,
                       LoadStats& stats, Error& err) {
  std::lock_guard<std::mutex> lock(mutex_);
  stats = LoadStats{};
  stats.mode = "mmap";
  hashes.assign(jobs.size(), Hash128{});
  const auto t0 = std::chrono::steady_clock::now();
  // each file mapped and registered once
  struct Mapped {
    std::string path;
    char* base = nullptr;
    uint64_t size = 0;
    bool registered = false;
  };
  std::vector<Mapped> maps;
  auto release = [&]() {
    for (Mapped& m : maps) {
      if (m.registered) hipHostUnregister(m.base);
      if (m.base) munmap(m.base, m.size);
    }
  };
  std::vector<const char*> at(jobs.size(), nullptr);
  hipSetDevice(device_);
  for (size_t j = 0; j < jobs.size(); j++) {
    const LoadJob& job = jobs[j];
    Mapped* m = nullptr;
    for (Mapped& x : maps) {
      if (x.path == job.path) m = &x;
    }
    if (!m) {
      const int fd = files.fd(job.path);
      const uint64_t size = files.size(job.path);
      if (fd < 0) {
        release();
        return err.fail(KILN_E_ARGUMENT, job.what + ": '" + job.path + "' was not checked before the load");
      }
      Mapped x;
      x.path = job.path;
      x.size = size;
      if (size > 0) {
        void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
          release();
          return err.fail(KILN_E_IO, job.what + ": cannot map '" + job.path + "': " + std::strerror(errno));
        }
        x.base = static_cast<char*>(p);
        madvise(p, size, MADV_WILLNEED);
        Error e;
        if (!hipCheck(hipHostRegister(p, size, hipHostRegisterReadOnly), "hipHostRegister (a mapped weight file)", e)) {
          munmap(p, size);
          release();
          return err.fail(e.status, job.what + ": '" + job.path + "': " + e.message);
        }
        x.registered = true;
      }
      maps.push_back(x);
      m = &maps.back();
    }
    at[j] = m->base + job.offset;
  }
  stats.registerMs = msBetween(t0, std::chrono::steady_clock::now());
  // chunks spread over the threads: each copies its chunks on its own stream and hashes them
  std::vector<std::vector<Hash128>> parts;
  const std::vector<Chunk> chunks = cutChunks(jobs, parts);
  const int threads = workersFor(chunks.size(), err);
  if (threads == 0) {
    release();
    return false;
  }
  stats.threads = threads;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errMutex;
  Error first;
  std::vector<double> hashMs(threads, 0), tailMs(threads, 0);
  auto work = [&](int t) {
    Worker& w = workers_[t];
    Error e;
    hipSetDevice(device_);
    while (!failed.load(std::memory_order_relaxed)) {
      const size_t i = next.fetch_add(1);
      if (i >= chunks.size()) break;
      const Chunk& c = chunks[i];
      const char* src = at[c.job] + c.start;
      if (!hipCheck(hipMemcpyAsync(jobs[c.job].dst + c.start, src, c.length, hipMemcpyHostToDevice, w.stream),
                    "hipMemcpyAsync (mapped loader)", e)) {
        std::lock_guard<std::mutex> l(errMutex);
        if (first.ok()) first.fail(e.status, e.message);
        failed = true;
        break;
      }
      const auto a = std::chrono::steady_clock::now();
      ContentHash h;
      h.update(reinterpret_cast<const uint8_t*>(src), c.length);
      parts[c.job][c.index] = h.finish();
      hashMs[t] += msBetween(a, std::chrono::steady_clock::now());
    }
    const auto a = std::chrono::steady_clock::now();
    if (!hipCheck(hipStreamSynchronize(w.stream), "hipStreamSynchronize (mapped loader)", e)) {
      std::lock_guard<std::mutex> l(errMutex);
      if (first.ok()) first.fail(e.status, e.message);
      failed = true;
    }
    tailMs[t] = msBetween(a, std::chrono::steady_clock::now());
  };
  onThreads(threads, work);
  release();
  stats.wallMs = msBetween(t0, std::chrono::steady_clock::now());
  for (int t = 0; t < threads; t++) {
    stats.readMs += hashMs[t];
    if (tailMs[t] > stats.tailMs) stats.tailMs = tailMs[t];
  }
  if (!first.ok()) return err.fail(first.status, first.message);
  for (size_t j = 0; j < jobs.size(); j++) hashes[j] = combineChunks(parts[j], jobs[j].length);
  return true;
}

}  // namespace kiln
