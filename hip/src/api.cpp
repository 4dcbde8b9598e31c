// The C ABI (include/kiln_hip.h): argument checks, then the Context and Program methods. No
// C++ exception escapes: allocation failures inside a call become KILN_E_OUT_OF_MEMORY.
#include <cstring>
#include <mutex>
#include <new>

#include "context.h"
#include "program.h"

using kiln::Error;

struct kiln_ctx {
  kiln::Context* c;
};
struct kiln_prog {
  kiln::Program* p;
  kiln_ctx* ctx;
};

namespace {

std::mutex g_errorMutex;
std::string g_lastError;

void setLastError(const Error& e) {
  std::lock_guard<std::mutex> lock(g_errorMutex);
  g_lastError = e.message;
}

std::string cstr(const uint8_t* p) { return p ? std::string(reinterpret_cast<const char*>(p)) : std::string(); }

template <typename F>
int32_t guarded(kiln_prog* prog, F f) {
  if (prog == nullptr || prog->p == nullptr) return KILN_E_ARGUMENT;
  try {
    prog->p->err = Error();
    return f(prog->p) ? KILN_OK : (prog->p->err.status != KILN_OK ? prog->p->err.status : KILN_E_ARGUMENT);
  } catch (const std::bad_alloc&) {
    prog->p->err.fail(KILN_E_OUT_OF_MEMORY, "Out of host memory");
    return KILN_E_OUT_OF_MEMORY;
  }
}

/**
 * A bind call: its failure goes to the program's bindErr (binds run beside evals), and it holds
 * the context's device mutex (it may allocate, free or upload while an eval captures a graph).
 */
template <typename F>
int32_t guardedBind(kiln_prog* prog, F f) {
  if (prog == nullptr || prog->p == nullptr) return KILN_E_ARGUMENT;
  kiln::Program* p = prog->p;
  try {
    std::lock_guard<std::mutex> lock(prog->ctx->c->deviceMutex());
    p->bindErr = Error();
    return f(p) ? KILN_OK : (p->bindErr.status != KILN_OK ? p->bindErr.status : KILN_E_ARGUMENT);
  } catch (const std::bad_alloc&) {
    p->bindErr.fail(KILN_E_OUT_OF_MEMORY, "Out of host memory");
    return KILN_E_OUT_OF_MEMORY;
  }
}

}  // namespace

