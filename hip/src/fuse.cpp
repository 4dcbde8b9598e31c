// Finding what to fuse (lower.h): elementwise regions, and Transposes a MatMul can fold.
//
// Elementwise regions. A region is a run of nodes that are consecutive
// in the run list of one module, each fusable (kernels/eltwise.hip), each with the same output
// dims, each after the first reading a value an earlier member produced. Consecutive keeps the
// memory plan valid: the fused kernel runs at the last member's step and reads its outside
// inputs there, and no other node ran in between to reuse their memory. A value a member
// produces is written only when something outside the region reads it (any node, an alias, a
// module return or a program output); the rest live in registers. Where a written value's
// arena range overlaps an outside input that is broadcast (read at other indices than the one
// being written), the region is not fused.
#include <algorithm>
#include <cmath>
#include <cstring>
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

/** The nodes of `module` that run, in run-list order. */
std::vector<int32_t> runOrder(const Schedule& s, int32_t module, const std::vector<bool>& runs) {
  std::vector<int32_t> order;
  for (int32_t ni : s.modules[static_cast<size_t>(module)].nodes) {
    if (runs[static_cast<size_t>(ni)]) order.push_back(ni);
  }
  return order;
}

/** `v` is read by one node only and need not exist in memory (no alias, output or return). */
bool singleUse(const Schedule& s, const ValueUses& uses, int32_t v) {
  return s.values[static_cast<size_t>(v)].storage != S_ALIAS && !uses.pinned[static_cast<size_t>(v)] &&
         uses.readers[static_cast<size_t>(v)].size() == 1;
}

/** Value `v`'s bytes lie over those of one of `n`'s inputs (alias roots compared). */
bool overlapsInputs(const Schedule& s, const SNode& n, int32_t v) {
  const SValue& out = s.values[static_cast<size_t>(rootOf(s, v))];
  for (int32_t in : n.inputs) {
    if (in >= 0 && overlaps(out, s.values[static_cast<size_t>(rootOf(s, in))])) return true;
  }
  return false;
}

}  // namespace

ValueUses valueUses(const Schedule& s) {
  ValueUses u;
  u.readers.resize(s.values.size());
  for (const SNode& n : s.nodes) {
    for (int32_t x : n.inputs) {
      if (x >= 0) u.readers[static_cast<size_t>(rootOf(s, x))].push_back(n.index);
    }
  }
  u.pinned.assign(s.values.size(), false);
  for (int32_t o : s.outputs) u.pinned[static_cast<size_t>(rootOf(s, o))] = true;
  for (const SModule& m : s.modules) {
    for (int32_t r : m.returns) {
      if (r >= 0) u.pinned[static_cast<size_t>(rootOf(s, r))] = true;
    }
  }
  for (size_t v = 0; v < s.values.size(); v++) {
    if (s.values[v].storage == S_ALIAS) u.pinned[s.values[v].index] = true;
  }
  return u;
}

