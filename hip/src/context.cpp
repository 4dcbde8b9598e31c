#include "context.h"

namespace kiln {

Context* Context::create(int32_t index, uint64_t memoryLimit, Error& err) {
  int count = 0;
  const hipError_t e = hipGetDeviceCount(&count);
  if (e != hipSuccess || count == 0) {
    err.fail(KILN_E_NO_DEVICE, std::string("No GPU found: ") + (e != hipSuccess ? hipGetErrorString(e) : "no devices"));
    return nullptr;
  }
  if (index < 0 || index >= count) {
    err.fail(KILN_E_NO_DEVICE, "No GPU " + std::to_string(index) + ": " + std::to_string(count) + " found");
    return nullptr;
  }
  Context* c = new Context();
  c->device_ = index;
  c->limit_ = memoryLimit;
  c->loader_.reset(new Loader(index));
  if (!hipCheck(hipSetDevice(index), "hipSetDevice", err) ||
      !hipCheck(hipGetDeviceProperties(&c->props_, index), "hipGetDeviceProperties", err)) {
    delete c;
    return nullptr;
  }
  return c;
}

Context::~Context() {
  loader_.reset();
  hipSetDevice(device_);
  for (int i = 0; i < 2; i++) {
    if (staging_[i]) hipHostFree(staging_[i]);
    if (stagingDone_[i]) hipEventDestroy(stagingDone_[i]);
  }
}

char* Context::alloc(uint64_t bytes, const std::string& what, Error& err) {
  const uint64_t n = bytes > 0 ? bytes : 1;
  const uint64_t held = used_.load();
  if (limit_ > 0 && held + n > limit_) {
    err.fail(KILN_E_OUT_OF_MEMORY, "Out of device memory: " + what + " needs " + formatBytes(n) + ", and kiln holds " +
                                       formatBytes(held) + " of its " + formatBytes(limit_) + " limit on GPU " +
                                       std::to_string(device_));
    return nullptr;
  }
  hipSetDevice(device_);
  void* p = nullptr;
  const hipError_t e = hipMalloc(&p, n);
  if (e != hipSuccess) {
    hipGetLastError();
    size_t freeBytes = 0, total = 0;
    hipMemGetInfo(&freeBytes, &total);
    err.fail(e == hipErrorOutOfMemory ? KILN_E_OUT_OF_MEMORY : KILN_E_DEVICE,
             "Out of device memory: " + what + " needs " + formatBytes(n) + ", GPU " + std::to_string(device_) +
                 " has " + formatBytes(freeBytes) + " free of " + formatBytes(total) + " (" + hipGetErrorString(e) +
                 ")");
    return nullptr;
  }
  used_ += n;
  return static_cast<char*>(p);
}

void Context::release(char* p, uint64_t bytes) {
  if (p == nullptr) return;
  hipFree(p);
  used_ -= bytes > 0 ? bytes : 1;
}

bool Context::ensureStaging(Error& err) {
  if (staging_[0]) return true;
  for (int i = 0; i < 2; i++) {
    void* p = nullptr;
    if (!hipCheck(hipHostMalloc(&p, kStagingBytes, hipHostMallocDefault), "hipHostMalloc (pinned staging)", err)) {
      return false;
    }
    staging_[i] = static_cast<char*>(p);
    if (!hipCheck(hipEventCreate(&stagingDone_[i]), "hipEventCreate", err)) return false;
  }
  return true;
}

bool Context::readFileToDevice(const std::string& path, uint64_t offset, uint64_t length, char* dst,
                               hipStream_t stream, ContentHash* hash, Sha1* sha, const std::string& what, Error& err) {
  FileSet files;
  std::string problem;
  if (!files.check(path, offset, length, what, problem)) return err.fail(KILN_E_IO, problem);
  const int fd = files.fd(path);
  std::lock_guard<std::mutex> lock(stagingMutex_);
  hipSetDevice(device_);
  if (!ensureStaging(err)) return false;
  uint64_t done = 0;
  int which = 0;
  bool pending[2] = {false, false};
  while (done < length) {
    const uint64_t n = length - done < kStagingBytes ? length - done : kStagingBytes;
    if (pending[which] && !hipCheck(hipEventSynchronize(stagingDone_[which]), "hipEventSynchronize", err)) return false;
    char* buf = staging_[which];
    if (!preadRange(fd, buf, n, offset + done, path, offset, length, what, err)) return false;
    if (hash) hash->update(reinterpret_cast<const uint8_t*>(buf), n);
    if (sha) sha->update(reinterpret_cast<const uint8_t*>(buf), n);
    if (dst != nullptr) {
      if (!hipCheck(hipMemcpyAsync(dst + done, buf, n, hipMemcpyHostToDevice, stream), "hipMemcpyAsync (upload)", err) ||
          !hipCheck(hipEventRecord(stagingDone_[which], stream), "hipEventRecord", err)) {
        return false;
      }
      pending[which] = true;
    }
    done += n;
    which ^= 1;
  }
  return hipCheck(hipStreamSynchronize(stream), "hipStreamSynchronize (upload)", err);
}

}  // namespace kiln
