#include "program.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

#include "kernels/gemm.h"

namespace kiln {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t alignUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string nodeLabel(const SNode& n) { return "node '" + n.name + "' (" + n.op + ")"; }

}  // namespace

Program* Program::create(Context* ctx, const uint8_t* schedule, uint64_t length, uint32_t flags, Error& err) {
  std::unique_ptr<Program> p(new Program());
  p->ctx_ = ctx;
  if (!parseSchedule(schedule, length, p->s_, err)) return nullptr;
  hipSetDevice(ctx->device());
  if (!hipCheck(hipStreamCreateWithFlags(&p->stream_, hipStreamNonBlocking), "hipStreamCreateWithFlags", err) ||
      !hipCheck(hipStreamCreateWithFlags(&p->uploadStream_, hipStreamNonBlocking), "hipStreamCreateWithFlags", err)) {
    return nullptr;
  }
  if (!p->lower(flags) || !p->allocate()) {
    err = p->err;
    return nullptr;
  }
  return p.release();
}

Program::~Program() {
  hipSetDevice(ctx_->device());
  if (stream_) hipStreamSynchronize(stream_);
  releaseGraphs();
  for (hipEvent_t e : events_) hipEventDestroy(e);
  blas_.reset();
  dnn_.reset();
  ctx_->release(blasWorkspace_, Blas::kWorkspaceBytes);
  dropStaged();
  for (size_t i = 0; i < slots_.size(); i++) {
    const uint64_t bytes = static_cast<uint64_t>(s_.weights[i].bytes);
    const Slot& s = slots_[i];
    ctx_->release(s.ptr, bytes);
    ctx_->release(s.base, bytes);
    if (s.prevPtr != s.ptr && s.prevPtr != s.base) ctx_->release(s.prevPtr, bytes);
    if (s.prevBase != s.ptr && s.prevBase != s.base) ctx_->release(s.prevBase, bytes);
  }
  releaseSpares();
  for (ResidentSet& r : sets_) {
    for (size_t i = 0; i < r.ptrs.size(); i++) ctx_->release(r.ptrs[i], static_cast<uint64_t>(s_.weights[i].bytes));
  }
  for (HostSet& h : hostSets_) {
    for (char* p : h.host) {
      if (p) hipHostFree(p);
    }
  }
  ctx_->release(block_, blockBytes_);
  if (stream_) hipStreamDestroy(stream_);
  if (uploadStream_) hipStreamDestroy(uploadStream_);
}

// ---- lowering and memory -------------------------------------------------------------------

bool Program::lower(uint32_t flags) {
  registerAllLowerings();
  kernels_.resize(s_.nodes.size());
  hostReasons_.assign(s_.nodes.size(), "");
  bool anyGemm = false;
  for (const SNode& n : s_.nodes) {
    if (n.flags & N_SKIP) continue;
    if (n.op == "If") {
      auto t = n.attrs.find("then_branch");
      auto e = n.attrs.find("else_branch");
      if (t == n.attrs.end() || e == n.attrs.end() || t->second.graph < 0 || e->second.graph < 0 ||
          n.inputs.empty() || n.inputs[0] < 0) {
        return err.fail(KILN_E_SCHEDULE, "Bad schedule: " + nodeLabel(n) + " lacks its branches or condition");
      }
      continue;
    }
    LowerFn fn = findLowering(n.op);
    std::string why;
    std::unique_ptr<Kernel> k;
    if (fn == nullptr) {
      why = "no device kernel for " + n.op;
    } else {
      k = fn(NodeView{s_, n}, why);
      if (!k && why.empty()) why = "no device kernel for this case of " + n.op;
    }
    if (k) {
      k->node = n.index;
      if (k->blas) anyGemm = true;
      kernels_[static_cast<size_t>(n.index)] = std::move(k);
    } else {
      hostReasons_[static_cast<size_t>(n.index)] = why;
    }
  }
  if (anyGemm && !(flags & KILN_PROG_NO_VENDOR_BLAS)) {
    blas_.reset(Blas::create(stream_, blasWhy_));
    if (flags & KILN_PROG_TF32) {
      if (!blas_) precisionWhy_ = "TF32 needs the vendor BLAS: " + blasWhy_;
      else if (!blas_->setTf32()) precisionWhy_ = "TF32 is not available in " + blas_->name();
      else tf32_ = true;
    }
    if (blas_ && blas_->wantsWorkspace()) {
      // counted against the context's memory limit like the program's other buffers
      Error e;
      blasWorkspace_ = ctx_->alloc(Blas::kWorkspaceBytes, "the BLAS workspace", e);
      if (blasWorkspace_ && !blas_->setWorkspace(blasWorkspace_, Blas::kWorkspaceBytes)) {
        ctx_->release(blasWorkspace_, Blas::kWorkspaceBytes);
        blasWorkspace_ = nullptr;
      }
    }
  } else if (flags & KILN_PROG_NO_VENDOR_BLAS) {
    blasWhy_ = "vendor BLAS disabled by the caller";
  } else {
    blasWhy_ = "the program has no GEMM";
  }
  if ((flags & KILN_PROG_TF32) && !tf32_ && precisionWhy_.empty()) {
    precisionWhy_ = (flags & KILN_PROG_NO_VENDOR_BLAS) ? "TF32 needs the vendor BLAS (disabled by the caller)"
                                                       : "the program has no GEMM";
  }
  openDnn(flags);
  if (!(flags & KILN_PROG_NO_FUSION)) fuse();
  attachDnn();
  planChannelsLast();
  planHalf(flags);
  // the workspace is what the kernels as they finally run ask for (fused, folded, or attached to
  // the DNN library: an attached Conv needs no im2col buffer)
  workspaceBytes_ = 0;
  for (const auto& k : kernels_) {
    if (k && k->workspace > workspaceBytes_) workspaceBytes_ = k->workspace;
  }
  emitModule(0, run_);
  // the run list is replayed as a graph when the device can run all of it without the host
  graphs_ = !(flags & KILN_PROG_NO_GRAPHS);
  if (!graphs_) graphWhy_ = "graphs disabled by the caller";
  for (const Step& st : run_) {
    if (!graphs_) break;
    if (st.kind == ST_HOST) {
      disableGraphs("node '" + s_.nodes[static_cast<size_t>(st.node)].name + "' runs on the host");
    } else if (st.kind == ST_BRANCH) {
      disableGraphs("If node '" + s_.nodes[static_cast<size_t>(st.node)].name + "' branches on the host");
    }
  }
  for (int32_t ni : s_.modules[0].nodes) {
    const SNode& n = s_.nodes[static_cast<size_t>(ni)];
    if ((n.flags & N_PREPARE) && !(n.flags & N_SKIP)) prepareNodes_.push_back(ni);
  }
  slots_.resize(s_.weights.size());
  return true;
}

void Program::openDnn(uint32_t flags) {
  // the 16-bit modes keep Conv tensors float32: cuDNN runs them with TF32 math (info says so)
  dnnTf32_ = (flags & (KILN_PROG_TF32 | KILN_PROG_FP16 | KILN_PROG_BF16)) != 0;
  bool any = false;
  for (const auto& k : kernels_) any = any || (k && k->dnn);
  if (!any) {
    dnnWhy_ = "the program has no Conv";
  } else if (flags & KILN_PROG_NO_VENDOR_DNN) {
    dnnWhy_ = "vendor DNN library disabled by the caller";
  } else {
    dnn_.reset(Dnn::create(stream_, dnnWhy_));
  }
}

void Program::attachDnn() {
  if (dnn_) {
    for (auto& k : kernels_) {
      if (!k || !k->dnn) continue;
      std::string why;
      if (k->attachDnn(*dnn_, dnnTf32_, why)) {
        dnnKernels_++;
        if (k->dnnGraph()) dnnGraph_++;
      } else {
        if (dnnMissWhy_.empty()) dnnMissWhy_ = nodeLabel(s_.nodes[static_cast<size_t>(k->node)]) + ": " + why;
        dnnMisses_++;
      }
    }
  }
}

void Program::planHalf(uint32_t flags) {
  half_ = (flags & KILN_PROG_BF16) ? H_BF16 : (flags & KILN_PROG_FP16) ? H_FP16 : H_NONE;
  if (half_ == H_NONE) return;
  // weight-only values: weights, literals and the outputs of the main module's prepare nodes
  std::vector<char> fixed(s_.values.size(), 0);
  std::vector<char> prepare(s_.nodes.size(), 0);
  for (size_t v = 0; v < s_.values.size(); v++) {
    const uint8_t st = s_.values[v].storage;
    if (st == S_WEIGHT || st == S_LITERAL) fixed[v] = 1;
  }
  for (const SNode& n : s_.nodes) {
    if (n.module != 0 || !(n.flags & N_PREPARE) || (n.flags & N_SKIP)) continue;
    prepare[static_cast<size_t>(n.index)] = 1;
    for (int32_t y : n.outputs) fixed[static_cast<size_t>(root(y))] = 1;
  }
  // the vendor BLAS's 16-bit GEMM takes A rounded into the workspace; kiln's kernels round as they load
  const bool vendor = blas_ && blas_->hasGemmEx();
  for (size_t i = 0; i < kernels_.size(); i++) {
    Kernel* k = kernels_[i].get();
    if (!k || prepare[i] || (s_.nodes[i].flags & N_SKIP) || (!fusedAway_.empty() && fusedAway_[i])) continue;
    if (s_.nodes[i].op == "Einsum") einsums32_++;  // its own GEMM path: float32
    const int32_t b = k->gemmB();
    if (b < 0) continue;
    const int32_t r = root(b);
    const SValue& v = s_.values[static_cast<size_t>(r)];
    if (!fixed[static_cast<size_t>(r)] || v.dtype != DT_FLOAT) {
      floatGemms_++;
      if (floatGemmWhy_.empty()) floatGemmWhy_ = nodeLabel(s_.nodes[i]) + " reads a B computed in each eval";
      continue;
    }
    size_t h = 0;
    while (h < halves_.size() && halves_[h].source != r) h++;
    if (h == halves_.size()) halves_.push_back(HalfCopy{r, static_cast<int32_t>(i), v.elements(), 0});
    k->half = half_;
    k->halfB = nullptr;  // allocate() points it at halves_[h]
    k->label = k->label.empty() ? s_.nodes[i].op + (half_ == H_BF16 ? "(bf16)" : "(fp16)") : k->label;
    halfIndex_.push_back({static_cast<int32_t>(i), static_cast<int32_t>(h)});
    if (vendor) k->workspace = std::max(k->workspace, k->gemmAHalfBytes());
    halfGemms_++;
  }
}