extern "C" {

int32_t kiln_abi_version(void) { return KILN_ABI_VERSION; }

int64_t kiln_last_error(uint8_t* buf, uint64_t cap) {
  std::lock_guard<std::mutex> lock(g_errorMutex);
  return kiln::copyOut(g_lastError, buf, cap);
}

int64_t kiln_devices_json(uint8_t* buf, uint64_t cap) {
  std::string out = "{\"abi\":" + std::to_string(KILN_ABI_VERSION) + ",\"platform\":\"" KILN_PLATFORM_NAME "\"";
  int runtime = 0, driver = 0;
  hipRuntimeGetVersion(&runtime);
  hipDriverGetVersion(&driver);
  out += ",\"runtimeVersion\":" + std::to_string(runtime) + ",\"driverVersion\":" + std::to_string(driver);
  int count = 0;
  const hipError_t e = hipGetDeviceCount(&count);
  std::string error;
  if (e != hipSuccess) {
    error = hipGetErrorString(e);
    count = 0;
    hipGetLastError();
  }
  out += ",\"devices\":[";
  for (int i = 0; i < count; i++) {
    hipDeviceProp_t p;
    if (hipGetDeviceProperties(&p, i) != hipSuccess) continue;
    size_t freeBytes = 0, total = 0;
    if (hipSetDevice(i) == hipSuccess) hipMemGetInfo(&freeBytes, &total);
    std::string arch;
#if defined(KILN_AMD) || defined(KILN_EMU)
    arch = p.gcnArchName;
#else
    arch = "sm_" + std::to_string(p.major) + std::to_string(p.minor);
#endif
    if (i > 0) out += ",";
    out += "{\"index\":" + std::to_string(i) + ",\"name\":";
    kiln::jsonString(out, p.name);
    out += ",\"arch\":";
    kiln::jsonString(out, arch);
    out += ",\"memoryBytes\":" + std::to_string(p.totalGlobalMem) + ",\"freeBytes\":" + std::to_string(freeBytes) +
           ",\"multiprocessors\":" + std::to_string(p.multiProcessorCount) + "}";
  }
  out += "],\"error\":";
  kiln::jsonString(out, error);
  out += "}";
  return kiln::copyOut(out, buf, cap);
}

int64_t kiln_ops_json(uint8_t* buf, uint64_t cap) {
  std::string out = "[";
  for (const std::string& op : kiln::loweredOps()) {
    if (out.size() > 1) out += ",";
    kiln::jsonString(out, op);
  }
  return kiln::copyOut(out + "]", buf, cap);
}

kiln_ctx* kiln_ctx_create(int32_t index, uint64_t memoryLimit) {
  Error err;
  kiln::Context* c = nullptr;
  try {
    c = kiln::Context::create(index, memoryLimit, err);
  } catch (const std::bad_alloc&) {
    err.fail(KILN_E_OUT_OF_MEMORY, "Out of host memory");
  }
  if (!c) {
    setLastError(err);
    return nullptr;
  }
  return new kiln_ctx{c};
}

void kiln_ctx_destroy(kiln_ctx* ctx) {
  if (!ctx) return;
  delete ctx->c;
  delete ctx;
}

kiln_prog* kiln_prog_create(kiln_ctx* ctx, const uint8_t* schedule, uint64_t length, uint32_t flags) {
  Error err;
  if (ctx == nullptr || schedule == nullptr) {
    err.fail(KILN_E_ARGUMENT, "kiln_prog_create needs a context and a schedule");
    setLastError(err);
    return nullptr;
  }
  kiln::Program* p = nullptr;
  try {
    p = kiln::Program::create(ctx->c, schedule, length, flags, err);
  } catch (const std::bad_alloc&) {
    err.fail(KILN_E_OUT_OF_MEMORY, "Out of host memory while lowering the schedule");
  }
  if (!p) {
    setLastError(err);
    return nullptr;
  }
  return new kiln_prog{p, ctx};
}

void kiln_prog_destroy(kiln_prog* prog) {
  if (!prog) return;
  delete prog->p;
  delete prog;
}

int64_t kiln_prog_error(kiln_prog* prog, uint8_t* buf, uint64_t cap) {
  if (!prog || !prog->p) return 0;
  return kiln::copyOut(prog->p->err.message, buf, cap);
}

int64_t kiln_prog_report(kiln_prog* prog, uint8_t* buf, uint64_t cap) {
  if (!prog || !prog->p) return KILN_E_ARGUMENT;
  return kiln::copyOut(prog->p->report(), buf, cap);
}

int32_t kiln_literal_write(kiln_prog* prog, uint32_t id, const uint8_t* data, uint64_t length) {
  return guarded(prog, [&](kiln::Program* p) { return p->literalWrite(id, data, length); });
}

int32_t kiln_literal_read_file(kiln_prog* prog, uint32_t id, const uint8_t* path, uint64_t offset, uint64_t length,
                               const uint8_t* sha1) {
  return guarded(prog, [&](kiln::Program* p) { return p->literalReadFile(id, cstr(path), offset, length, cstr(sha1)); });
}

int32_t kiln_bind_begin(kiln_prog* prog) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindBegin(); });
}

int32_t kiln_bind_bytes(kiln_prog* prog, uint32_t slot, const uint8_t* data, uint64_t length) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindBytes(slot, data, length); });
}

int32_t kiln_bind_file(kiln_prog* prog, uint32_t slot, const uint8_t* path, uint64_t offset, uint64_t length) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindFile(slot, cstr(path), offset, length); });
}

int64_t kiln_bind_commit(kiln_prog* prog, uint8_t* report, uint64_t cap) {
  std::string r;
  const int32_t status = guardedBind(prog, [&](kiln::Program* p) { return p->bindCommit(r); });
  if (status != KILN_OK) return status;
  return kiln::copyOut(r, report, cap);
}

int32_t kiln_bind_stage(kiln_prog* prog) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindStage(); });
}