std::vector<FusedRegion> findElementwiseRegions(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                                const ValueUses& uses) {
  const std::vector<std::vector<int32_t>>& readers = uses.readers;
  const std::vector<bool>& pinned = uses.pinned;

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

// ---- Transposes folded into MatMuls ----
// An attention block reshapes Q, K and V into heads and transposes them for its two batched
// MatMuls, and transposes the result back: five Transposes per layer whose copies a GEMM can
// avoid, reading the Transpose's input (or writing the Transpose's output) through strides.
// The memory plan was made for the copies, so a fold must not let anything overwrite the
// Transpose's input before the MatMul reads it (no node in between writes over it, nor does the
// MatMul's own output), and a folded output, written at the MatMul's step, must follow it
// directly and not lie over what the MatMul reads. The MatMul's lowering has the last word: it
// refuses views that fit no GEMM layout or would take more than one strided-batched call.

namespace {

std::vector<int64_t> permOf(const Schedule& s, const SNode& t) {
  const int64_t r = static_cast<int64_t>(s.values[static_cast<size_t>(t.inputs[0])].dims.size());
  std::vector<int64_t> perm;
  auto it = t.attrs.find("perm");
  if (it != t.attrs.end()) perm = it->second.ints;
  if (perm.empty()) {
    for (int64_t i = r - 1; i >= 0; i--) perm.push_back(i);
  }
  std::vector<bool> seen(static_cast<size_t>(r), false);
  if (static_cast<int64_t>(perm.size()) != r) return {};
  for (int64_t p : perm) {
    if (p < 0 || p >= r || seen[static_cast<size_t>(p)]) return {};
    seen[static_cast<size_t>(p)] = true;
  }
  return perm;
}

}  // namespace

namespace {

/**
 * The dims and strides of `dims`/`strides` reshaped to `to` without moving any element (as numpy's
 * no-copy reshape): each run of old dims merged or split must be laid out contiguously relative to
 * itself. False when the reshape needs a copy.
 */
bool reshapeView(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, const std::vector<int64_t>& to,
                 std::vector<int64_t>& out) {
  std::vector<int64_t> od, os;  // the old dims without the unit ones
  for (size_t i = 0; i < dims.size(); i++) {
    if (dims[i] == 0) return false;
    if (dims[i] != 1) {
      od.push_back(dims[i]);
      os.push_back(strides[i]);
    }
  }
  out.assign(to.size(), 0);
  size_t oi = 0, ni = 0;
  while (ni < to.size() || oi < od.size()) {
    if (ni < to.size() && to[ni] == 1) {  // a unit dim: any stride
      out[ni] = 0;
      ni++;
      continue;
    }
    if (ni >= to.size() || oi >= od.size()) return false;
    // the smallest runs of old dims [oi, oj) and new dims [ni, nj) of equal products
    size_t oj = oi + 1, nj = ni + 1;
    int64_t po = od[oi], pn = to[ni];
    while (po != pn) {
      if (po < pn) {
        if (oj >= od.size()) return false;
        po *= od[oj++];
      } else {
        if (nj >= to.size()) return false;
        pn *= to[nj++];
      }
    }
    for (size_t k = oi; k + 1 < oj; k++) {
      if (os[k] != os[k + 1] * od[k + 1]) return false;  // the old run is not contiguous in itself
    }
    int64_t st = os[oj - 1];
    for (size_t k = nj; k-- > ni;) {
      out[k] = to[k] == 1 ? 0 : st;
      st *= to[k];
    }
    oi = oj;
    ni = nj;
  }
  return true;
}

/** The scale of a Mul or Div node by a finite, non-zero float scalar literal, and its other input. */
bool scalingOf(const Schedule& s, const SNode& n, int32_t& x, double& scale) {
  if ((n.op != "Mul" && n.op != "Div") || n.inputs.size() != 2 || n.outputs.size() != 1) return false;
  for (int side = 0; side < 2; side++) {
    if (n.op == "Div" && side == 0) continue;  // c / x is no scaling of x
    const int32_t c = n.inputs[static_cast<size_t>(side)], other = n.inputs[static_cast<size_t>(1 - side)];
    if (c < 0 || other < 0) return false;
    const SValue& cv = s.values[static_cast<size_t>(c)];
    const SValue& ov = s.values[static_cast<size_t>(other)];
    if (cv.storage != S_LITERAL || cv.hostId >= 0 || cv.dtype != DT_FLOAT || cv.elements() != 1) continue;
    if (ov.dtype != DT_FLOAT || ov.dims != s.values[static_cast<size_t>(n.outputs[0])].dims) return false;
    float f;
    std::memcpy(&f, cv.inlineBytes.data(), 4);
    if (!std::isfinite(f) || f == 0.0f) return false;
    x = other;
    scale = n.op == "Div" ? 1.0 / static_cast<double>(f) : static_cast<double>(f);
    return true;
  }
  return false;
}

}  // namespace

/**
 * Operand `operand` of MatMul `mm` as a strided view of a value further up: walks back through
 * Transposes, reshaping aliases (Reshape, Flatten, Squeeze, Unsqueeze: the same bytes) and
 * scalings by a constant, as long as each value passed is read by the chain alone (no other
 * reader of it or of an alias of it, not a program output), then keeps the longest chain whose
 * view a GEMM reads and that folds at least one node away. The chain's start must not be
 * overwritten between the chain's first node and the MatMul, nor lie under the MatMul's output.
 */
bool operandChain(const Schedule& s, const SNode& mm, int operand, size_t pos, const std::vector<int32_t>& order,
                  const std::vector<int32_t>& at, const std::vector<bool>& runs, const ValueUses& uses,
                  const std::vector<int32_t>& producer, const std::vector<bool>& outPinned,
                  const std::vector<bool>& used, TransposeFold& f) {
  auto value = [&](int32_t v) -> const SValue& { return s.values[static_cast<size_t>(rootOf(s, v))]; };
  struct Step {
    int32_t node;  // the node that makes `out` from `in`
    int32_t in, out;
    int kind;  // 0 Transpose, 1 alias, 2 scaling
    double scale;
  };
  std::vector<Step> steps;  // from the MatMul back
  int32_t cur = mm.inputs[static_cast<size_t>(operand)];
  for (int guard = 0; guard < 16; guard++) {
    const int32_t p = producer[static_cast<size_t>(cur)];
    if (p < 0 || p == mm.index) break;
    const SNode& n = s.nodes[static_cast<size_t>(p)];
    if (n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0] < 0) break;
    const SValue& cv = s.values[static_cast<size_t>(cur)];
    Step st{p, n.inputs[0], cur, -1, 1.0};
    if (cv.storage == S_ALIAS && rootOf(s, n.inputs[0]) == static_cast<int32_t>(cv.index) &&
        s.values[static_cast<size_t>(n.inputs[0])].elements() == cv.elements()) {
      st.kind = 1;
    } else if (runs[static_cast<size_t>(p)] && !used[static_cast<size_t>(p)] && n.op == "Transpose" &&
               n.inputs.size() == 1 && s.values[static_cast<size_t>(n.inputs[0])].dtype == DT_FLOAT &&
               !permOf(s, n).empty()) {
      st.kind = 0;
    } else if (runs[static_cast<size_t>(p)] && !used[static_cast<size_t>(p)] && scalingOf(s, n, st.in, st.scale)) {
      st.kind = 2;
    } else {
      break;
    }
    steps.push_back(st);
    cur = st.in;
  }
  // the longest valid chain first
  for (size_t len = steps.size(); len > 0; len--) {
    // every value the chain passes through (the step outputs) read by the chain alone
    std::set<int32_t> members{mm.index};
    for (size_t i = 0; i < len; i++) members.insert(steps[i].node);
    bool ok = true;
    int transposes = 0, scalings = 0;
    int32_t first = -1;
    for (size_t i = 0; i < len && ok; i++) {
      const int32_t r = rootOf(s, steps[i].out);
      if (outPinned[static_cast<size_t>(r)]) ok = false;
      for (int32_t reader : uses.readers[static_cast<size_t>(r)]) {
        if (!members.count(reader)) ok = false;
      }
      if (steps[i].kind == 0) transposes++;
      if (steps[i].kind == 2) scalings++;
      if (steps[i].kind != 1) first = steps[i].node;  // the earliest running node so far
    }
    if (!ok || transposes + scalings == 0 || first < 0) continue;
    const int32_t x = steps[len - 1].in;
    const SValue& xv = value(x);
    // nothing overwrites x between the chain's first node and the MatMul; the output is elsewhere
    bool safe = !overlaps(value(mm.outputs[0]), xv);
    for (int32_t p = at[static_cast<size_t>(first)] + 1; p < static_cast<int32_t>(pos) && safe; p++) {
      for (int32_t o : s.nodes[static_cast<size_t>(order[static_cast<size_t>(p)])].outputs) {
        if (o >= 0 && overlaps(value(o), xv)) safe = false;
      }
    }
    if (!safe) continue;
    // the view, forward from x
    std::vector<int64_t> dims = s.values[static_cast<size_t>(x)].dims;
    std::vector<int64_t> strides(dims.size(), 1);
    for (size_t d = dims.size(); d-- > 1;) strides[d - 1] = strides[d] * dims[d];
    double alpha = 1.0;
    for (size_t i = len; i-- > 0 && ok;) {
      const Step& st = steps[i];
      const std::vector<int64_t>& to = s.values[static_cast<size_t>(st.out)].dims;
      if (st.kind == 0) {
        const std::vector<int64_t> perm = permOf(s, s.nodes[static_cast<size_t>(st.node)]);
        std::vector<int64_t> nd, ns;
        for (int64_t q : perm) {
          nd.push_back(dims[static_cast<size_t>(q)]);
          ns.push_back(strides[static_cast<size_t>(q)]);
        }
        dims = nd;
        strides = ns;
      } else if (st.kind == 1) {
        std::vector<int64_t> ns;
        if (!reshapeView(dims, strides, to, ns)) ok = false;
        dims = to;
        strides = ns;
      } else {
        alpha *= st.scale;
      }
      if (ok && dims != to) ok = false;
    }
    if (!ok) continue;
    f.matmul = mm.index;
    f.operand = operand;
    f.view.value = x;
    f.view.dims = dims;
    f.view.strides = strides;
    f.alpha = static_cast<float>(alpha);
    f.transposes = transposes;
    f.gone.clear();
    for (size_t i = 0; i < len; i++) {
      if (steps[i].kind != 1) f.gone.push_back(steps[i].node);
    }
    f.transpose = f.gone.front();
    return true;
  }
  return false;
}