void Program::fuse() {
  fusedAway_.assign(s_.nodes.size(), false);
  std::vector<bool> runs(s_.nodes.size(), false);
  for (const SNode& n : s_.nodes) {
    const bool prepare = n.module == 0 && (n.flags & N_PREPARE);
    runs[static_cast<size_t>(n.index)] = kernels_[static_cast<size_t>(n.index)] && !(n.flags & N_SKIP) && !prepare;
  }
  const ValueUses uses = valueUses(s_);
  // Transposes folded into the MatMuls beside them (all of a MatMul's folds at once, or none)
  for (size_t m = 0; m < s_.modules.size(); m++) {
    const std::vector<TransposeFold> folds = findTransposeFolds(s_, static_cast<int32_t>(m), runs, uses);
    for (size_t i = 0; i < folds.size();) {
      size_t j = i;
      const StridedOperand* views[3] = {nullptr, nullptr, nullptr};
      float alpha = 1.0f;
      for (; j < folds.size() && folds[j].matmul == folds[i].matmul; j++) {
        views[folds[j].operand] = &folds[j].view;
        alpha *= folds[j].alpha;
      }
      const int32_t mm = folds[i].matmul;
      std::string why;
      std::unique_ptr<Kernel> k = lowerMatMulViews(NodeView{s_, s_.nodes[static_cast<size_t>(mm)]}, views[0], views[1],
                                                   views[2], why, alpha);
      if (k) {
        k->node = mm;
        k->workspace = kernels_[static_cast<size_t>(mm)]->workspace;
        kernels_[static_cast<size_t>(mm)] = std::move(k);
        for (size_t f = i; f < j; f++) {
          for (int32_t g : folds[f].gone) {
            fusedAway_[static_cast<size_t>(g)] = true;
            runs[static_cast<size_t>(g)] = false;
          }
          foldedTransposes_ += folds[f].transposes;
          foldedScalings_ += static_cast<int32_t>(folds[f].gone.size()) - folds[f].transposes;
        }
      }
      i = j;
    }
  }
  // residual block ends (Conv, Add, Relu) as one call of the DNN library
  for (size_t m = 0; m < s_.modules.size() && dnn_; m++) {
    for (const ConvResidualFold& f : findConvResidualFolds(s_, static_cast<int32_t>(m), runs, uses)) {
      std::string why;
      const SNode& relu = s_.nodes[static_cast<size_t>(f.relu)];
      std::unique_ptr<Kernel> k = lowerConvResidual(NodeView{s_, s_.nodes[static_cast<size_t>(f.conv)]}, f.residual,
                                                    relu.outputs[0], *dnn_, dnnTf32_, why);
      if (!k) {
        if (residualMissWhy_.empty()) residualMissWhy_ = nodeLabel(s_.nodes[static_cast<size_t>(f.conv)]) + ": " + why;
        continue;
      }
      k->node = f.conv;
      kernels_[static_cast<size_t>(f.conv)] = std::move(k);
      for (int32_t gone : {f.add, f.relu}) {
        fusedAway_[static_cast<size_t>(gone)] = true;
        runs[static_cast<size_t>(gone)] = false;
      }
      residualFolds_++;
    }
  }
  // Relus applied by the Conv before them
  for (size_t m = 0; m < s_.modules.size(); m++) {
    for (const ConvReluFold& f : findConvReluFolds(s_, static_cast<int32_t>(m), runs, uses)) {
      std::string why;
      const SNode& relu = s_.nodes[static_cast<size_t>(f.relu)];
      std::unique_ptr<Kernel> k = lowerConvRelu(NodeView{s_, s_.nodes[static_cast<size_t>(f.conv)]}, relu.outputs[0], why);
      if (!k) continue;
      k->node = f.conv;
      kernels_[static_cast<size_t>(f.conv)] = std::move(k);
      fusedAway_[static_cast<size_t>(f.relu)] = true;
      runs[static_cast<size_t>(f.relu)] = false;
      convEpilogues_++;
    }
  }
  for (size_t m = 0; m < s_.modules.size(); m++) {
    for (const FusedRegion& r : findElementwiseRegions(s_, static_cast<int32_t>(m), runs, uses)) {
      std::string why;
      std::unique_ptr<Kernel> k = lowerFusedElementwise(s_, r, why);
      if (!k) continue;  // the nodes keep their own kernels
      const int32_t last = r.nodes.back();
      k->node = last;
      for (int32_t ni : r.nodes) {
        if (ni != last) fusedAway_[static_cast<size_t>(ni)] = true;
      }
      kernels_[static_cast<size_t>(last)] = std::move(k);
      fusedRegions_[last] = r;
      fusedNodes_ += static_cast<int32_t>(r.nodes.size());
      fusedKernels_++;
    }
  }
}

// ---- channels-last ---------------------------------------------------------------------------
// cuDNN's tensor-core convolutions run channels-last (NHWC activations, KRSC filters) natively;
// on NCHW data they transform or take slower engines (ResNet-50 batch 8 in TF32 on the H200: the
// convolutions 1.28-1.49 ms of device time channels-last against 1.53-1.80 NCHW). kiln's graphs
// are NCHW, so a value is stored channels-last only where every kernel that writes or reads it
// can take that: graph-API Convs (x and y), the separable MaxPool, global pools (reading), and
// elementwise kernels whose inputs all have the output's dims (or one element), which index
// every operand alike. A program output, a module return, a value under an alias (a reshape
// reads the bytes in NCHW order) or one read by anything else stays NCHW, and so does each value
// an elementwise kernel or pool shares it with, until nothing changes. The Convs then plan again
// on the new layouts, and each lays its filter out KRSC in the program's block in the prepare
// step (after every bind that changes it). Only when the convolutions run on the graph API (TF32);
// KILN_CHANNELS_LAST=0 turns it off (a measuring knob: results the same up to the engines' sums).

void Program::planChannelsLast() {
  if (!dnn_ || !dnnTf32_) return;
  if (const char* e = std::getenv("KILN_CHANNELS_LAST"); e && std::strcmp(e, "0") == 0) {
    channelsLastWhy_ = "turned off (KILN_CHANNELS_LAST=0)";
    return;
  }
  const size_t nv = s_.values.size();
  // what each running kernel of the main module writes and reads, and whether it takes NHWC
  struct Use {
    int32_t node;
    int kind;  // Kernel::Layout, or -1: elementwise, -2: neither
    std::vector<int32_t> reads, writes;
  };
  std::vector<Use> uses;
  std::vector<bool> candidate(nv, false), blocked(nv, false);
  auto eligible = [&](int32_t v) {
    const SValue& x = s_.values[static_cast<size_t>(v)];
    return x.storage == S_ARENA && x.dtype == DT_FLOAT && x.rank() == 4;
  };
  for (int32_t ni : s_.modules[0].nodes) {
    const SNode& n = s_.nodes[static_cast<size_t>(ni)];
    if ((n.flags & N_SKIP) || (n.flags & N_PREPARE)) continue;
    if (!fusedAway_.empty() && fusedAway_[static_cast<size_t>(ni)]) continue;  // empty: fusion off
    Kernel* k = kernels_[static_cast<size_t>(ni)].get();
    Use u{ni, -2, {}, {}};
    auto region = fusedRegions_.find(ni);
    if (region != fusedRegions_.end()) {
      u.kind = -1;  // a fused elementwise kernel
      u.reads = region->second.inputs;
      u.writes = region->second.outputs;
    } else {
      u.reads = n.inputs;
      u.writes = n.outputs;
      if (k && k->layoutKind() != Kernel::L_NONE) {
        u.kind = k->layoutKind();
        u.reads = {n.inputs.empty() ? -1 : n.inputs[0]};
        u.writes = {k->layoutOutput()};
        for (size_t i = 1; i < n.inputs.size(); i++) {
          if (n.inputs[i] >= 0) blocked[static_cast<size_t>(n.inputs[i])] = true;  // filter, bias
        }
      } else if (k && k->elementwise) {
        u.kind = -1;
      }
    }
    if (u.kind == -1) {
      // elementwise: every input of the output's dims or a single element
      const std::vector<int64_t>* dims = nullptr;
      for (int32_t w : u.writes) {
        if (w >= 0) dims = &s_.values[static_cast<size_t>(w)].dims;
      }
      for (int32_t r : u.reads) {
        if (r < 0 || dims == nullptr) continue;
        const SValue& x = s_.values[static_cast<size_t>(r)];
        if (x.dims != *dims && x.elements() != 1) u.kind = -2;
      }
    }
    if (u.kind == -2) {
      for (int32_t v : u.reads) {
        if (v >= 0) blocked[static_cast<size_t>(v)] = true;
      }
      for (int32_t v : u.writes) {
        if (v >= 0) blocked[static_cast<size_t>(v)] = true;
      }
    } else {
      for (int32_t v : u.writes) {
        if (v >= 0 && eligible(v) && u.kind != Kernel::L_GLOBAL_POOL) candidate[static_cast<size_t>(v)] = true;
      }
    }
    uses.push_back(std::move(u));
  }
  // values read outside the main run list, returned, output or aliased stay NCHW
  for (const SNode& n : s_.nodes) {
    if (n.module == 0) continue;
    for (int32_t v : n.inputs) {
      if (v >= 0) blocked[static_cast<size_t>(root(v))] = true;
    }
  }
  for (int32_t o : s_.outputs) blocked[static_cast<size_t>(root(o))] = true;
  for (const SModule& m : s_.modules) {
    for (int32_t r : m.returns) {
      if (r >= 0) blocked[static_cast<size_t>(root(r))] = true;
    }
  }
  for (size_t v = 0; v < nv; v++) {
    if (s_.values[v].storage == S_ALIAS) blocked[s_.values[v].index] = true;
  }
  std::vector<bool> in(nv, false);
  for (size_t v = 0; v < nv; v++) in[v] = candidate[v] && !blocked[v];
  // elementwise kernels and pools keep their operands in one layout: a mix sends all to NCHW
  for (bool changed = true; changed;) {
    changed = false;
    for (const Use& u : uses) {
      if (u.kind != -1 && u.kind != Kernel::L_POOL) continue;
      bool any = false, all = true;
      for (const std::vector<int32_t>* list : {&u.reads, &u.writes}) {
        for (int32_t v : *list) {
          if (v < 0 || s_.values[static_cast<size_t>(v)].elements() == 1) continue;
          if (in[static_cast<size_t>(v)]) {
            any = true;
          } else {
            all = false;
          }
        }
      }
      if (!any || all) continue;
      for (const std::vector<int32_t>* list : {&u.reads, &u.writes}) {
        for (int32_t v : *list) {
          if (v >= 0 && in[static_cast<size_t>(v)]) {
            in[static_cast<size_t>(v)] = false;
            changed = true;
          }
        }
      }
    }
  }
  // switch: the Convs first (each plans again); on any failure every Conv goes back to NCHW
  std::vector<Kernel*> switched;
  int convs = 0;
  for (const Use& u : uses) {
    if (u.kind != Kernel::L_CONV) continue;
    const bool xIn = u.reads[0] >= 0 && in[static_cast<size_t>(u.reads[0])];
    const bool yOut = u.writes[0] >= 0 && in[static_cast<size_t>(u.writes[0])];
    if (!xIn && !yOut) continue;
    Kernel* k = kernels_[static_cast<size_t>(u.node)].get();
    std::string why;
    if (!k->setChannelsLast(dnn_.get(), dnnTf32_, xIn, yOut, why)) {
      channelsLastWhy_ = nodeLabel(s_.nodes[static_cast<size_t>(u.node)]) + ": " + why;
      for (Kernel* back : switched) {
        std::string ignored;
        back->setChannelsLast(dnn_.get(), dnnTf32_, false, false, ignored);
      }
      return;
    }
    switched.push_back(k);
    convs++;
  }
  if (convs == 0) {
    channelsLastWhy_ = "no convolution's data can be stored channels-last";
    return;
  }
  for (const Use& u : uses) {
    if (u.kind != Kernel::L_POOL && u.kind != Kernel::L_GLOBAL_POOL) continue;
    if (u.reads[0] < 0 || !in[static_cast<size_t>(u.reads[0])]) continue;
    const bool yOut = u.writes[0] >= 0 && in[static_cast<size_t>(u.writes[0])];
    std::string why;
    // the planning above keeps a pool's operands together: this cannot fail but for a bug
    if (!kernels_[static_cast<size_t>(u.node)]->setChannelsLast(nullptr, dnnTf32_, true, yOut, why)) {
      channelsLastWhy_ = nodeLabel(s_.nodes[static_cast<size_t>(u.node)]) + ": " + why;
    }
  }
  for (Kernel* k : switched) {
    Relayout r;
    r.kernel = k->relayout(r.reads, r.bytes);
    if (r.kernel) relayouts_.push_back(std::move(r));
  }
  channelsLastConvs_ = convs;
}

