// Finding elementwise regions to fuse (lower.h). A region is a run of nodes that are consecutive
// in the run list of one module, each fusable (kernels/eltwise.hip), each with the same output
// dims, each after the first reading a value an earlier member produced. Consecutive keeps the
// memory plan valid: the fused kernel runs at the last member's step and reads its outside
// inputs there, and no other node ran in between to reuse their memory. A value a member
// produces is written only when something outside the region reads it (any node, an alias, a
// module return or a program output); the rest live in registers. Where a written value's
// arena range overlaps an outside input that is broadcast (read at other indices than the one
// being written), the region is not fused.
#include <algorithm>
#include <set>

#include "lower.h"

namespace kiln {
namespace {

int32_t rootOf(const Schedule& s, int32_t v) {
  const SValue& x = s.values[static_cast<size_t>(v)];
  return x.storage == S_ALIAS ? static_cast<int32_t>(x.index) : v;
}

bool overlaps(const SValue& a, const SValue& b) {
  if (a.storage != S_ARENA || b.storage != S_ARENA || a.index != b.index) return false;
  return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

}  // namespace

std::vector<FusedRegion> findElementwiseRegions(const Schedule& s, int32_t module, const std::vector<bool>& runs) {
  // who reads each value (by root), and which values must exist in memory regardless
  std::vector<std::vector<int32_t>> readers(s.values.size());
  for (const SNode& n : s.nodes) {
    for (int32_t x : n.inputs) {
      if (x >= 0) readers[static_cast<size_t>(rootOf(s, x))].push_back(n.index);
    }
  }
  std::vector<bool> pinned(s.values.size(), false);
  for (int32_t o : s.outputs) pinned[static_cast<size_t>(rootOf(s, o))] = true;
  for (const SModule& m : s.modules) {
    for (int32_t r : m.returns) {
      if (r >= 0) pinned[static_cast<size_t>(rootOf(s, r))] = true;
    }
  }
  for (size_t v = 0; v < s.values.size(); v++) {
    if (s.values[v].storage == S_ALIAS) pinned[s.values[v].index] = true;
  }

  std::vector<FusedRegion> out;
  std::vector<int32_t> cur;
  std::vector<int64_t> curDims;
  std::set<int32_t> produced;
  auto close = [&]() {
    if (cur.size() >= 2) {
      FusedRegion r;
      r.nodes = cur;
      r.dims = curDims;
      std::set<int32_t> members(cur.begin(), cur.end());
      for (int32_t ni : cur) {
        const SNode& n = s.nodes[static_cast<size_t>(ni)];
        for (int32_t x : n.inputs) {
          if (x >= 0 && !produced.count(x) && std::find(r.inputs.begin(), r.inputs.end(), x) == r.inputs.end()) {
            r.inputs.push_back(x);
          }
        }
        const int32_t y = n.outputs[0];
        bool used = pinned[static_cast<size_t>(y)];
        for (int32_t reader : readers[static_cast<size_t>(y)]) used = used || !members.count(reader);
        if (used) r.outputs.push_back(y);
      }
      bool safe = r.inputs.size() <= static_cast<size_t>(kFuseMaxInputs) &&
                  r.outputs.size() <= static_cast<size_t>(kFuseMaxOutputs) && !r.outputs.empty();
      for (size_t i = 0; i < r.outputs.size(); i++) {
        const SValue& yv = s.values[static_cast<size_t>(r.outputs[i])];
        // an input in the same memory is safe only when read at the very index being written
        for (int32_t x : r.inputs) {
          const SValue& xv = s.values[static_cast<size_t>(rootOf(s, x))];
          if (overlaps(yv, xv) && !(xv.dims == r.dims && xv.offset == yv.offset)) safe = false;
        }
        for (size_t j = i + 1; j < r.outputs.size(); j++) {
          if (overlaps(yv, s.values[static_cast<size_t>(r.outputs[j])])) safe = false;
        }
      }
      if (safe) out.push_back(std::move(r));
    }
    cur.clear();
    produced.clear();
  };
  for (int32_t ni : s.modules[static_cast<size_t>(module)].nodes) {
    if (!runs[static_cast<size_t>(ni)]) {
      // a node outside the run list (skipped, hoisted into prepare) is not a step between members
      const SNode& n = s.nodes[static_cast<size_t>(ni)];
      if (!(n.flags & (N_SKIP | N_PREPARE))) close();
      continue;
    }
    const SNode& n = s.nodes[static_cast<size_t>(ni)];
    NodeView v{s, n};
    if (!fusableElementwise(v)) {
      close();
      continue;
    }
    const std::vector<int64_t>& dims = v.out(0).dims;
    bool joins = !cur.empty() && dims == curDims && cur.size() < static_cast<size_t>(kFuseMaxOps);
    if (joins) {
      bool reads = false;
      for (int32_t x : n.inputs) {
        if (x < 0) continue;
        reads = reads || produced.count(x);
        // a member's value read through an alias is read from memory the region writes at once
        if (!produced.count(x) && produced.count(rootOf(s, x))) joins = false;
      }
      joins = joins && reads;
    }
    if (joins) {
      // outside inputs would pass the limit: start over from this node
      std::set<int32_t> ins;
      for (int32_t m : cur) {
        for (int32_t x : s.nodes[static_cast<size_t>(m)].inputs) {
          if (x >= 0 && !produced.count(x)) ins.insert(x);
        }
      }
      for (int32_t x : n.inputs) {
        if (x >= 0 && !produced.count(x)) ins.insert(x);
      }
      joins = ins.size() <= static_cast<size_t>(kFuseMaxInputs);
    }
    if (!joins) {
      close();
      curDims = dims;
    }
    cur.push_back(ni);
    produced.insert(n.outputs[0]);
  }
  close();
  return out;
}

}  // namespace kiln