std::vector<TransposeFold> findTransposeFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                              const ValueUses& uses) {
  const std::vector<std::vector<int32_t>>& readers = uses.readers;
  const std::vector<bool>& pinned = uses.pinned;
  // the run list of the module, in order, and each node's position in it
  std::vector<int32_t> order;
  std::vector<int32_t> at(s.nodes.size(), -1);
  for (int32_t ni : s.modules[static_cast<size_t>(module)].nodes) {
    if (!runs[static_cast<size_t>(ni)]) continue;
    at[static_cast<size_t>(ni)] = static_cast<int32_t>(order.size());
    order.push_back(ni);
  }
  auto value = [&](int32_t v) -> const SValue& { return s.values[static_cast<size_t>(rootOf(s, v))]; };
  auto isTranspose = [&](int32_t ni) {
    const SNode& n = s.nodes[static_cast<size_t>(ni)];
    return n.op == "Transpose" && n.inputs.size() == 1 && n.inputs[0] >= 0 && n.outputs.size() == 1 &&
           s.values[static_cast<size_t>(n.inputs[0])].dtype == DT_FLOAT && !permOf(s, n).empty();
  };
  std::vector<TransposeFold> out;
  std::vector<bool> used(s.nodes.size(), false);  // a Transpose folds into one MatMul at most
  // each value's producer in the module (running nodes and aliases), and the values the program
  // or a module returns
  std::vector<int32_t> producer(s.values.size(), -1);
  for (int32_t ni : s.modules[static_cast<size_t>(module)].nodes) {
    for (int32_t o : s.nodes[static_cast<size_t>(ni)].outputs) {
      if (o >= 0) producer[static_cast<size_t>(o)] = ni;
    }
  }
  std::vector<bool> outPinned(s.values.size(), false);
  for (int32_t o : s.outputs) outPinned[static_cast<size_t>(rootOf(s, o))] = true;
  for (const SModule& md : s.modules) {
    for (int32_t r : md.returns) {
      if (r >= 0) outPinned[static_cast<size_t>(rootOf(s, r))] = true;
    }
  }
  for (size_t pos = 0; pos < order.size(); pos++) {
    const SNode& mm = s.nodes[static_cast<size_t>(order[pos])];
    if (mm.op != "MatMul" || mm.inputs.size() != 2 || mm.inputs[0] < 0 || mm.inputs[1] < 0 || mm.outputs.size() != 1) {
      continue;
    }
    // operands A and B produced by a chain of Transposes, reshaping aliases and scalings that
    // only this MatMul reads (see operandChain)
    for (int operand = 0; operand < 2; operand++) {
      TransposeFold f;
      if (!operandChain(s, mm, operand, pos, order, at, runs, uses, producer, outPinned, used, f)) continue;
      for (int32_t g : f.gone) used[static_cast<size_t>(g)] = true;
      out.push_back(std::move(f));
    }
    // the output, when the next node of the run list is a Transpose of it, its only reader
    const int32_t c = mm.outputs[0];
    if (pos + 1 < order.size() && !pinned[static_cast<size_t>(c)] && s.values[static_cast<size_t>(c)].storage != S_ALIAS &&
        readers[static_cast<size_t>(c)].size() == 1 && readers[static_cast<size_t>(c)][0] == order[pos + 1] &&
        !used[static_cast<size_t>(order[pos + 1])] && isTranspose(order[pos + 1])) {
      const SNode& t = s.nodes[static_cast<size_t>(order[pos + 1])];
      const int32_t y = t.outputs[0];
      const SValue& yv = value(y);
      bool safe = true;
      for (const TransposeFold& f : out) {
        if (f.matmul == mm.index && overlaps(yv, value(f.view.value))) safe = false;
      }
      for (int32_t in : mm.inputs) {
        if (overlaps(yv, value(in))) safe = false;
      }
      if (safe) {
        const std::vector<int64_t> perm = permOf(s, t);
        const std::vector<int64_t>& cd = s.values[static_cast<size_t>(c)].dims;
        const std::vector<int64_t>& yd = s.values[static_cast<size_t>(y)].dims;
        std::vector<int64_t> ys(yd.size(), 1);
        for (size_t d = yd.size(); d-- > 1;) ys[d - 1] = ys[d] * yd[d];
        TransposeFold f;
        f.matmul = mm.index;
        f.transpose = order[pos + 1];
        f.gone = {order[pos + 1]};
        f.operand = 2;
        f.view.value = y;
        f.view.dims = cd;
        f.view.strides.assign(cd.size(), 0);
        for (size_t j = 0; j < perm.size(); j++) f.view.strides[static_cast<size_t>(perm[j])] = ys[j];
        used[static_cast<size_t>(order[pos + 1])] = true;
        out.push_back(std::move(f));
      }
    }
  }
  return out;
}