void Program::emitModule(int32_t module, std::vector<Step>& out) {
  for (int32_t ni : s_.modules[static_cast<size_t>(module)].nodes) {
    const SNode& n = s_.nodes[static_cast<size_t>(ni)];
    if (n.flags & N_SKIP) continue;
    if (!fusedAway_.empty() && fusedAway_[static_cast<size_t>(ni)]) continue;  // runs in a fused kernel
    if (module == 0 && (n.flags & N_PREPARE)) continue;
    if (n.op != "If") {
      Step st{kernels_[static_cast<size_t>(ni)] ? ST_KERNEL : ST_HOST};
      st.node = ni;
      out.push_back(st);
      continue;
    }
    const int32_t thenM = n.attrs.at("then_branch").graph;
    const int32_t elseM = n.attrs.at("else_branch").graph;
    const size_t branch = out.size();
    Step b{ST_BRANCH};
    b.node = ni;
    b.value = n.inputs[0];
    out.push_back(b);
    size_t jump = 0;
    for (int pass = 0; pass < 2; pass++) {
      const int32_t m = pass == 0 ? thenM : elseM;
      emitModule(m, out);
      const SModule& sub = s_.modules[static_cast<size_t>(m)];
      for (size_t j = 0; j < n.outputs.size() && j < sub.returns.size(); j++) {
        Step c{ST_COPY};
        c.node = ni;
        c.value = sub.returns[j];
        c.target = n.outputs[j];
        out.push_back(c);
      }
      if (pass == 0) {
        jump = out.size();
        Step j{ST_JUMP};
        j.node = ni;
        out.push_back(j);
        out[branch].target = static_cast<int32_t>(out.size());
      }
    }
    out[jump].target = static_cast<int32_t>(out.size());
  }
}

bool Program::allocate() {
  uint64_t at = 0;
  moduleArena_.resize(s_.modules.size());
  for (size_t m = 0; m < s_.modules.size(); m++) {
    moduleArena_[m] = at;
    at += alignUp(static_cast<uint64_t>(s_.modules[m].arenaBytes));
  }
  arenaBytes_ = at;
  bufferAt_.assign(s_.values.size(), 0);
  for (size_t v = 0; v < s_.values.size(); v++) {
    const SValue& x = s_.values[v];
    if (x.storage == S_INPUT || x.storage == S_BUFFER) {
      bufferAt_[v] = at;
      at += alignUp(static_cast<uint64_t>(x.bytes > 0 ? x.bytes : 1));
    }
  }
  const uint64_t literalAt = at;
  at += alignUp(static_cast<uint64_t>(s_.literalArenaBytes));
  const uint64_t workspaceAt = at;
  at += alignUp(static_cast<uint64_t>(workspaceBytes_));
  const uint64_t statusAt = at;
  at += kAlign;
  // kernels' constant tables, uploaded once below
  std::vector<uint64_t> tableAt(kernels_.size(), 0);
  const uint64_t tablesAt = at;
  for (size_t i = 0; i < kernels_.size(); i++) {
    if (!kernels_[i] || kernels_[i]->table.empty()) continue;
    tableAt[i] = at;
    at += alignUp(kernels_[i]->table.size());
  }
  const uint64_t tablesEnd = at;
  // the 16-bit copies of weight-only GEMM operands (precision fp16/bf16)
  for (HalfCopy& h : halves_) {
    h.at = at;
    at += alignUp(static_cast<uint64_t>(h.elements > 0 ? h.elements : 1) * 2);
  }
  // the channels-last Convs' KRSC filters (written by the prepare step, never uploaded)
  for (Relayout& r : relayouts_) {
    r.at = at;
    at += alignUp(r.bytes > 0 ? r.bytes : 1);
  }
  blockBytes_ = at;
  block_ = ctx_->alloc(blockBytes_, "the program's arenas, buffers and literals", err);
  if (!block_) return false;
  literalArena_ = block_ + literalAt;
  workspace_ = block_ + workspaceAt;
  for (Relayout& r : relayouts_) r.kernel->place(block_ + r.at);
  for (const auto& kh : halfIndex_) {
    kernels_[static_cast<size_t>(kh.first)]->halfB =
        reinterpret_cast<const uint16_t*>(block_ + halves_[static_cast<size_t>(kh.second)].at);
  }
  status_ = reinterpret_cast<int32_t*>(block_ + statusAt);
  if (tablesEnd > tablesAt) {
    std::vector<uint8_t> image(tablesEnd - tablesAt, 0);
    for (size_t i = 0; i < kernels_.size(); i++) {
      if (!kernels_[i] || kernels_[i]->table.empty()) continue;
      std::memcpy(image.data() + (tableAt[i] - tablesAt), kernels_[i]->table.data(), kernels_[i]->table.size());
      kernels_[i]->tableDevice = block_ + tableAt[i];
      std::vector<uint8_t>().swap(kernels_[i]->table);
    }
    if (!hipCheck(hipMemcpyAsync(block_ + tablesAt, image.data(), image.size(), hipMemcpyHostToDevice, stream_),
                  "uploading kernel tables", err) ||
        !hipCheck(hipStreamSynchronize(stream_), "uploading kernel tables", err)) {
      return false;
    }
  }
  // inline literals: one image of the literal arena's inline part, sent in one copy
  uint64_t inlineEnd = 0;
  for (const SValue& x : s_.values) {
    if (x.storage == S_LITERAL && x.hostId < 0) {
      const uint64_t e = static_cast<uint64_t>(x.offset + x.bytes);
      if (e > inlineEnd) inlineEnd = e;
    }
  }
  if (inlineEnd > 0) {
    std::vector<uint8_t> image(inlineEnd, 0);
    for (const SValue& x : s_.values) {
      if (x.storage == S_LITERAL && x.hostId < 0 && x.bytes > 0) {
        std::memcpy(image.data() + x.offset, x.inlineBytes.data(), static_cast<size_t>(x.bytes));
      }
    }
    if (!hipCheck(hipMemcpyAsync(literalArena_, image.data(), inlineEnd, hipMemcpyHostToDevice, stream_),
                  "uploading inline literals", err) ||
        !hipCheck(hipStreamSynchronize(stream_), "uploading inline literals", err)) {
      return false;
    }
  }
  resolvePointers();
  return true;
}

int32_t Program::root(int32_t value) const {
  const SValue& v = s_.values[static_cast<size_t>(value)];
  return v.storage == S_ALIAS ? static_cast<int32_t>(v.index) : value;
}

void Program::resolvePointers() {
  ptrs_.assign(s_.values.size(), nullptr);
  for (size_t v = 0; v < s_.values.size(); v++) {
    const SValue& x = s_.values[v];
    switch (x.storage) {
      case S_INPUT:
      case S_BUFFER: ptrs_[v] = block_ + bufferAt_[v]; break;
      case S_ARENA: ptrs_[v] = block_ + moduleArena_[x.index] + static_cast<uint64_t>(x.offset); break;
      case S_LITERAL: ptrs_[v] = literalArena_ + x.offset; break;
      case S_WEIGHT: {
        ResidentSet* set = selected_set_ >= 0 ? findSet(selected_set_) : nullptr;
        ptrs_[v] = set ? set->ptrs[x.index] : slots_[x.index].ptr;
        break;
      }
      case S_ALIAS: ptrs_[v] = ptrs_[x.index]; break;
      default: break;
    }
  }
}