int32_t kiln_bind_delta(kiln_prog* prog, uint32_t slot, const float* b, uint64_t bLength, const float* a,
                        uint64_t aLength, uint32_t rank, float scale, uint32_t flags) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindDelta(slot, b, bLength, a, aLength, rank, scale, flags); });
}

int32_t kiln_set_add(kiln_prog* prog, int32_t id) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->setAdd(id); });
}

int32_t kiln_set_remove(kiln_prog* prog, int32_t id) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->setRemove(id); });
}

int32_t kiln_set_select(kiln_prog* prog, int32_t id) {
  return guarded(prog, [&](kiln::Program* p) { return p->setSelect(id); });
}

int32_t kiln_hostset_create(kiln_prog* prog, int32_t id) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->hostSetCreate(id); });
}

int32_t kiln_hostset_put(kiln_prog* prog, int32_t id, uint32_t slot, const uint8_t* data, uint64_t length) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->hostSetPut(id, slot, data, length); });
}

int32_t kiln_hostset_stage(kiln_prog* prog, int32_t id) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->hostSetStage(id); });
}

int32_t kiln_hostset_remove(kiln_prog* prog, int32_t id) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->hostSetRemove(id); });
}

int64_t kiln_bind_error(kiln_prog* prog, uint8_t* buf, uint64_t cap) {
  if (!prog || !prog->p) return 0;
  return kiln::copyOut(prog->p->bindErr.message, buf, cap);
}

int32_t kiln_bind_abort(kiln_prog* prog) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindAbort(); });
}

int32_t kiln_bind_revert(kiln_prog* prog) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindRevert(); });
}

int32_t kiln_bind_release(kiln_prog* prog) {
  return guardedBind(prog, [&](kiln::Program* p) { return p->bindRelease(); });
}

int32_t kiln_input_write(kiln_prog* prog, uint32_t index, const uint8_t* data, uint64_t length) {
  return guarded(prog, [&](kiln::Program* p) { return p->inputWrite(index, data, length); });
}

int32_t kiln_output_read(kiln_prog* prog, uint32_t index, uint8_t* data, uint64_t length) {
  return guarded(prog, [&](kiln::Program* p) { return p->outputRead(index, data, length); });
}

int32_t kiln_value_read(kiln_prog* prog, uint32_t value, uint8_t* data, uint64_t length) {
  return guarded(prog, [&](kiln::Program* p) { return p->valueRead(value, data, length); });
}

int32_t kiln_value_write(kiln_prog* prog, uint32_t value, const uint8_t* data, uint64_t length) {
  return guarded(prog, [&](kiln::Program* p) { return p->valueWrite(value, data, length); });
}

int32_t kiln_prepare_select(kiln_prog* prog, const int32_t* slots, int32_t count) {
  int32_t chosen = 0;
  const int32_t status = guarded(prog, [&](kiln::Program* p) { return p->prepareSelect(slots, count, chosen); });
  return status == KILN_OK ? chosen : status;
}

int32_t kiln_exec(kiln_prog* prog, int32_t list, int32_t pc) {
  if (prog == nullptr || prog->p == nullptr) return KILN_E_ARGUMENT;
  try {
    prog->p->err = Error();
    return prog->p->exec(list, pc);
  } catch (const std::bad_alloc&) {
    prog->p->err.fail(KILN_E_OUT_OF_MEMORY, "Out of host memory");
    return KILN_E_OUT_OF_MEMORY;
  }
}

int32_t kiln_prog_set_profiling(kiln_prog* prog, int32_t on) {
  if (prog == nullptr || prog->p == nullptr) return KILN_E_ARGUMENT;
  prog->p->setProfiling(on != 0);
  return KILN_OK;
}

int64_t kiln_prog_profile(kiln_prog* prog, uint8_t* buf, uint64_t cap) {
  if (!prog || !prog->p) return KILN_E_ARGUMENT;
  return kiln::copyOut(prog->p->profile(), buf, cap);
}

int32_t kiln_host_node(kiln_prog* prog, int32_t list, int32_t pc) {
  if (prog == nullptr || prog->p == nullptr) return KILN_E_ARGUMENT;
  return prog->p->hostNode(list, pc);
}

}  // extern "C"