// ---- Relus applied by the Conv before them ----
// ResNet-style graphs follow most Convs with a Relu: the Conv's bias pass rectifies too and writes
// the Relu's output, one pass over the activations instead of two. The Relu must come next in
// the run list and be the only reader of the Conv's output, and its output must not lie over
// what the Conv reads (the Conv writes it chunk by chunk while im2col still reads X).

std::vector<ConvReluFold> findConvReluFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                            const ValueUses& uses) {
  const std::vector<int32_t> order = runOrder(s, module, runs);
  std::vector<ConvReluFold> out;
  for (size_t pos = 0; pos + 1 < order.size(); pos++) {
    const SNode& c = s.nodes[static_cast<size_t>(order[pos])];
    const SNode& r = s.nodes[static_cast<size_t>(order[pos + 1])];
    if (c.op != "Conv" || c.outputs.size() != 1 || r.op != "Relu" || r.inputs.size() != 1 || r.outputs.size() != 1) {
      continue;
    }
    const int32_t y = c.outputs[0], z = r.outputs[0];
    if (y < 0 || z < 0 || r.inputs[0] != y) continue;
    const SValue& yv = s.values[static_cast<size_t>(y)];
    const SValue& zv = s.values[static_cast<size_t>(z)];
    if (!singleUse(s, uses, y)) continue;
    if (yv.dtype != DT_FLOAT || zv.dtype != DT_FLOAT || yv.dims != zv.dims) continue;
    if (!overlapsInputs(s, c, z)) out.push_back(ConvReluFold{c.index, r.index});
  }
  return out;
}