// ---- literals ----------------------------------------------------------------------------

static const SValue* hostLiteral(const Schedule& s, uint32_t id) {
  for (const SValue& v : s.values) {
    if (v.storage == S_LITERAL && v.hostId == static_cast<int64_t>(id)) return &v;
  }
  return nullptr;
}

bool Program::literalWrite(uint32_t id, const uint8_t* data, uint64_t length) {
  const SValue* v = hostLiteral(s_, id);
  if (!v) return err.fail(KILN_E_ARGUMENT, "The program has no host literal " + std::to_string(id));
  if (length != static_cast<uint64_t>(v->bytes)) {
    return err.fail(KILN_E_ARGUMENT, "Literal '" + v->name + "' has " + std::to_string(v->bytes) + " bytes, " +
                                         std::to_string(length) + " were given");
  }
  hipSetDevice(ctx_->device());
  return hipCheck(hipMemcpyAsync(literalArena_ + v->offset, data, length, hipMemcpyHostToDevice, stream_),
                  "uploading a literal", err) &&
         hipCheck(hipStreamSynchronize(stream_), "uploading a literal", err);
}

bool Program::literalReadFile(uint32_t id, const std::string& path, uint64_t offset, uint64_t length,
                              const std::string& sha1) {
  const SValue* v = hostLiteral(s_, id);
  if (!v) return err.fail(KILN_E_ARGUMENT, "The program has no host literal " + std::to_string(id));
  if (length != static_cast<uint64_t>(v->bytes)) {
    return err.fail(KILN_E_ARGUMENT, "Literal '" + v->name + "' has " + std::to_string(v->bytes) + " bytes, the file range " +
                                         std::to_string(length));
  }
  Sha1 sha;
  if (!ctx_->readFileToDevice(path, offset, length, literalArena_ + v->offset, stream_, nullptr,
                              sha1.empty() ? nullptr : &sha, "literal '" + v->name + "'", err)) {
    return false;
  }
  if (!sha1.empty()) {
    const std::string got = sha.hex();
    if (got != sha1) {
      return err.fail(KILN_E_CHECKSUM, "Literal '" + v->name + "' in '" + path + "' at byte " + std::to_string(offset) +
                                           " fails its checksum: SHA-1 " + got + ", the file records " + sha1);
    }
  }
  return true;
}

// ---- weights -------------------------------------------------------------------------------

// Swaps stage into spare buffers: after a program's second bind every weight has one buffer
// serving and one spare of the same size, so a swap allocates and frees nothing (hipMalloc and
// hipFree cost tens of microseconds each and hipFree synchronizes the device). The spares are
// device memory the program holds (info().deviceBytes counts them); when an allocation fails they
// are given back and the allocation tried once more.
char* Program::stageBuffer(uint32_t slot, Error& e) {
  Slot& s = slots_[slot];
  if (s.spare) {
    char* p = s.spare;
    s.spare = nullptr;
    return p;
  }
  const uint64_t bytes = static_cast<uint64_t>(s_.weights[slot].bytes);
  const std::string what = "weight '" + s_.weights[slot].name + "'";
  Error first;
  if (char* p = ctx_->alloc(bytes, what, first)) return p;
  bool hadSpares = false;
  for (const Slot& o : slots_) hadSpares = hadSpares || o.spare != nullptr;
  if (hadSpares) {
    releaseSpares();
    Error again;
    if (char* p = ctx_->alloc(bytes, what, again)) return p;
    e.fail(again.status, again.message);
    return nullptr;
  }
  e.fail(first.status, first.message);
  return nullptr;
}

void Program::retire(uint32_t slot, char* p) {
  if (p == nullptr) return;
  Slot& s = slots_[slot];
  if (s.spare == nullptr) {
    s.spare = p;
  } else {
    ctx_->release(p, static_cast<uint64_t>(s_.weights[slot].bytes));
  }
}

void Program::releaseSpares() {
  for (size_t i = 0; i < slots_.size(); i++) {
    ctx_->release(slots_[i].spare, static_cast<uint64_t>(s_.weights[i].bytes));
    slots_[i].spare = nullptr;
  }
}

void Program::dropStaged() {
  staged_ = false;
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    retire(static_cast<uint32_t>(i), s.staged);
    retire(static_cast<uint32_t>(i), s.adapted);
    s.staged = nullptr;
    s.adapted = nullptr;
    s.stagedSet = false;
    s.deltaStaged = false;
    s.stagedDelta.reset();
  }
  pending_.clear();
}

bool Program::bindBegin() {
  if (inBind_) dropStaged();
  bindRelease();
  inBind_ = true;
  return true;
}

bool Program::bindBytes(uint32_t slot, const uint8_t* data, uint64_t length) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_bind_bytes outside a transaction");
  if (slot >= slots_.size()) return bindErr.fail(KILN_E_ARGUMENT, "No weight slot " + std::to_string(slot));
  const SWeight& w = s_.weights[slot];
  if (length != static_cast<uint64_t>(w.bytes)) {
    return bindErr.fail(KILN_E_ARGUMENT, "Weight '" + w.name + "' needs " + std::to_string(w.bytes) + " bytes, " +
                                         std::to_string(length) + " were given");
  }
  Slot& s = slots_[slot];
  dropPendingFile(slot);  // the last bind of a slot in a transaction wins
  const Hash128 hash = hashChunked(data, length);  // as the loader hashes file ranges
  retire(slot, s.staged);
  s.staged = nullptr;
  s.stagedSet = true;
  s.stagedHash = hash;
  if (s.bound && s.hash == hash) return true;  // unchanged: nothing to upload
  s.staged = stageBuffer(slot, bindErr);
  if (!s.staged) return false;
  hipSetDevice(ctx_->device());
  return hipCheck(hipMemcpyAsync(s.staged, data, length, hipMemcpyHostToDevice, uploadStream_), "uploading a weight",
                  bindErr) &&
         hipCheck(hipStreamSynchronize(uploadStream_), "uploading a weight", bindErr);
}

void Program::dropPendingFile(uint32_t slot) {
  for (size_t i = 0; i < pending_.size(); i++) {
    if (pending_[i].slot == slot) {
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

bool Program::bindFile(uint32_t slot, const std::string& path, uint64_t offset, uint64_t length) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_bind_file outside a transaction");
  if (slot >= slots_.size()) return bindErr.fail(KILN_E_ARGUMENT, "No weight slot " + std::to_string(slot));
  const SWeight& w = s_.weights[slot];
  if (length != static_cast<uint64_t>(w.bytes)) {
    return bindErr.fail(KILN_E_ARGUMENT, "Weight '" + w.name + "' needs " + std::to_string(w.bytes) + " bytes, the range in '" +
                                         path + "' has " + std::to_string(length));
  }
  dropPendingFile(slot);  // the last bind of a slot in a transaction wins
  pending_.push_back(PendingFile{slot, path, offset, length});
  return true;
}

bool Program::bindStage() {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_bind_stage outside a transaction");
  if (staged_) return true;
  const auto t0 = std::chrono::steady_clock::now();
  // every file problem at once, before anything is read
  std::string problems;
  FileSet files;  // each file opened once; the load reads through the descriptors checked here
  for (const PendingFile& f : pending_) {
    files.check(f.path, f.offset, f.length, "weight '" + s_.weights[f.slot].name + "'", problems);
  }
  if (!problems.empty()) {
    dropStaged();
    inBind_ = false;
    return bindErr.fail(KILN_E_IO, problems);
  }
  const double validateMs = msSince(t0);
  // every staged buffer first (an out-of-memory fails before anything is read), then one load
  uint64_t bytesRead = 0;
  std::vector<LoadJob> jobs;
  jobs.reserve(pending_.size());
  for (const PendingFile& f : pending_) {
    Slot& s = slots_[f.slot];
    const std::string what = "weight '" + s_.weights[f.slot].name + "'";
    retire(f.slot, s.staged);
    s.staged = stageBuffer(f.slot, bindErr);
    if (!s.staged) {
      dropStaged();
      inBind_ = false;
      return false;
    }
    jobs.push_back(LoadJob{f.path, f.offset, f.length, s.staged, what});
    bytesRead += f.length;
  }
  std::vector<Hash128> hashes;
  LoadStats load;
  if (!jobs.empty() && !ctx_->loader().run(jobs, files, hashes, load, bindErr)) {
    dropStaged();
    inBind_ = false;
    return false;
  }
  for (size_t i = 0; i < pending_.size(); i++) {
    const PendingFile& f = pending_[i];
    Slot& s = slots_[f.slot];
    s.stagedSet = true;
    s.stagedHash = hashes[i];
    if (s.bound && s.hash == s.stagedHash) {
      retire(f.slot, s.staged);  // unchanged
      s.staged = nullptr;
    }
  }
  stageReadMs_ = msSince(t0);
  stageValidateMs_ = validateMs;
  stageBytesRead_ = bytesRead;
  stageLoad_ = load;
  staged_ = true;
  return true;
}

bool Program::bindCommit(std::string& report) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_bind_commit outside a transaction");
  if (!staged_ && !bindStage()) return false;
  staged_ = false;
  const double readMs = stageReadMs_, validateMs = stageValidateMs_;
  const uint64_t bytesRead = stageBytesRead_;
  const LoadStats& load = stageLoad_;
  // base + delta for the adapted slots; a failure switches nothing
  if (!adaptStaged()) {
    dropStaged();
    inBind_ = false;
    return false;
  }
  // switch: every tensor is in
  int copied = 0, skipped = 0, adapted = 0;
  uint64_t uploaded = 0;
  std::string changed;
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    s.changed = false;
    const bool content = s.stagedSet && s.staged != nullptr;
    if (s.stagedSet && !content) skipped++;
    if (!content && !s.deltaStaged) continue;
    const std::shared_ptr<const Delta> delta = s.deltaStaged ? s.stagedDelta : s.delta;
    char* base = content ? s.staged : (s.base ? s.base : s.ptr);
    char* ptr = delta ? s.adapted : base;
    char* keep = delta ? base : nullptr;
    s.staged = nullptr;
    s.adapted = nullptr;
    s.deltaStaged = false;
    s.stagedDelta.reset();
    if (ptr == s.ptr && keep == s.base) continue;  // a delta cleared where none applied
    s.prevPtr = s.ptr;
    s.prevBase = s.base;
    s.prevDelta = s.delta;
    s.prevHash = s.hash;
    s.prevBound = s.bound;
    s.ptr = ptr;
    s.base = keep;
    s.delta = delta;
    s.changed = true;
    if (content) {
      s.hash = s.stagedHash;
      s.bound = true;
      copied++;
      uploaded += static_cast<uint64_t>(s_.weights[i].bytes);
    }
    if (delta || s.prevDelta) adapted++;
    if (!changed.empty()) changed += ",";
    changed += std::to_string(i);
  }
  for (Slot& s : slots_) s.stagedSet = false;
  pending_.clear();
  inBind_ = false;
  resolvePointers();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"copied\":%d,\"skipped\":%d,\"bytesRead\":%llu,\"bytesUploaded\":%llu,\"readMs\":%.3f,"
                "\"validateMs\":%.3f,\"loadMs\":%.3f,\"preadMs\":%.3f,\"hashMs\":%.3f,\"ringWaitMs\":%.3f,\"uploadTailMs\":%.3f,"
                "\"threads\":%d,\"adapted\":%d,",
                copied, skipped, static_cast<unsigned long long>(bytesRead), static_cast<unsigned long long>(uploaded),
                readMs, validateMs, load.wallMs, load.readMs, load.hashMs, load.waitMs, load.tailMs, load.threads, adapted);
  char more[128];
  std::snprintf(more, sizeof more, "\"registerMs\":%.3f,\"loadMode\":\"%s\",", load.registerMs, load.mode);
  report = std::string(buf) + more + "\"slots\":[" + changed + "]}";
  return true;
}

