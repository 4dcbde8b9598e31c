#include "schedule.h"

#include <cstring>

namespace kiln {
namespace {

constexpr uint32_t kMagic = 0x3143534b;  // "KSC1"
constexpr uint32_t kVersion = 1;
constexpr uint32_t kNone = 0xffffffffu;
constexpr uint32_t kMaxRank = 64;

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  const uint8_t* start;
  Error& err;
  Reader(const uint8_t* data, uint64_t n, Error& e) : p(data), end(data + n), start(data), err(e) {}

  bool need(uint64_t n, const char* what) {
    if (!err.ok()) return false;
    if (static_cast<uint64_t>(end - p) < n) {
      return err.fail(KILN_E_SCHEDULE, std::string("Bad schedule: truncated while reading ") + what + " at byte " +
                                           std::to_string(p - start));
    }
    return true;
  }
  template <typename T>
  T get(const char* what) {
    T v{};
    if (!need(sizeof(T), what)) return v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  uint32_t u32(const char* what) { return get<uint32_t>(what); }
  int64_t i64(const char* what) { return get<int64_t>(what); }
  std::string str(const char* what) {
    const uint32_t n = u32(what);
    if (!need(n, what)) return std::string();
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
  bool bad(const std::string& m) { return err.fail(KILN_E_SCHEDULE, "Bad schedule: " + m); }
};

bool readDims(Reader& r, int32_t& dtype, std::vector<int64_t>& dims, int64_t& bytes, const char* what) {
  dtype = static_cast<int32_t>(r.u32(what));
  const uint32_t rank = r.u32(what);
  if (!r.err.ok()) return false;
  if (rank > kMaxRank) return r.bad(std::string(what) + " has rank " + std::to_string(rank));
  dims.resize(rank);
  int64_t n = 1;
  for (uint32_t d = 0; d < rank; d++) {
    dims[d] = r.i64(what);
    if (dims[d] < 0 || dims[d] > (int64_t(1) << 40)) return r.bad(std::string(what) + " has dim " + std::to_string(dims[d]));
    n *= dims[d];
    if (n > (int64_t(1) << 46)) return r.bad(std::string(what) + " has too many elements");
  }
  bytes = r.i64(what);
  if (!r.err.ok()) return false;
  if (dtypeSize(dtype) == 0) return r.bad(std::string(what) + " has element type " + std::to_string(dtype));
  if (bytes != n * dtypeSize(dtype)) return r.bad(std::string(what) + " has " + std::to_string(bytes) + " bytes");
  return true;
}

bool readAttrs(Reader& r, std::map<std::string, Attr>& attrs, size_t modules) {
  const uint32_t n = r.u32("attribute count");
  for (uint32_t k = 0; k < n && r.err.ok(); k++) {
    const std::string name = r.str("attribute name");
    Attr a;
    a.kind = r.get<uint8_t>("attribute kind");
    switch (a.kind) {
      case A_INT: a.i = r.i64("int attribute"); break;
      case A_FLOAT: a.f = r.get<float>("float attribute"); break;
      case A_STRING: a.s = r.str("string attribute"); break;
      case A_INTS: {
        const uint32_t c = r.u32("ints attribute");
        if (!r.need(uint64_t(c) * 8, "ints attribute")) return false;
        a.ints.resize(c);
        for (uint32_t j = 0; j < c; j++) a.ints[j] = r.i64("ints attribute");
        break;
      }
      case A_FLOATS: {
        const uint32_t c = r.u32("floats attribute");
        if (!r.need(uint64_t(c) * 4, "floats attribute")) return false;
        a.floats.resize(c);
        for (uint32_t j = 0; j < c; j++) a.floats[j] = r.get<float>("floats attribute");
        break;
      }
      case A_STRINGS: {
        const uint32_t c = r.u32("strings attribute");
        for (uint32_t j = 0; j < c && r.err.ok(); j++) a.strings.push_back(r.str("strings attribute"));
        break;
      }
      case A_TENSOR: {
        a.tensorDtype = static_cast<int32_t>(r.u32("tensor attribute"));
        const uint32_t rank = r.u32("tensor attribute");
        if (rank > kMaxRank) return r.bad("tensor attribute '" + name + "' has rank " + std::to_string(rank));
        for (uint32_t j = 0; j < rank; j++) a.tensorDims.push_back(r.u32("tensor attribute"));
        const uint32_t nb = r.u32("tensor attribute");
        if (!r.need(nb, "tensor attribute")) return false;
        a.tensorBytes.assign(r.p, r.p + nb);
        r.p += nb;
        break;
      }
      case A_GRAPH:
        a.graph = static_cast<int32_t>(r.u32("graph attribute"));
        if (a.graph <= 0 || static_cast<size_t>(a.graph) >= modules) {
          return r.bad("graph attribute '" + name + "' names module " + std::to_string(a.graph));
        }
        break;
      default: return r.bad("attribute '" + name + "' has kind " + std::to_string(a.kind));
    }
    attrs[name] = std::move(a);
  }
  return r.err.ok();
}

}  // namespace

bool parseSchedule(const uint8_t* data, uint64_t length, Schedule& s, Error& err) {
  Reader r(data, length, err);
  const uint32_t magic = r.u32("header");
  const uint32_t version = r.u32("header");
  if (!err.ok()) return false;
  if (magic != kMagic) return r.bad("wrong magic number");
  if (version != kVersion) {
    return r.bad("version " + std::to_string(version) + ", this library reads " + std::to_string(kVersion));
  }
  s.opset = r.u32("header");
  const uint32_t nModules = r.u32("header");
  const uint32_t nValues = r.u32("header");
  const uint32_t nWeights = r.u32("header");
  const uint32_t nInputs = r.u32("header");
  const uint32_t nOutputs = r.u32("header");
  s.literalArenaBytes = r.i64("header");
  if (!err.ok()) return false;
  if (nModules < 1 || nModules > (1u << 20) || nValues > (1u << 26) || nWeights > nValues || nInputs > nValues ||
      s.literalArenaBytes < 0) {
    return r.bad("header counts out of range");
  }
  s.values.resize(nValues);
  for (uint32_t k = 0; k < nValues && err.ok(); k++) {
    SValue& v = s.values[k];
    v.irId = r.u32("value id");
    v.name = r.str("value name");
    if (!readDims(r, v.dtype, v.dims, v.bytes, "value")) return false;
    v.storage = r.get<uint8_t>("value storage");
    switch (v.storage) {
      case S_INPUT:
        v.index = r.u32("input index");
        if (v.index >= nInputs) return r.bad("value '" + v.name + "' is input " + std::to_string(v.index));
        break;
      case S_WEIGHT:
        v.index = r.u32("weight slot");
        if (v.index >= nWeights) return r.bad("value '" + v.name + "' is weight slot " + std::to_string(v.index));
        break;
      case S_LITERAL: {
        v.offset = r.i64("literal offset");
        const uint32_t id = r.u32("host literal id");
        if (v.offset < 0 || v.offset + v.bytes > s.literalArenaBytes) {
          return r.bad("literal '" + v.name + "' lies outside the literal arena");
        }
        if (id == kNone) {
          if (!r.need(static_cast<uint64_t>(v.bytes), "inline literal")) return false;
          v.inlineBytes.assign(r.p, r.p + v.bytes);
          r.p += v.bytes;
          v.hostId = -1;
        } else {
          v.hostId = id;
        }
        break;
      }
      case S_ARENA:
        v.index = r.u32("arena module");
        v.offset = r.i64("arena offset");
        if (v.index >= nModules || v.offset < 0) return r.bad("value '" + v.name + "' has a bad arena place");
        break;
      case S_BUFFER: break;
      case S_ALIAS:
        v.index = r.u32("alias root");
        if (v.index >= k || s.values[v.index].storage == S_ALIAS || s.values[v.index].bytes != v.bytes) {
          return r.bad("value '" + v.name + "' aliases value " + std::to_string(v.index));
        }
        break;
      default: return r.bad("value '" + v.name + "' has storage " + std::to_string(v.storage));
    }
  }
  s.weights.resize(nWeights);
  for (uint32_t k = 0; k < nWeights && err.ok(); k++) {
    SWeight& w = s.weights[k];
    w.name = r.str("weight name");
    if (!readDims(r, w.dtype, w.dims, w.bytes, "weight")) return false;
    w.location = r.str("weight location");
    w.offset = r.i64("weight offset");
    w.length = r.i64("weight length");
    w.checksum = r.str("weight checksum");
  }
  for (uint32_t k = 0; k < nInputs && err.ok(); k++) {
    const uint32_t v = r.u32("input");
    if (v >= nValues || s.values[v].storage != S_INPUT) return r.bad("input " + std::to_string(k) + " is not an input value");
    s.inputs.push_back(static_cast<int32_t>(v));
  }
  for (uint32_t k = 0; k < nOutputs && err.ok(); k++) {
    const uint32_t v = r.u32("output");
    if (v >= nValues) return r.bad("output " + std::to_string(k) + " names value " + std::to_string(v));
    s.outputs.push_back(static_cast<int32_t>(v));
    s.outputNames.push_back(r.str("output name"));
  }
  s.modules.resize(nModules);
  for (uint32_t m = 0; m < nModules && err.ok(); m++) {
    SModule& mod = s.modules[m];
    mod.name = r.str("module name");
    mod.parent = static_cast<int32_t>(r.u32("module parent"));
    mod.arenaBytes = r.i64("module arena");
    if (!err.ok()) return false;
    if ((m == 0 && mod.parent != -1) || (m > 0 && (mod.parent < 0 || static_cast<uint32_t>(mod.parent) >= m)) ||
        mod.arenaBytes < 0) {
      return r.bad("module " + std::to_string(m) + " has a bad header");
    }
    const uint32_t nNodes = r.u32("node count");
    for (uint32_t k = 0; k < nNodes && err.ok(); k++) {
      SNode n;
      n.index = static_cast<int32_t>(s.nodes.size());
      n.module = static_cast<int32_t>(m);
      n.instr = r.u32("node instruction");
      n.op = r.str("node op");
      n.name = r.str("node name");
      n.flags = r.get<uint8_t>("node flags");
      const uint32_t nin = r.u32("node inputs");
      if (nin > 4096) return r.bad("node '" + n.name + "' has " + std::to_string(nin) + " inputs");
      for (uint32_t j = 0; j < nin && err.ok(); j++) {
        const uint32_t v = r.u32("node input");
        if (v != kNone && v >= nValues) return r.bad("node '" + n.name + "' reads value " + std::to_string(v));
        n.inputs.push_back(v == kNone ? -1 : static_cast<int32_t>(v));
      }
      const uint32_t nout = r.u32("node outputs");
      if (nout > 4096) return r.bad("node '" + n.name + "' has " + std::to_string(nout) + " outputs");
      for (uint32_t j = 0; j < nout && err.ok(); j++) {
        const uint32_t v = r.u32("node output");
        if (v >= nValues) return r.bad("node '" + n.name + "' writes value " + std::to_string(v));
        n.outputs.push_back(static_cast<int32_t>(v));
      }
      if (!readAttrs(r, n.attrs, nModules)) return false;
      mod.nodes.push_back(n.index);
      s.nodes.push_back(std::move(n));
    }
    const uint32_t nRet = r.u32("module returns");
    for (uint32_t j = 0; j < nRet && err.ok(); j++) {
      const uint32_t v = r.u32("module return");
      if (v >= nValues) return r.bad("module '" + mod.name + "' returns value " + std::to_string(v));
      mod.returns.push_back(static_cast<int32_t>(v));
    }
  }
  if (!err.ok()) return false;
  if (r.p != r.end) return r.bad(std::to_string(r.end - r.p) + " trailing bytes");
  for (const SValue& v : s.values) {
    if (v.storage == S_ARENA && v.offset + v.bytes > s.modules[v.index].arenaBytes) {
      return r.bad("value '" + v.name + "' lies outside the arena of module " + std::to_string(v.index));
    }
  }
  return true;
}

}  // namespace kiln