// ---- residual block ends run by the DNN library ----
// Conv -> Add(its output, z) -> Relu, consecutive: the library computes Relu(conv + bias + z) in one
// call and writes the Relu's output; the Conv's and the Add's outputs are never written. Only the
// Relu's output is written at the Conv's step, so it must not lie over the Conv's inputs; over z
// it may lie exactly (the planner often gives the Relu z's range: the library reads z before
// writing that element), not in part.

std::vector<ConvResidualFold> findConvResidualFolds(const Schedule& s, int32_t module, const std::vector<bool>& runs,
                                                    const ValueUses& uses) {
  const std::vector<int32_t> order = runOrder(s, module, runs);
  auto value = [&](int32_t v) -> const SValue& { return s.values[static_cast<size_t>(rootOf(s, v))]; };
  std::vector<ConvResidualFold> out;
  for (size_t pos = 0; pos + 2 < order.size(); pos++) {
    const SNode& c = s.nodes[static_cast<size_t>(order[pos])];
    const SNode& a = s.nodes[static_cast<size_t>(order[pos + 1])];
    const SNode& r = s.nodes[static_cast<size_t>(order[pos + 2])];
    if (c.op != "Conv" || c.outputs.size() != 1 || a.op != "Add" || a.inputs.size() != 2 || a.outputs.size() != 1 ||
        r.op != "Relu" || r.inputs.size() != 1 || r.outputs.size() != 1) {
      continue;
    }
    const int32_t y = c.outputs[0], sum = a.outputs[0], o = r.outputs[0];
    if (y < 0 || sum < 0 || o < 0 || r.inputs[0] != sum) continue;
    const int side = a.inputs[0] == y ? 1 : a.inputs[1] == y ? 0 : -1;
    if (side < 0) continue;
    const int32_t z = a.inputs[static_cast<size_t>(side)];
    if (z < 0 || z == y || !singleUse(s, uses, y) || !singleUse(s, uses, sum)) continue;
    const SValue& yv = s.values[static_cast<size_t>(y)];
    const SValue& zv = value(z);
    const SValue& sv = s.values[static_cast<size_t>(sum)];
    const SValue& ov = s.values[static_cast<size_t>(o)];
    bool ok = yv.dtype == DT_FLOAT && zv.dtype == DT_FLOAT && sv.dtype == DT_FLOAT && ov.dtype == DT_FLOAT &&
              zv.dims == yv.dims && sv.dims == yv.dims && ov.dims == yv.dims && !overlapsInputs(s, c, o);
    const SValue& ro = value(o);
    const bool same = ro.storage == zv.storage && ro.index == zv.index && ro.offset == zv.offset && ro.bytes == zv.bytes;
    if (overlaps(ro, zv) && !same) ok = false;
    if (ok) out.push_back(ConvResidualFold{c.index, a.index, r.index, z});
  }
  return out;
}

}  // namespace kiln