bool Program::bindAbort() {
  dropStaged();
  inBind_ = false;
  return true;
}

// ---- resident weight sets -------------------------------------------------------------------
// A resident set is a whole weight set held on the device beside the bound one. Selecting it
// repoints the weight values (the run list's graph for those addresses is captured once and then
// cached like any other), so switching costs the prepare step's rerun and no copy.

std::string Program::weightList(const std::function<bool(size_t)>& pick) const {
  std::string out;
  for (size_t i = 0; i < s_.weights.size() && out.size() < 400; i++) {
    if (pick(i)) out += (out.empty() ? "'" : ", '") + s_.weights[i].name + "'";
  }
  return out;
}

Program::ResidentSet* Program::findSet(int32_t id) {
  for (ResidentSet& r : sets_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

bool Program::setAdd(int32_t id) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_set_add outside a transaction");
  if (id < 0 || findSet(id)) {
    dropStaged();
    inBind_ = false;
    return bindErr.fail(KILN_E_ARGUMENT, "Weight set " + std::to_string(id) + " exists already or is not a valid id");
  }
  const std::string adapters = weightList([&](size_t i) { return slots_[i].deltaStaged; });
  if (!adapters.empty()) {
    dropStaged();
    inBind_ = false;
    return bindErr.fail(KILN_E_ARGUMENT, "Adapters apply to the bound weights, not to a resident weight set (" +
                                             adapters + ")");
  }
  if (!staged_ && !bindStage()) return false;
  staged_ = false;
  const std::string missing = weightList([&](size_t i) { return !slots_[i].stagedSet; });
  if (!missing.empty()) {
    dropStaged();
    inBind_ = false;
    return bindErr.fail(KILN_E_ARGUMENT, "A resident weight set needs every weight; missing " + missing);
  }
  ResidentSet set{id, std::vector<char*>(slots_.size(), nullptr)};
  bool ok = true;
  for (size_t i = 0; i < slots_.size() && ok; i++) {
    Slot& s = slots_[i];
    if (s.staged) {
      set.ptrs[i] = s.staged;
      s.staged = nullptr;
      continue;
    }
    // equal to the bound weight (its upload was skipped): a copy of its own, device to device
    const uint64_t bytes = static_cast<uint64_t>(s_.weights[i].bytes);
    set.ptrs[i] = ctx_->alloc(bytes, "weight '" + s_.weights[i].name + "' of a resident set", bindErr);
    ok = set.ptrs[i] != nullptr &&
         hipCheck(hipMemcpyAsync(set.ptrs[i], s.base ? s.base : s.ptr, bytes, hipMemcpyDeviceToDevice, uploadStream_),
                  "copying a weight into a resident set", bindErr);
  }
  ok = ok && hipCheck(hipStreamSynchronize(uploadStream_), "copying a weight into a resident set", bindErr);
  for (Slot& s : slots_) s.stagedSet = false;
  pending_.clear();
  inBind_ = false;
  if (!ok) {
    for (size_t i = 0; i < set.ptrs.size(); i++) ctx_->release(set.ptrs[i], static_cast<uint64_t>(s_.weights[i].bytes));
    dropStaged();
    return false;
  }
  sets_.push_back(std::move(set));
  return true;
}

bool Program::setSelect(int32_t id) {
  if (id >= 0 && !findSet(id)) return err.fail(KILN_E_ARGUMENT, "No resident weight set " + std::to_string(id));
  if (id == selected_set_) return true;
  selected_set_ = id;
  resolvePointers();
  return true;
}

bool Program::setRemove(int32_t id) {
  for (size_t k = 0; k < sets_.size(); k++) {
    if (sets_[k].id != id) continue;
    if (selected_set_ == id) {
      selected_set_ = -1;
      resolvePointers();
    }
    for (size_t i = 0; i < sets_[k].ptrs.size(); i++) {
      ctx_->release(sets_[k].ptrs[i], static_cast<uint64_t>(s_.weights[i].bytes));
    }
    sets_.erase(sets_.begin() + static_cast<std::ptrdiff_t>(k));
    return true;
  }
  return bindErr.fail(KILN_E_ARGUMENT, "No resident weight set " + std::to_string(id));
}

// ---- host-resident weight sets ------------------------------------------------------------------

Program::HostSet* Program::findHostSet(int32_t id) {
  for (HostSet& h : hostSets_) {
    if (h.id == id) return &h;
  }
  return nullptr;
}

bool Program::hostSetCreate(int32_t id) {
  if (id < 0 || findHostSet(id)) {
    return bindErr.fail(KILN_E_ARGUMENT, "Host weight set " + std::to_string(id) + " exists already or is not a valid id");
  }
  hostSets_.push_back(HostSet{id, std::vector<char*>(slots_.size(), nullptr), std::vector<Hash128>(slots_.size())});
  return true;
}

bool Program::hostSetPut(int32_t id, uint32_t slot, const uint8_t* data, uint64_t length) {
  HostSet* h = findHostSet(id);
  if (!h) return bindErr.fail(KILN_E_ARGUMENT, "No host weight set " + std::to_string(id));
  if (slot >= slots_.size()) return bindErr.fail(KILN_E_ARGUMENT, "No weight slot " + std::to_string(slot));
  const SWeight& w = s_.weights[slot];
  if (length != static_cast<uint64_t>(w.bytes)) {
    return bindErr.fail(KILN_E_ARGUMENT, "Weight '" + w.name + "' needs " + std::to_string(w.bytes) + " bytes, " +
                                             std::to_string(length) + " were given");
  }
  if (!h->host[slot]) {
    void* p = nullptr;
    if (!hipCheck(hipHostMalloc(&p, length > 0 ? length : 1, hipHostMallocDefault),
                  ("pinning host memory for weight '" + w.name + "'").c_str(), bindErr)) {
      return false;
    }
    h->host[slot] = static_cast<char*>(p);
    hostSetBytes_ += length;
  }
  if (length) std::memcpy(h->host[slot], data, length);
  h->hash[slot] = hashChunked(data, length);
  return true;
}

bool Program::hostSetStage(int32_t id) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_hostset_stage outside a transaction");
  HostSet* h = findHostSet(id);
  const std::string missing = h ? weightList([&](size_t i) { return h->host[i] == nullptr; }) : "";
  if (!h || !missing.empty()) {
    dropStaged();
    inBind_ = false;
    if (!h) return bindErr.fail(KILN_E_ARGUMENT, "No host weight set " + std::to_string(id));
    return bindErr.fail(KILN_E_ARGUMENT, "The host weight set lacks " + missing);
  }
  const auto t0 = std::chrono::steady_clock::now();
  hipSetDevice(ctx_->device());
  pending_.clear();  // the set replaces whatever the transaction queued
  uint64_t bytes = 0;
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    retire(static_cast<uint32_t>(i), s.staged);
    s.staged = nullptr;
    s.stagedSet = true;
    s.stagedHash = h->hash[i];
    if (s.bound && s.hash == s.stagedHash) continue;  // unchanged
    s.staged = stageBuffer(static_cast<uint32_t>(i), bindErr);
    const uint64_t n = static_cast<uint64_t>(s_.weights[i].bytes);
    if (!s.staged ||
        !hipCheck(hipMemcpyAsync(s.staged, h->host[i], n, hipMemcpyHostToDevice, uploadStream_),
                  "copying a weight from pinned host memory", bindErr)) {
      hipStreamSynchronize(uploadStream_);
      dropStaged();
      inBind_ = false;
      return false;
    }
    bytes += n;
  }
  if (!hipCheck(hipStreamSynchronize(uploadStream_), "copying weights from pinned host memory", bindErr)) {
    dropStaged();
    inBind_ = false;
    return false;
  }
  stageReadMs_ = msSince(t0);
  stageValidateMs_ = 0;
  stageBytesRead_ = 0;
  stageLoad_ = LoadStats{};
  stageLoad_.wallMs = stageReadMs_;
  staged_ = true;
  (void)bytes;
  return true;
}

bool Program::hostSetRemove(int32_t id) {
  for (size_t k = 0; k < hostSets_.size(); k++) {
    if (hostSets_[k].id != id) continue;
    for (size_t i = 0; i < hostSets_[k].host.size(); i++) {
      if (hostSets_[k].host[i]) {
        hipHostFree(hostSets_[k].host[i]);
        hostSetBytes_ -= static_cast<uint64_t>(s_.weights[i].bytes);
      }
    }
    hostSets_.erase(hostSets_.begin() + static_cast<std::ptrdiff_t>(k));
    return true;
  }
  return bindErr.fail(KILN_E_ARGUMENT, "No host weight set " + std::to_string(id));
}

