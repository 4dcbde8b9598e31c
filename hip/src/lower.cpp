#include "lower.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace kiln {

int64_t NodeView::attrInt(const char* name, int64_t dflt) const {
  auto it = n.attrs.find(name);
  return it != n.attrs.end() && it->second.kind == A_INT ? it->second.i : dflt;
}

float NodeView::attrFloat(const char* name, float dflt) const {
  auto it = n.attrs.find(name);
  if (it == n.attrs.end()) return dflt;
  if (it->second.kind == A_FLOAT) return it->second.f;
  if (it->second.kind == A_INT) return static_cast<float>(it->second.i);
  return dflt;
}

std::string NodeView::attrString(const char* name, const std::string& dflt) const {
  auto it = n.attrs.find(name);
  return it != n.attrs.end() && it->second.kind == A_STRING ? it->second.s : dflt;
}

std::vector<int64_t> NodeView::attrInts(const char* name) const {
  auto it = n.attrs.find(name);
  if (it == n.attrs.end()) return {};
  if (it->second.kind == A_INTS) return it->second.ints;
  if (it->second.kind == A_INT) return {it->second.i};
  return {};
}

std::vector<float> NodeView::attrFloats(const char* name) const {
  auto it = n.attrs.find(name);
  if (it == n.attrs.end()) return {};
  if (it->second.kind == A_FLOATS) return it->second.floats;
  if (it->second.kind == A_FLOAT) return {it->second.f};
  return {};
}

bool NodeView::constInts(int i, std::vector<int64_t>& out) const {
  if (!has(i)) return false;
  const SValue& v = in(i);
  if (v.storage != S_LITERAL || v.hostId >= 0) return false;
  const int64_t n = v.elements();
  out.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; k++) {
    if (v.dtype == DT_INT64) {
      int64_t x;
      std::memcpy(&x, v.inlineBytes.data() + k * 8, 8);
      out[static_cast<size_t>(k)] = x;
    } else if (v.dtype == DT_INT32) {
      int32_t x;
      std::memcpy(&x, v.inlineBytes.data() + k * 4, 4);
      out[static_cast<size_t>(k)] = x;
    } else {
      return false;
    }
  }
  return true;
}

bool NodeView::constDoubles(int i, std::vector<double>& out) const {
  if (!has(i)) return false;
  const SValue& v = in(i);
  if (v.storage != S_LITERAL || v.hostId >= 0) return false;
  const int64_t n = v.elements();
  out.resize(static_cast<size_t>(n));
  const uint8_t* p = v.inlineBytes.data();
  for (int64_t k = 0; k < n; k++) {
    double x;
    switch (v.dtype) {
      case DT_FLOAT: {
        float f;
        std::memcpy(&f, p + k * 4, 4);
        x = f;
        break;
      }
      case DT_DOUBLE: std::memcpy(&x, p + k * 8, 8); break;
      case DT_INT64: {
        int64_t q;
        std::memcpy(&q, p + k * 8, 8);
        x = static_cast<double>(q);
        break;
      }
      case DT_INT32: {
        int32_t q;
        std::memcpy(&q, p + k * 4, 4);
        x = q;
        break;
      }
      default: return false;
    }
    out[static_cast<size_t>(k)] = x;
  }
  return true;
}

static std::unordered_map<std::string, LowerFn>& table() {
  static std::unordered_map<std::string, LowerFn> t;
  return t;
}

void registerLowering(const char* op, LowerFn fn) { table()[op] = fn; }

std::vector<std::string> loweredOps() {
  registerAllLowerings();
  std::vector<std::string> names;
  for (const auto& e : table()) names.push_back(e.first);
  std::sort(names.begin(), names.end());
  return names;
}

LowerFn findLowering(const std::string& op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : it->second;
}

std::vector<int64_t> contiguousStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

dim3 gridFor(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
#if defined(KILN_EMU)
  const int64_t cap = 64;  // the emulator runs blocks one after another: fewer, longer blocks
#else
  const int64_t cap = 65535 * 8;
#endif
  if (blocks > cap) blocks = cap;
  return dim3(static_cast<unsigned>(blocks));
}

bool launched(Exec& x, const char* what) {
  const hipError_t e = hipGetLastError();
  if (e == hipSuccess) return true;
  return x.err->fail(KILN_E_KERNEL, std::string(what) + ": kernel launch failed: " + hipGetErrorString(e));
}

}  // namespace kiln
