#include "common.h"

#include <cstdio>
#include <cstring>

namespace kiln {

int dtypeSize(int32_t dt) {
  switch (dt) {
    case DT_FLOAT: return 4;
    case DT_UINT8: return 1;
    case DT_INT8: return 1;
    case DT_UINT16: return 2;
    case DT_INT16: return 2;
    case DT_INT32: return 4;
    case DT_INT64: return 8;
    case DT_BOOL: return 1;
    case DT_FLOAT16: return 2;
    case DT_DOUBLE: return 8;
    case DT_UINT32: return 4;
    case DT_UINT64: return 8;
    case DT_BFLOAT16: return 2;
    default: return 0;
  }
}

const char* dtypeName(int32_t dt) {
  switch (dt) {
    case DT_FLOAT: return "float32";
    case DT_UINT8: return "uint8";
    case DT_INT8: return "int8";
    case DT_UINT16: return "uint16";
    case DT_INT16: return "int16";
    case DT_INT32: return "int32";
    case DT_INT64: return "int64";
    case DT_BOOL: return "bool";
    case DT_FLOAT16: return "float16";
    case DT_DOUBLE: return "float64";
    case DT_UINT32: return "uint32";
    case DT_UINT64: return "uint64";
    case DT_BFLOAT16: return "bfloat16";
    default: return "unknown";
  }
}

bool hipCheck(hipError_t e, const char* what, Error& err) {
  if (e == hipSuccess) return true;
  const int32_t status = e == hipErrorOutOfMemory ? KILN_E_OUT_OF_MEMORY : KILN_E_DEVICE;
  return err.fail(status, std::string(what) + ": " + hipGetErrorString(e));
}

// decimal units (kB, MB, GB = 1e3, 1e6, 1e9 bytes), as the rest of kiln reports sizes
std::string formatBytes(uint64_t n) {
  char buf[64];
  if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f GB", double(n) / 1e9);
  else if (n >= 1000000ull) std::snprintf(buf, sizeof buf, "%.1f MB", double(n) / 1e6);
  else if (n >= 1000ull) std::snprintf(buf, sizeof buf, "%.1f kB", double(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

int64_t copyOut(const std::string& s, uint8_t* buf, uint64_t cap) {
  if (buf != nullptr && cap > 0) std::memcpy(buf, s.data(), s.size() < cap ? s.size() : cap);
  return static_cast<int64_t>(s.size());
}

void jsonString(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace kiln