bool Program::bindRevert() {
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    if (!s.changed) continue;
    for (char* p : {s.ptr, s.base}) {
      if (p && p != s.prevPtr && p != s.prevBase) retire(static_cast<uint32_t>(i), p);
    }
    s.ptr = s.prevPtr;
    s.base = s.prevBase;
    s.delta = s.prevDelta;
    s.hash = s.prevHash;
    s.bound = s.prevBound;
    s.prevPtr = nullptr;
    s.prevBase = nullptr;
    s.prevDelta.reset();
    s.changed = false;
  }
  resolvePointers();
  return true;
}

bool Program::bindRelease() {
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    if (!s.changed) continue;
    for (char* p : {s.prevPtr, s.prevBase}) {
      if (p && p != s.ptr && p != s.base) retire(static_cast<uint32_t>(i), p);
    }
    s.prevPtr = nullptr;
    s.prevBase = nullptr;
    s.prevDelta.reset();
    s.changed = false;
  }
  return true;
}

// ---- low-rank deltas ------------------------------------------------------------------------
// A slot with a delta holds two buffers: its base (the weight as bound) and base + scale * B * A,
// which evals read. Applying, switching or clearing an adapter never touches a base, so a cleared
// delta restores the bound weight bit for bit and deltas never pile up. A weight bound while a
// delta applies becomes the new base and is adapted in the same commit.

bool Program::bindDelta(uint32_t slot, const float* b, uint64_t bLength, const float* a, uint64_t aLength,
                        uint32_t rank, float scale, uint32_t flags) {
  if (!inBind_) return bindErr.fail(KILN_E_ARGUMENT, "kiln_bind_delta outside a transaction");
  if (slot >= slots_.size()) return bindErr.fail(KILN_E_ARGUMENT, "No weight slot " + std::to_string(slot));
  const SWeight& w = s_.weights[slot];
  Slot& s = slots_[slot];
  if (rank == 0) {
    s.deltaStaged = true;
    s.stagedDelta.reset();
    return true;
  }
  const std::string who = "Weight '" + w.name + "'";
  if (w.dtype != 1 || w.dims.size() != 2) {
    return bindErr.fail(KILN_E_ARGUMENT, who + " cannot take a low-rank delta: it is not a float32 matrix");
  }
  if (!std::isfinite(scale)) return bindErr.fail(KILN_E_ARGUMENT, who + ": the delta's scale is not finite");
  const bool transposed = (flags & KILN_DELTA_TRANSPOSED) != 0;
  const uint64_t rows = static_cast<uint64_t>(w.dims[0]), cols = static_cast<uint64_t>(w.dims[1]);
  const uint64_t bWant = (transposed ? cols : rows) * rank * 4, aWant = rank * (transposed ? rows : cols) * 4;
  if (!b || !a || bLength != bWant || aLength != aWant) {
    return bindErr.fail(KILN_E_ARGUMENT, who + ": a rank-" + std::to_string(rank) + " delta needs B of " +
                                             std::to_string(bWant) + " bytes and A of " + std::to_string(aWant) +
                                             ", " + std::to_string(b ? bLength : 0) + " and " +
                                             std::to_string(a ? aLength : 0) + " were given");
  }
  auto d = std::make_shared<Delta>();
  d->rank = rank;
  d->scale = scale;
  d->transposed = transposed;
  d->b.assign(b, b + bLength / 4);
  d->a.assign(a, a + aLength / 4);
  s.deltaStaged = true;
  s.stagedDelta = std::move(d);
  return true;
}

bool Program::adaptStaged() {
  // the slots to adapt, and where each one's factors go in one device buffer (B, then A, aligned)
  struct Todo {
    uint32_t slot;
    uint64_t b, a;
  };
  std::vector<Todo> todo;
  uint64_t factorBytes = 0;
  auto align = [](uint64_t n) { return (n + 255) / 256 * 256; };
  for (size_t i = 0; i < slots_.size(); i++) {
    Slot& s = slots_[i];
    const std::shared_ptr<const Delta>& d = s.deltaStaged ? s.stagedDelta : s.delta;
    const bool content = s.stagedSet && s.staged != nullptr;
    if (!d || !(s.deltaStaged || content)) continue;
    if (!content && !s.base && !s.bound) {
      return bindErr.fail(KILN_E_ARGUMENT, "Weight '" + s_.weights[i].name +
                                               "' is not bound: a low-rank delta applies to a bound weight");
    }
    Todo t{static_cast<uint32_t>(i), factorBytes, 0};
    factorBytes += align(d->b.size() * 4);
    t.a = factorBytes;
    factorBytes += align(d->a.size() * 4);
    todo.push_back(t);
  }
  if (todo.empty()) return true;
  hipSetDevice(ctx_->device());
  char* factors = ctx_->alloc(factorBytes, "an adapter's low-rank factors", bindErr);
  if (!factors) return false;
  // every factor in one host-to-device copy (one copy of a few MB, not two small ones per weight)
  std::vector<char> host(factorBytes);
  for (const Todo& t : todo) {
    const Slot& s = slots_[t.slot];
    const Delta& d = *(s.deltaStaged ? s.stagedDelta : s.delta);
    std::memcpy(host.data() + t.b, d.b.data(), d.b.size() * 4);
    std::memcpy(host.data() + t.a, d.a.data(), d.a.size() * 4);
  }
  const char* what = "applying a low-rank delta";
  bool ok = hipCheck(hipMemcpyAsync(factors, host.data(), factorBytes, hipMemcpyHostToDevice, uploadStream_), what,
                     bindErr);
  // kiln's own float32 GEMM kernel on the upload stream: exact float32 whatever the program's
  // GEMM precision, and no BLAS handle shared with evals
  Exec x = execContext(&bindErr);
  x.stream = uploadStream_;
  x.blas = nullptr;
  x.dnn = nullptr;
  for (size_t k = 0; k < todo.size() && ok; k++) {
    const Todo& t = todo[k];
    Slot& s = slots_[t.slot];
    const Delta& d = *(s.deltaStaged ? s.stagedDelta : s.delta);
    const SWeight& w = s_.weights[t.slot];
    const uint64_t bytes = static_cast<uint64_t>(w.bytes);
    const int64_t rows = w.dims[0], cols = w.dims[1];
    const char* base = s.stagedSet && s.staged ? s.staged : (s.base ? s.base : s.ptr);
    s.adapted = stageBuffer(t.slot, bindErr);
    if (!s.adapted) {
      ok = false;
      break;
    }
    const float* fb = reinterpret_cast<const float*>(factors + t.b);
    const float* fa = reinterpret_cast<const float*>(factors + t.a);
    float* out = reinterpret_cast<float*>(s.adapted);
    ok = hipCheck(hipMemcpyAsync(out, base, bytes, hipMemcpyDeviceToDevice, uploadStream_), what, bindErr) &&
         // W (rows x cols) += scale * B A, or scale * (B A)^T = scale * A^T B^T
         (d.transposed ? kiln_gemm(x, true, true, rows, cols, d.rank, d.scale, fa, rows, 0, fb, d.rank, 0, 1.0f, out,
                                   cols, 0, 1)
                       : kiln_gemm(x, false, false, rows, cols, d.rank, d.scale, fb, d.rank, 0, fa, cols, 0, 1.0f, out,
                                   cols, 0, 1));
  }
  ok = hipCheck(hipStreamSynchronize(uploadStream_), what, bindErr) && ok;
  ctx_->release(factors, factorBytes);
  return ok;
}

// ---- execution -----------------------------------------------------------------------------

bool Program::checkValueCopy(uint32_t value, uint64_t length, const char* what) {
  if (value >= s_.values.size()) return err.fail(KILN_E_ARGUMENT, std::string(what) + ": no value " + std::to_string(value));
  const SValue& v = s_.values[value];
  if (length != static_cast<uint64_t>(v.bytes)) {
    return err.fail(KILN_E_ARGUMENT, std::string(what) + " '" + v.name + "': " + std::to_string(length) +
                                         " bytes given, it has " + std::to_string(v.bytes));
  }
  if (ptrs_[value] == nullptr) return err.fail(KILN_E_ARGUMENT, std::string(what) + " '" + v.name + "' has no memory (an unbound weight)");
  return true;
}

bool Program::inputWrite(uint32_t index, const uint8_t* data, uint64_t length) {
  if (index >= s_.inputs.size()) return err.fail(KILN_E_ARGUMENT, "No input " + std::to_string(index));
  return valueWrite(static_cast<uint32_t>(s_.inputs[index]), data, length);
}

bool Program::outputRead(uint32_t index, uint8_t* data, uint64_t length) {
  if (index >= s_.outputs.size()) return err.fail(KILN_E_ARGUMENT, "No output " + std::to_string(index));
  return valueRead(static_cast<uint32_t>(s_.outputs[index]), data, length);
}

bool Program::valueRead(uint32_t value, uint8_t* data, uint64_t length) {
  if (!checkValueCopy(value, length, "reading value")) return false;
  if (length == 0) return true;
  hipSetDevice(ctx_->device());
  return hipCheck(hipMemcpyAsync(data, ptrs_[value], length, hipMemcpyDeviceToHost, stream_), "reading a value", err) &&
         hipCheck(hipStreamSynchronize(stream_), "reading a value", err);
}

bool Program::valueWrite(uint32_t value, const uint8_t* data, uint64_t length) {
  if (!checkValueCopy(value, length, "writing value")) return false;
  if (length == 0) return true;
  hipSetDevice(ctx_->device());
  return hipCheck(hipMemcpyAsync(ptrs_[value], data, length, hipMemcpyHostToDevice, stream_), "writing a value", err) &&
         hipCheck(hipStreamSynchronize(stream_), "writing a value", err);
}

bool Program::prepareSelect(const int32_t* slots, int32_t count, int32_t& chosen) {
  selected_.clear();
  std::vector<char> dirty(s_.values.size(), 0);
  if (count >= 0) {
    std::vector<char> slotDirty(s_.weights.size(), 0);
    for (int32_t i = 0; i < count; i++) {
      if (slots[i] < 0 || static_cast<size_t>(slots[i]) >= s_.weights.size()) {
        return err.fail(KILN_E_ARGUMENT, "No weight slot " + std::to_string(slots[i]));
      }
      slotDirty[static_cast<size_t>(slots[i])] = 1;
    }
    for (size_t v = 0; v < s_.values.size(); v++) {
      if (s_.values[v].storage == S_WEIGHT && slotDirty[s_.values[v].index]) dirty[v] = 1;
    }
  }
  for (int32_t ni : prepareNodes_) {
    const SNode& n = s_.nodes[static_cast<size_t>(ni)];
    if (count >= 0) {
      bool hit = false;
      for (int32_t x : n.inputs) {
        if (x >= 0 && dirty[static_cast<size_t>(root(x))]) hit = true;
      }
      if (!hit) continue;
      for (int32_t y : n.outputs) dirty[static_cast<size_t>(root(y))] = 1;
    }
    Step st{kernels_[static_cast<size_t>(ni)] ? ST_KERNEL : ST_HOST};
    st.node = ni;
    selected_.push_back(st);
  }
  // channels-last filters, laid out again where what they read changed
  for (size_t i = 0; i < relayouts_.size(); i++) {
    const int32_t v = relayouts_[i].reads;
    if (count >= 0 && (v < 0 || !dirty[static_cast<size_t>(root(v))])) continue;
    Step st{ST_AUX};
    st.node = relayouts_[i].kernel->node;
    st.target = static_cast<int32_t>(i);
    selected_.push_back(st);
  }
  // the 16-bit copies of the GEMM operands whose source changed, after every prepare node
  for (size_t h = 0; h < halves_.size(); h++) {
    if (count >= 0 && !dirty[static_cast<size_t>(halves_[h].source)]) continue;
    Step st{ST_HALF};
    st.node = halves_[h].node;
    st.value = halves_[h].source;
    st.target = static_cast<int32_t>(h);
    selected_.push_back(st);
  }
  chosen = static_cast<int32_t>(selected_.size());
  return true;
}

int32_t Program::exec(int32_t which, int32_t pc) {
  const std::vector<Step>& steps = list(which);
  if (pc < 0 || static_cast<size_t>(pc) > steps.size()) {
    err.fail(KILN_E_ARGUMENT, "Step " + std::to_string(pc) + " is out of range");
    return err.status;
  }
  for (size_t i = 0; i < slots_.size() && selected_set_ < 0; i++) {
    if (!slots_[i].bound) {
      err.fail(KILN_E_ARGUMENT, "Weight '" + s_.weights[i].name + "' is not bound");
      return err.status;
    }
  }
  hipSetDevice(ctx_->device());
  if (which == KILN_LIST_RUN && pc == 0 && graphs_ && !profiling_) {
    const int32_t r = execGraph();
    if (r != 0) return r < 0 ? r : 0;
  }
  const bool timing = profiling_ && which == KILN_LIST_RUN;
  if (timing) {
    if (pc == 0) stepMs_.assign(steps.size(), 0.0f);
    while (events_.size() < steps.size() + 1) {
      hipEvent_t e = nullptr;
      if (!hipCheck(hipEventCreate(&e), "creating a profiling event", err)) return err.status;
      events_.push_back(e);
    }
  }
  size_t segment = static_cast<size_t>(pc);  // the first step timed since the last synchronization
  auto collect = [&](size_t end) {  // after a synchronization: the device time of steps [segment, end)
    if (!timing) return;
    for (size_t k = segment; k < end; k++) {
      if (steps[k].kind != ST_KERNEL) continue;
      float ms = 0;
      if (hipEventElapsedTime(&ms, events_[k], events_[k + 1]) == hipSuccess) stepMs_[k] += ms;
    }
  };
  Exec x = execContext(&err);
  if (!hipCheck(hipMemsetAsync(status_, 0, sizeof(int32_t), stream_), "clearing the status word", err)) return err.status;
  for (size_t i = static_cast<size_t>(pc); i < steps.size(); i++) {
    const Step& st = steps[i];
    const SNode& n = s_.nodes[static_cast<size_t>(st.node)];
    switch (st.kind) {
      case ST_KERNEL: {
        Error kerr;
        x.err = &kerr;
        if (timing) hipEventRecord(events_[i], stream_);
        if (!kernels_[static_cast<size_t>(st.node)]->run(x)) {
          err.fail(kerr.status, nodeLabel(n) + ": " + kerr.message);
          return err.status;
        }
        if (timing) hipEventRecord(events_[i + 1], stream_);
        break;
      }
      case ST_HOST:
        if (!hipCheck(hipStreamSynchronize(stream_), ("running up to " + nodeLabel(n)).c_str(), err) ||
            !checkStatus()) {
          return err.status;
        }
        collect(i);
        return static_cast<int32_t>(i) + 1;
      case ST_BRANCH: {
        const SValue& c = s_.values[static_cast<size_t>(st.value)];
        uint8_t bytes[8] = {0};
        const size_t n8 = static_cast<size_t>(c.bytes < 8 ? c.bytes : 8);
        if (!hipCheck(hipMemcpyAsync(bytes, ptrs_[static_cast<size_t>(st.value)], n8, hipMemcpyDeviceToHost, stream_),
                      "reading an If condition", err) ||
            !hipCheck(hipStreamSynchronize(stream_), "reading an If condition", err)) {
          return err.status;
        }
        bool cond = false;
        for (size_t k = 0; k < n8; k++) cond = cond || bytes[k] != 0;
        if (!cond) i = static_cast<size_t>(st.target) - 1;
        break;
      }
      case ST_HALF: {
        const HalfCopy& h = halves_[static_cast<size_t>(st.target)];
        Error kerr;
        x.err = &kerr;
        if (!kiln_to_half(x, half_, reinterpret_cast<const float*>(ptrs_[static_cast<size_t>(st.value)]),
                          reinterpret_cast<uint16_t*>(block_ + h.at), h.elements)) {
          err.fail(kerr.status, nodeLabel(n) + ": " + kerr.message);
          return err.status;
        }
        break;
      }
      case ST_JUMP: i = static_cast<size_t>(st.target) - 1; break;
      case ST_AUX: {
        Error kerr;
        x.err = &kerr;
        if (!relayouts_[static_cast<size_t>(st.target)].kernel->run(x)) {
          err.fail(kerr.status, nodeLabel(n) + ": " + kerr.message);
          return err.status;
        }
        break;
      }
      case ST_COPY:
        if (!hipCheck(copyStep(st), ("copying the outputs of " + nodeLabel(n)).c_str(), err)) return err.status;
        break;
    }
  }
  if (!hipCheck(hipStreamSynchronize(stream_), "running the program", err) || !checkStatus()) return err.status;
  collect(steps.size());
  return 0;
}

// ---- graphs --------------------------------------------------------------------------------
// The run list is captured into a graph the first time it runs with a given set of device
// addresses (kernel arguments hold addresses), instantiated once and replayed: one launch
// instead of one per kernel. A swap changes weight addresses; the next eval then captures again
// and updates the cached executable graph in place when it can (same topology), so a swap
// costs one capture, not an instantiation. Graphs for several address sets are kept (resident
// weight sets switch between them). Anything the capture cannot take (a kernel that needs the
// host, a runtime without graphs) turns graphs off for the program, with the reason reported.

constexpr size_t kMaxGraphs = 8;

void Program::disableGraphs(const std::string& why) {
  graphs_ = false;
  graphWhy_ = why;
  releaseGraphs();
}

void Program::releaseGraphs() {
  for (Graph& g : graphCache_) {
    if (g.exec) hipGraphExecDestroy(g.exec);
  }
  graphCache_.clear();
}

Program::Graph* Program::graphForPointers() {
  for (Graph& g : graphCache_) {
    if (g.ptrs == ptrs_) {
      g.used = ++graphUse_;
      return &g;
    }
  }
  // no bind may allocate, free or upload while the run list is captured (Context::deviceMutex)
  std::lock_guard<std::mutex> lock(ctx_->deviceMutex());
  Error kerr;
  Exec x = execContext(&kerr);
  if (hipStreamBeginCapture(stream_, hipStreamCaptureModeThreadLocal) != hipSuccess) {
    hipGetLastError();
    disableGraphs(std::string("stream capture is not available: ") + hipGetErrorString(hipGetLastError()));
    return nullptr;
  }
  std::string why;
  if (hipMemsetAsync(status_, 0, sizeof(int32_t), stream_) != hipSuccess) why = "clearing the status word";
  for (size_t i = 0; why.empty() && i < run_.size(); i++) {
    const Step& st = run_[i];
    if (st.kind == ST_KERNEL) {
      if (!kernels_[static_cast<size_t>(st.node)]->run(x)) {
        why = nodeLabel(s_.nodes[static_cast<size_t>(st.node)]) + ": " + kerr.message;
      }
    } else if (st.kind == ST_COPY && copyStep(st) != hipSuccess) {
      why = "copying the outputs of " + nodeLabel(s_.nodes[static_cast<size_t>(st.node)]);
    }
  }
  hipGraph_t graph = nullptr;
  const hipError_t end = hipStreamEndCapture(stream_, &graph);
  if (why.empty() && (end != hipSuccess || graph == nullptr)) {
    why = std::string("ending the capture failed: ") + hipGetErrorString(end);
  }
  hipGetLastError();  // a failed capture leaves its error behind
  if (!why.empty()) {
    if (graph) hipGraphDestroy(graph);
    disableGraphs("capturing the run list failed at " + why);
    return nullptr;
  }
  graphCaptures_++;
  // a new entry while there is room (a swap alternates weights between two buffers per slot, so
  // the graphs of both address sets stay cached); else the least recently used one, updated in
  // place when the runtime can
  Graph* slot = nullptr;
  if (graphCache_.size() < kMaxGraphs) {
    graphCache_.push_back(Graph{});
    slot = &graphCache_.back();
  } else {
    slot = &graphCache_[0];
    for (Graph& g : graphCache_) {
      if (g.used < slot->used) slot = &g;
    }
  }
  bool ok = false;
  if (slot->exec && kilnGraphExecUpdate(slot->exec, graph)) {
    ok = true;
  } else {
    hipGetLastError();
    if (slot->exec) hipGraphExecDestroy(slot->exec);
    slot->exec = nullptr;
    ok = hipGraphInstantiateWithFlags(&slot->exec, graph, 0) == hipSuccess;
  }
  hipGraphDestroy(graph);
  if (!ok) {
    const std::string text = hipGetErrorString(hipGetLastError());
    disableGraphs("instantiating the run list's graph failed: " + text);
    return nullptr;
  }
  slot->ptrs = ptrs_;
  slot->used = ++graphUse_;
  return slot;
}

int32_t Program::execGraph() {
  Graph* g = graphForPointers();
  if (g == nullptr) return 0;  // graphs are off now: the caller runs the list step by step
  graphReplays_++;
  if (!hipCheck(hipGraphLaunch(g->exec, stream_), "launching the run list's graph", err) ||
      !hipCheck(hipStreamSynchronize(stream_), "running the program", err) || !checkStatus()) {
    return err.status;
  }
  return 1;
}

void Program::setProfiling(bool on) { profiling_ = on; }

std::string Program::profile() const {
  std::string out = "{\"steps\":[";
  bool first = true;
  for (size_t i = 0; i < stepMs_.size() && i < run_.size(); i++) {
    if (run_[i].kind != ST_KERNEL) continue;
    if (!first) out += ",";
    first = false;
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.6f", static_cast<double>(stepMs_[i]));
    out += "[" + std::to_string(run_[i].node) + "," + ms;
    const Kernel* k = kernels_[static_cast<size_t>(run_[i].node)].get();
    if (k && !k->label.empty()) {
      out += ",";
      jsonString(out, k->label);
    }
    out += "]";
  }
  return out + "]}";
}

Exec Program::execContext(Error* e) {
  Exec x;
  x.stream = stream_;
  x.ptrs = &ptrs_;
  x.workspace = workspace_;
  x.blas = blas_.get();
  x.dnn = dnn_.get();
  x.err = e;
  x.status = status_;
  return x;
}

hipError_t Program::copyStep(const Step& st) {
  char* dst = ptrs_[static_cast<size_t>(st.target)];
  const char* src = ptrs_[static_cast<size_t>(st.value)];
  const SValue& d = s_.values[static_cast<size_t>(st.target)];
  if (dst == src || d.bytes <= 0) return hipSuccess;
  return hipMemcpyAsync(dst, src, static_cast<size_t>(d.bytes), hipMemcpyDeviceToDevice, stream_);
}

bool Program::checkStatus() {
  int32_t word = 0;
  if (!hipCheck(hipMemcpyAsync(&word, status_, sizeof word, hipMemcpyDeviceToHost, stream_), "reading the status word", err) ||
      !hipCheck(hipStreamSynchronize(stream_), "reading the status word", err)) {
    return false;
  }
  if (word == 0) return true;
  const size_t node = static_cast<size_t>(word - 1);
  if (node >= s_.nodes.size() || !kernels_[node]) return err.fail(KILN_E_KERNEL, "A kernel reported bad data");
  return err.fail(KILN_E_KERNEL, nodeLabel(s_.nodes[node]) + ": " + kernels_[node]->badData);
}

int32_t Program::hostNode(int32_t which, int32_t pc) {
  const std::vector<Step>& steps = list(which);
  if (pc < 0 || static_cast<size_t>(pc) >= steps.size() || steps[static_cast<size_t>(pc)].kind != ST_HOST) {
    err.fail(KILN_E_ARGUMENT, "Step " + std::to_string(pc) + " is not a host step");
    return err.status;
  }
  return steps[static_cast<size_t>(pc)].node;
}

std::string Program::report() const {
  uint64_t weightBytes = 0, heldBytes = blockBytes_, spareBytes = 0;
  for (size_t i = 0; i < s_.weights.size(); i++) {
    const uint64_t b = static_cast<uint64_t>(s_.weights[i].bytes);
    weightBytes += b;
    if (slots_[i].ptr) heldBytes += b;
    if (slots_[i].prevPtr && slots_[i].prevPtr != slots_[i].ptr) heldBytes += b;
    if (slots_[i].staged) heldBytes += b;
    if (slots_[i].spare) spareBytes += b;
  }
  heldBytes += spareBytes;
  uint64_t residentBytes = 0;
  for (const ResidentSet& r : sets_) {
    for (size_t i = 0; i < r.ptrs.size(); i++) residentBytes += static_cast<uint64_t>(s_.weights[i].bytes);
  }
  heldBytes += residentBytes;
  if (blasWorkspace_) heldBytes += Blas::kWorkspaceBytes;
  int kernels = 0;
  std::string hostNodes, reasons;
  for (size_t i = 0; i < s_.nodes.size(); i++) {
    if (kernels_[i]) kernels++;
    if (hostReasons_[i].empty() || (s_.nodes[i].flags & N_SKIP) || s_.nodes[i].op == "If") continue;
    if (!hostNodes.empty()) {
      hostNodes += ",";
      reasons += ",";
    }
    hostNodes += std::to_string(i);
    jsonString(reasons, hostReasons_[i]);
  }
  std::string blas, graph, dnn, dnnMiss;
  jsonString(blas, blas_ ? blas_->name() : "kiln (" + blasWhy_ + ")");
  jsonString(dnn, dnn_ ? dnn_->name() : "kiln (" + dnnWhy_ + ")");
  jsonString(dnnMiss, dnnMissWhy_);
  std::string residualMiss;
  jsonString(residualMiss, residualMissWhy_);
  std::string channelsLastWhy;
  jsonString(channelsLastWhy, channelsLastWhy_);
  jsonString(graph, graphs_ ? "" : graphWhy_);
  // the GEMMs' arithmetic as it runs: 16-bit where any GEMM reads a 16-bit weight, and what stays float32
  std::string mode = tf32_ ? "tf32" : "float32", why = precisionWhy_;
  uint64_t halfBytes = 0;
  for (const HalfCopy& h : halves_) halfBytes += alignUp(static_cast<uint64_t>(h.elements > 0 ? h.elements : 1) * 2);
  std::string convs;
  if (half_ != H_NONE) {
    const std::string fmt = half_ == H_BF16 ? "bfloat16" : "float16";
    if (halfGemms_ > 0) mode = half_ == H_BF16 ? "bf16" : "fp16";
    std::string notes;
    auto note = [&](const std::string& t) { notes += (notes.empty() ? "" : "; ") + t; };
    if (halfGemms_ == 0) note("no MatMul or Gemm reads a B computed from weights only, so none runs in " + fmt);
    if (halfGemms_ > 0 && blas_ && !blas_->hasGemmEx()) {
      note(blas_->name() + " has no GEMM of 16-bit operands: kiln's own kernel runs the " + fmt + " GEMMs");
    }
    if (floatGemms_ > 0) {
      note(std::to_string(floatGemms_) + " MatMul/Gemm with a B computed in each eval stay float32 (" + floatGemmWhy_ +
           ")");
    }
    if (einsums32_ > 0) note(std::to_string(einsums32_) + " Einsum stay float32");
    int32_t convs32 = 0;
    for (const auto& k : kernels_) convs32 += (k && k->dnn) ? 1 : 0;
    if (convs32 > 0) {
      convs = dnnKernels_ > 0 ? "tf32" : "float32";
      if (dnnKernels_ > 0) note(std::to_string(dnnKernels_) + " Convs run in TF32 on " + dnn_->name());
      convs32 -= dnnKernels_;
      if (convs32 > 0) {
        note(std::to_string(convs32) + " Convs stay float32 on kiln's kernels (" +
             (dnnKernels_ > 0 ? dnnMissWhy_ : dnnWhy_) + ")");
      }
    }
    why = notes;
  }
  std::string precisionWhy, convsJson;
  jsonString(precisionWhy, why);
  jsonString(convsJson, convs);
  return "{\"deviceBytes\":" + std::to_string(heldBytes) + ",\"spareBytes\":" + std::to_string(spareBytes) +
         ",\"residentBytes\":" + std::to_string(residentBytes) + ",\"residentSets\":" + std::to_string(sets_.size()) +
         ",\"hostSetBytes\":" + std::to_string(hostSetBytes_) +
         ",\"arenaBytes\":" + std::to_string(arenaBytes_) +
         ",\"literalBytes\":" + std::to_string(s_.literalArenaBytes) + ",\"weightBytes\":" + std::to_string(weightBytes) +
         ",\"workspaceBytes\":" + std::to_string(workspaceBytes_) + ",\"blas\":" + blas + ",\"dnn\":" + dnn +
         ",\"dnnKernels\":" + std::to_string(dnnKernels_) + ",\"dnnMisses\":" + std::to_string(dnnMisses_) +
         ",\"dnnGraphApi\":" + std::to_string(dnnGraph_) +
         ",\"dnnMissWhy\":" + dnnMiss +
         ",\"graphs\":" + (graphs_ ? "true" : "false") + ",\"graphWhy\":" + graph +
         ",\"tf32\":" + (tf32_ ? "true" : "false") + ",\"precision\":\"" + mode + "\",\"precisionWhy\":" +
         precisionWhy + ",\"halfGemms\":" + std::to_string(halfGemms_) + ",\"floatGemms\":" +
         std::to_string(floatGemms_) + ",\"halfBytes\":" + std::to_string(halfBytes) + ",\"convPrecision\":" +
         convsJson + ",\"halfCopies\":" + std::to_string(halves_.size()) +
         ",\"graphCaptures\":" + std::to_string(graphCaptures_) + ",\"graphReplays\":" + std::to_string(graphReplays_) +
         ",\"kernels\":" + std::to_string(kernels) + ",\"fusedNodes\":" + std::to_string(fusedNodes_) +
         ",\"fusedKernels\":" + std::to_string(fusedKernels_) +
         ",\"foldedTransposes\":" + std::to_string(foldedTransposes_) +
         ",\"foldedScalings\":" + std::to_string(foldedScalings_) +
         ",\"channelsLastConvs\":" + std::to_string(channelsLastConvs_) + ",\"channelsLastWhy\":" + channelsLastWhy +
         ",\"relayouts\":" + std::to_string(relayouts_.size()) +
         ",\"convEpilogues\":" + std::to_string(convEpilogues_) +
         ",\"residualFolds\":" + std::to_string(residualFolds_) + ",\"residualMissWhy\":" + residualMiss + ",\"hostNodes\":[" + hostNodes + "],\"hostReasons\":[" + reasons +
         "]}";
}

}  // namespace kiln
