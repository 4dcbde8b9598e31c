#include "dnn.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace kiln {
namespace {

// cuDNN's legacy convolution API (cudnn_graph.h, cudnn_cnn.h), declared here: status 0 is
// success; data type 0 = float; tensor format 0 = NCHW; mode 1 = cross-correlation (ONNX's Conv);
// math types 0 = default (TF32 allowed on sm_80+), 1 = tensor op, 3 = FMA only (strict float32).
typedef int (*Create)(void**);
typedef int (*Destroy)(void*);
typedef int (*SetStream)(void*, hipStream_t);
typedef size_t (*GetVersion)();
typedef const char* (*GetErrorString)(int);
typedef int (*CreateDesc)(void**);
typedef int (*DestroyDesc)(void*);
typedef int (*SetTensorNd)(void*, int dataType, int nbDims, const int* dims, const int* strides);
typedef int (*SetFilterNd)(void*, int dataType, int format, int nbDims, const int* dims);
typedef int (*SetConvNd)(void*, int arrayLength, const int* pads, const int* strides, const int* dilations, int mode,
                         int computeType);
typedef int (*SetConvGroupCount)(void*, int);
typedef int (*SetConvMathType)(void*, int);
typedef int (*GetConvNdOutputDim)(void* conv, void* x, void* w, int nbDims, int* out);
/** cudnnConvolutionFwdAlgoPerf_t */
struct AlgoPerf {
  int algo;
  int status;
  float time;
  size_t memory;
  int determinism;
  int mathType;
  int reserved[3];
};
typedef int (*GetFwdAlgo)(void* h, void* x, void* w, void* conv, void* y, int requested, int* returned, AlgoPerf* out);
typedef int (*GetFwdWorkspace)(void* h, void* x, void* w, void* conv, void* y, int algo, size_t* bytes);
typedef int (*SetActivation)(void*, int mode, int nanOpt, double coef);
typedef int (*ConvBiasActFwd)(void* h, const void* alpha1, void* xd, const void* x, void* wd, const void* w, void* conv,
                              int algo, void* ws, size_t wsBytes, const void* alpha2, void* zd, const void* z, void* bd,
                              const void* bias, void* act, void* yd, void* y);
typedef int (*ConvFwd)(void* h, const void* alpha, void* xd, const void* x, void* wd, const void* w, void* conv, int algo,
                       void* ws, size_t wsBytes, const void* beta, void* yd, void* y);

// cuDNN's graph ("backend") API (cudnn_graph.h): descriptors made, given attributes and finalized;
// an engine heuristic ranks the engines for an operation graph. kiln uses it for a lone
// convolution: it reaches engines the legacy API above does not (Hopper's tensor-core kernels).
typedef int (*BeCreate)(int type, void** desc);
typedef int (*BeDestroy)(void* desc);
typedef int (*BeFinalize)(void* desc);
typedef int (*BeSet)(void* desc, int name, int type, int64_t count, const void* values);
typedef int (*BeGet)(void* desc, int name, int type, int64_t requested, int64_t* count, void* values);
typedef int (*BeExecute)(void* handle, void* plan, void* pack);
// descriptor types (cudnnBackendDescriptorType_t)
constexpr int kDescConv = 1, kDescEngine = 2, kDescEngineCfg = 3, kDescHeur = 4, kDescPlan = 5, kDescOpConvFwd = 10,
              kDescOpGraph = 15, kDescPack = 16, kDescTensor = 17;
// attribute value types (cudnnBackendAttributeType_t)
constexpr int kTypeHandle = 0, kTypeDataType = 1, kTypeInt64 = 3, kTypeFloat = 4, kTypeVoidPtr = 6, kTypeConvMode = 7,
              kTypeHeurMode = 8, kTypeNumericalNote = 11, kTypeDescriptor = 15, kTypeBehaviorNote = 19;
// attribute names (cudnnBackendAttributeName_t)
constexpr int kConvCompType = 100, kConvMode = 101, kConvDilations = 102, kConvStrides = 103, kConvPostPad = 104,
              kConvPrePad = 105, kConvSpatialDims = 106;
constexpr int kHeurMode = 200, kHeurGraph = 201, kHeurResults = 202;
constexpr int kCfgEngine = 300;
constexpr int kPlanHandle = 400, kPlanConfig = 401, kPlanWorkspace = 402;
constexpr int kOpConvAlpha = 700, kOpConvBeta = 701, kOpConvDesc = 702, kOpConvW = 703, kOpConvX = 704, kOpConvY = 705;
constexpr int kGraphHandle = 800, kGraphOps = 801;
constexpr int kTensorAlignment = 900, kTensorDataType = 901, kTensorDims = 902, kTensorStrides = 903,
              kTensorUid = 906;
constexpr int kPackUids = 1000, kPackPointers = 1001, kPackWorkspace = 1003;
/** the variant pack's ids of x, w and y */
constexpr int64_t kUids[3] = {1, 2, 3};
constexpr int kEngineIndex = 1301, kEngineNumericalNote = 1303, kEngineBehaviorNote = 1305;
// numerical notes: tensor cores, inputs converted down (TF32), reduced-precision sums
constexpr int kNoteTensorCore = 0, kNoteDownConvert = 1, kNoteReducedPrecision = 2;
constexpr int kBehaviorRuntimeCompilation = 0;
// heuristic modes (cudnnBackendHeurMode_t)
constexpr int kHeurInstant = 0;

constexpr int kFloat = 0, kNchw = 0, kCrossCorrelation = 1;
constexpr int kDefaultMath = 0, kFmaMath = 3;
constexpr int kAlgoCount = 8;
constexpr int kImplicitPrecompGemm = 1;  // the algorithm the library fuses a bias alone (identity) with
constexpr int kActRelu = 1, kActIdentity = 5, kPropagateNan = 1;

struct Api {
  bool tried = false;
  std::string file, why, version;
  Create create = nullptr;
  Destroy destroy = nullptr;
  SetStream setStream = nullptr;
  GetErrorString errorString = nullptr;
  CreateDesc createTensor = nullptr, createFilter = nullptr, createConv = nullptr;
  DestroyDesc destroyTensor = nullptr, destroyFilter = nullptr, destroyConv = nullptr;
  SetTensorNd setTensor = nullptr;
  SetFilterNd setFilter = nullptr;
  SetConvNd setConv = nullptr;
  SetConvGroupCount setGroups = nullptr;
  SetConvMathType setMath = nullptr;
  GetConvNdOutputDim outputDim = nullptr;
  GetFwdAlgo heuristics = nullptr;
  GetFwdWorkspace workspace = nullptr;
  ConvFwd forward = nullptr;
  CreateDesc createAct = nullptr;
  DestroyDesc destroyAct = nullptr;
  SetActivation setAct = nullptr;
  ConvBiasActFwd forwardFused = nullptr;
  // the graph API: all six or none (then only the legacy API runs)
  BeCreate beCreate = nullptr;
  BeDestroy beDestroy = nullptr;
  BeFinalize beFinalize = nullptr;
  BeSet beSet = nullptr;
  BeGet beGet = nullptr;
  BeExecute beExecute = nullptr;
  bool graph() const { return beExecute != nullptr; }
};

std::mutex g_mutex;
Api g_api;

template <typename F>
bool load(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

const Api& api() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_api.tried) return g_api;
  g_api.tried = true;
#if defined(KILN_EMU)
  g_api.why = "the emulator has no vendor DNN library";
#elif defined(KILN_AMD)
  g_api.why = "MIOpen is not wired into kiln yet";
#else
  const char* names[] = {"libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"};
  for (const char* n : names) {
    void* lib = dlopen(n, RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    Api a;
    GetVersion version = nullptr;
    const bool ok = load(lib, "cudnnCreate", a.create) && load(lib, "cudnnDestroy", a.destroy) &&
                    load(lib, "cudnnSetStream", a.setStream) && load(lib, "cudnnGetErrorString", a.errorString) &&
                    load(lib, "cudnnGetVersion", version) &&
                    load(lib, "cudnnCreateTensorDescriptor", a.createTensor) &&
                    load(lib, "cudnnDestroyTensorDescriptor", a.destroyTensor) &&
                    load(lib, "cudnnCreateFilterDescriptor", a.createFilter) &&
                    load(lib, "cudnnDestroyFilterDescriptor", a.destroyFilter) &&
                    load(lib, "cudnnCreateConvolutionDescriptor", a.createConv) &&
                    load(lib, "cudnnDestroyConvolutionDescriptor", a.destroyConv) &&
                    load(lib, "cudnnSetTensorNdDescriptor", a.setTensor) &&
                    load(lib, "cudnnSetFilterNdDescriptor", a.setFilter) &&
                    load(lib, "cudnnSetConvolutionNdDescriptor", a.setConv) &&
                    load(lib, "cudnnSetConvolutionGroupCount", a.setGroups) &&
                    load(lib, "cudnnSetConvolutionMathType", a.setMath) &&
                    load(lib, "cudnnGetConvolutionNdForwardOutputDim", a.outputDim) &&
                    load(lib, "cudnnGetConvolutionForwardAlgorithm_v7", a.heuristics) &&
                    load(lib, "cudnnGetConvolutionForwardWorkspaceSize", a.workspace) &&
                    load(lib, "cudnnConvolutionForward", a.forward) &&
                    load(lib, "cudnnCreateActivationDescriptor", a.createAct) &&
                    load(lib, "cudnnDestroyActivationDescriptor", a.destroyAct) &&
                    load(lib, "cudnnSetActivationDescriptor", a.setAct) &&
                    load(lib, "cudnnConvolutionBiasActivationForward", a.forwardFused);
    if (!ok) {
      g_api.why = std::string(n) + " lacks the convolution API kiln calls (" + dlerror() + ")";
      continue;
    }
    Api g = a;
    if (load(lib, "cudnnBackendCreateDescriptor", g.beCreate) && load(lib, "cudnnBackendDestroyDescriptor", g.beDestroy) &&
        load(lib, "cudnnBackendFinalize", g.beFinalize) && load(lib, "cudnnBackendSetAttribute", g.beSet) &&
        load(lib, "cudnnBackendGetAttribute", g.beGet) && load(lib, "cudnnBackendExecute", g.beExecute)) {
      a = g;
    }
    const size_t v = version();
    a.tried = true;
    a.file = n;
    // cuDNN 9 numbers versions major * 10000 + minor * 100 + patch, cuDNN 8 major * 1000 + ...
    a.version = v >= 90000 ? std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100)
                           : std::to_string(v / 1000) + "." + std::to_string(v / 100 % 10) + "." + std::to_string(v % 100);
    g_api = a;
    return g_api;
  }
  if (g_api.why.empty()) g_api.why = "no cuDNN library found (libcudnn.so.9 or .8)";
#endif
  return g_api;
}

const char* algoName(int algo) {
  static const char* names[kAlgoCount] = {"implicit GEMM", "implicit precomputed GEMM", "GEMM", "direct",
                                          "FFT", "tiled FFT", "Winograd", "non-fused Winograd"};
  return algo >= 0 && algo < kAlgoCount ? names[algo] : "unknown";
}

std::string statusText(const Api& a, int status) {
  const char* s = a.errorString ? a.errorString(status) : nullptr;
  return s ? std::string(s) : "status " + std::to_string(status);
}

}  // namespace

DnnConv::~DnnConv() {
  const Api& a = api();
  if (x_) a.destroyTensor(x_);
  if (y_) a.destroyTensor(y_);
  if (w_) a.destroyFilter(w_);
  if (conv_) a.destroyConv(conv_);
  if (bias_) a.destroyTensor(bias_);
  if (act_) a.destroyAct(act_);
  if (pack_) a.beDestroy(pack_);
  for (auto it = owned_.rbegin(); it != owned_.rend(); ++it) a.beDestroy(*it);
}

std::string DnnConv::describe() const {
  if (graphApi) return "graph API engine " + std::to_string(engine) + (math_ == kFmaMath ? ", FMA" : ", tensor cores allowed");
  return std::string(algoName(algo)) + (math_ == kFmaMath ? ", FMA" : ", tensor cores allowed") +
         (fused ? ", epilogue fused" : "");
}

Dnn* Dnn::create(hipStream_t stream, std::string& why) {
  const Api& a = api();
  if (!a.create) {
    why = a.why;
    return nullptr;
  }
  void* h = nullptr;
  const int st = a.create(&h);
  if (st != 0 || h == nullptr) {
    why = "creating a handle of " + a.file + " failed: " + statusText(a, st);
    return nullptr;
  }
  if (a.setStream(h, stream) != 0) {
    a.destroy(h);
    why = "binding " + a.file + " to the program's stream failed";
    return nullptr;
  }
  Dnn* d = new Dnn();
  d->handle_ = h;
  d->name_ = "cudnn " + a.version + " (" + a.file + ")";
  return d;
}

Dnn::~Dnn() {
  if (handle_) api().destroy(handle_);
}

namespace {

/** Which API plans a convolution: KILN_CUDNN_API=legacy|graph overrides the default (a measuring knob). */
bool graphFirst(bool tf32) {
  const char* e = std::getenv("KILN_CUDNN_API");
  if (e && std::strcmp(e, "legacy") == 0) return false;
  if (e && std::strcmp(e, "graph") == 0) return true;
  // the default: the graph API for TF32 (it reaches the Hopper tensor-core engines); strict float32
  // stays on the legacy API, whose fused bias + activation call the graph API has no precompiled
  // engine for
  return tf32;
}

/**
 * A convolution's tensors as both APIs describe them: NC + spatial dims (1-D as 2-D with a unit
 * height), packed strides, and per spatial dim the stride, dilation and padding at the start and at
 * the end (the end padding that gives kiln's output extent; the legacy API takes only the start).
 */
struct Geometry {
  int sp = 2, nb = 4;
  int64_t x[5], y[5], w[5], xs[5], ys[5], ws[5], stride[3], dilation[3], pre[3], post[3];
};

Geometry geometryOf(const DnnConvShape& s) {
  Geometry g;
  g.sp = s.spatial == 1 ? 2 : s.spatial;
  g.nb = g.sp + 2;
  g.x[0] = g.y[0] = s.n;
  g.x[1] = s.c;
  g.y[1] = g.w[0] = s.m;
  g.w[1] = s.c / s.group;  // the graph API infers the groups from x's and w's channels
  for (int i = 0; i < g.sp; i++) {
    const int j = 3 - g.sp + i;  // the shape's dims are right-aligned in (d, h, w)
    g.x[2 + i] = s.in[j];
    g.y[2 + i] = s.out[j];
    g.w[2 + i] = s.kernel[j];
    g.stride[i] = s.stride[j];
    g.dilation[i] = s.dilation[j];
    g.pre[i] = s.pad[j];
    g.post[i] = std::max<int64_t>(0, (s.out[j] - 1) * s.stride[j] + (s.kernel[j] - 1) * s.dilation[j] + 1 - s.in[j] -
                                         s.pad[j]);
  }
  g.xs[g.nb - 1] = g.ys[g.nb - 1] = g.ws[g.nb - 1] = 1;
  for (int i = g.nb - 2; i >= 0; i--) {
    g.xs[i] = g.xs[i + 1] * g.x[i + 1];
    g.ys[i] = g.ys[i + 1] * g.y[i + 1];
    g.ws[i] = g.ws[i + 1] * g.w[i + 1];
  }
  // channels-last: channels innermost, then the spatial dims from the last, then the batch (or,
  // for the filter, the output channels)
  auto channelsLast = [&](const int64_t* d, int64_t* st) {
    int64_t run = d[1];
    st[1] = 1;
    for (int i = g.nb - 1; i >= 2; i--) {
      st[i] = run;
      run *= d[i];
    }
    st[0] = run;
  };
  if (s.xNhwc) channelsLast(g.x, g.xs);
  if (s.yNhwc) channelsLast(g.y, g.ys);
  if (s.channelsLast()) channelsLast(g.w, g.ws);
  return g;
}

}  // namespace

bool Dnn::planGraph(const DnnConvShape& s, bool tf32, DnnConv& p, std::string& why) {
  const Api& a = api();
  auto make = [&](int type) -> void* {
    void* d = nullptr;
    if (a.beCreate(type, &d) != 0 || d == nullptr) return nullptr;
    p.owned_.push_back(d);
    return d;
  };
  const Geometry g = geometryOf(s);
  const int sp = g.sp, nb = g.nb;
  const int dt = kFloat;
  const int64_t align = 16;
  void* tensors[3];
  const int64_t* dims[3] = {g.x, g.w, g.y};
  const int64_t* strides[3] = {g.xs, g.ws, g.ys};
  for (int t = 0; t < 3; t++) {
    void* d = make(kDescTensor);
    const int64_t uid = kUids[t];
    if (!d || a.beSet(d, kTensorDataType, kTypeDataType, 1, &dt) != 0 ||
        a.beSet(d, kTensorDims, kTypeInt64, nb, dims[t]) != 0 ||
        a.beSet(d, kTensorStrides, kTypeInt64, nb, strides[t]) != 0 ||
        a.beSet(d, kTensorUid, kTypeInt64, 1, &uid) != 0 || a.beSet(d, kTensorAlignment, kTypeInt64, 1, &align) != 0 ||
        a.beFinalize(d) != 0) {
      why = "the graph API refuses a tensor of the convolution";
      return false;
    }
    tensors[t] = d;
  }
  void* conv = make(kDescConv);
  const int64_t spatial = sp;
  const int mode = kCrossCorrelation;
  if (!conv || a.beSet(conv, kConvSpatialDims, kTypeInt64, 1, &spatial) != 0 ||
      a.beSet(conv, kConvCompType, kTypeDataType, 1, &dt) != 0 ||
      a.beSet(conv, kConvMode, kTypeConvMode, 1, &mode) != 0 ||
      a.beSet(conv, kConvPrePad, kTypeInt64, sp, g.pre) != 0 || a.beSet(conv, kConvPostPad, kTypeInt64, sp, g.post) != 0 ||
      a.beSet(conv, kConvDilations, kTypeInt64, sp, g.dilation) != 0 ||
      a.beSet(conv, kConvStrides, kTypeInt64, sp, g.stride) != 0 || a.beFinalize(conv) != 0) {
    why = "the graph API refuses the convolution's geometry";
    return false;
  }
  void* op = make(kDescOpConvFwd);
  const float one = 1.0f, zero = 0.0f;
  if (!op || a.beSet(op, kOpConvX, kTypeDescriptor, 1, &tensors[0]) != 0 ||
      a.beSet(op, kOpConvW, kTypeDescriptor, 1, &tensors[1]) != 0 ||
      a.beSet(op, kOpConvY, kTypeDescriptor, 1, &tensors[2]) != 0 ||
      a.beSet(op, kOpConvDesc, kTypeDescriptor, 1, &conv) != 0 || a.beSet(op, kOpConvAlpha, kTypeFloat, 1, &one) != 0 ||
      a.beSet(op, kOpConvBeta, kTypeFloat, 1, &zero) != 0 || a.beFinalize(op) != 0) {
    why = "the graph API refuses the convolution operation";
    return false;
  }
  void* graph = make(kDescOpGraph);
  if (!graph || a.beSet(graph, kGraphOps, kTypeDescriptor, 1, &op) != 0 ||
      a.beSet(graph, kGraphHandle, kTypeHandle, 1, &handle_) != 0 || a.beFinalize(graph) != 0) {
    why = "the graph API refuses the operation graph";
    return false;
  }
  void* heur = make(kDescHeur);
  // the instant mode, as PyTorch's default; measured on the H200 (ResNet-50 batch 8, TF32): modes
  // A and B, timing the first 4 to 16 engines at plan time and allowing runtime-compiled engines
  // gave no faster graph (1.94-2.10 ms against 1.87-2.04)
  const int hmode = kHeurInstant;
  if (!heur || a.beSet(heur, kHeurGraph, kTypeDescriptor, 1, &graph) != 0 ||
      a.beSet(heur, kHeurMode, kTypeHeurMode, 1, &hmode) != 0 || a.beFinalize(heur) != 0) {
    why = "the graph API's engine heuristics failed";
    return false;
  }
  int64_t count = 0;
  if (a.beGet(heur, kHeurResults, kTypeDescriptor, 0, &count, nullptr) != 0 || count <= 0) {
    why = "the graph API's heuristics offer no engine";
    return false;
  }
  std::vector<void*> cfgs;
  for (int64_t i = 0; i < count; i++) {
    void* c = make(kDescEngineCfg);
    if (!c) break;
    cfgs.push_back(c);
  }
  int64_t got = 0;
  if (a.beGet(heur, kHeurResults, kTypeDescriptor, static_cast<int64_t>(cfgs.size()), &got, cfgs.data()) != 0) {
    why = "reading the graph API's engine configs failed";
    return false;
  }
  for (int64_t i = 0; i < got && i < static_cast<int64_t>(cfgs.size()); i++) {
    void* engine = make(kDescEngine);
    int64_t n = 0, index = -1;
    if (!engine || a.beGet(cfgs[i], kCfgEngine, kTypeDescriptor, 1, &n, &engine) != 0) continue;
    int notes[16] = {0}, behaviors[16] = {0};
    int64_t nNotes = 0, nBehaviors = 0;
    a.beGet(engine, kEngineNumericalNote, kTypeNumericalNote, 16, &nNotes, notes);
    a.beGet(engine, kEngineBehaviorNote, kTypeBehaviorNote, 16, &nBehaviors, behaviors);
    a.beGet(engine, kEngineIndex, kTypeInt64, 1, &n, &index);
    bool reduced = false, compiles = false;
    for (int64_t k = 0; k < nNotes && k < 16; k++) {
      reduced = reduced || notes[k] == kNoteTensorCore || notes[k] == kNoteDownConvert || notes[k] == kNoteReducedPrecision;
    }
    for (int64_t k = 0; k < nBehaviors && k < 16; k++) compiles = compiles || behaviors[k] == kBehaviorRuntimeCompilation;
    // strict float32: no tensor cores (they multiply in TF32); runtime-compiled engines need NVRTC
    // and seconds at plan time: passed over
    if ((!tf32 && reduced) || compiles) continue;
    void* plan = make(kDescPlan);
    if (!plan || a.beSet(plan, kPlanHandle, kTypeHandle, 1, &handle_) != 0 ||
        a.beSet(plan, kPlanConfig, kTypeDescriptor, 1, &cfgs[i]) != 0 || a.beFinalize(plan) != 0) {
      continue;
    }
    int64_t wsBytes = 0;
    if (a.beGet(plan, kPlanWorkspace, kTypeInt64, 1, &n, &wsBytes) != 0 || wsBytes < 0 ||
        static_cast<uint64_t>(wsBytes) > kMaxWorkspaceBytes) {
      continue;
    }
    p.plan_ = plan;
    p.graphApi = true;
    p.engine = index;
    p.workspaceBytes = static_cast<uint64_t>(wsBytes);
    p.math_ = reduced ? kDefaultMath : kFmaMath;
    return true;
  }
  why = "the graph API has no engine for this convolution" + std::string(tf32 ? "" : " in strict float32");
  return false;
}

std::unique_ptr<DnnConv> Dnn::plan(const DnnConvShape& s, bool tf32, std::string& why) {
  const Api& a = api();
  if (a.graph() && graphFirst(tf32)) {
    std::unique_ptr<DnnConv> g(new DnnConv());
    std::string graphWhy;
    if (planGraph(s, tf32, *g, graphWhy)) return g;
    if (s.channelsLast()) {
      why = "the graph API plans no channels-last engine: " + graphWhy;
      return nullptr;
    }
    // the legacy API below may still take it; its reason is the one reported if it does not
  }
  if (s.channelsLast()) {
    why = "channels-last convolutions need cuDNN's graph API";
    return nullptr;
  }
  const Geometry g = geometryOf(s);
  const int sp = g.sp, nb = g.nb;
  const int64_t lim = 0x7fffffff;
  if (g.xs[0] * g.x[0] > lim || g.ys[0] * g.y[0] > lim || s.c * g.ws[1] > lim) {
    why = "tensors past 2^31 elements";
    return nullptr;
  }
  std::unique_ptr<DnnConv> p(new DnnConv());
  if (a.createTensor(&p->x_) != 0 || a.createTensor(&p->y_) != 0 || a.createFilter(&p->w_) != 0 ||
      a.createConv(&p->conv_) != 0) {
    why = "creating descriptors failed";
    return nullptr;
  }
  // the legacy API takes int dims (all within 2^31: checked above)
  int xd[5], yd[5], wd[5], xs[5], ys[5], pads[3], strides[3], dils[3];
  for (int i = 0; i < nb; i++) {
    xd[i] = static_cast<int>(g.x[i]);
    yd[i] = static_cast<int>(g.y[i]);
    wd[i] = static_cast<int>(g.w[i]);
    xs[i] = static_cast<int>(g.xs[i]);
    ys[i] = static_cast<int>(g.ys[i]);
  }
  for (int i = 0; i < sp; i++) {
    pads[i] = static_cast<int>(g.pre[i]);
    strides[i] = static_cast<int>(g.stride[i]);
    dils[i] = static_cast<int>(g.dilation[i]);
  }
  p->math_ = tf32 ? kDefaultMath : kFmaMath;
  int st = a.setTensor(p->x_, kFloat, nb, xd, xs);
  if (st == 0) st = a.setTensor(p->y_, kFloat, nb, yd, ys);
  if (st == 0) st = a.setFilter(p->w_, kFloat, kNchw, nb, wd);
  if (st == 0) st = a.setConv(p->conv_, sp, pads, strides, dils, kCrossCorrelation, kFloat);
  if (st == 0) st = a.setGroups(p->conv_, static_cast<int>(s.group));
  if (st == 0) st = a.setMath(p->conv_, p->math_);
  if (st != 0) {
    why = "cuDNN refuses the geometry: " + statusText(a, st);
    return nullptr;
  }
  // the library's own output dims must be kiln's (padding differing at the end only is accepted
  // when it changes no output: the taps past the input's end are never read)
  int od[5];
  if (a.outputDim(p->conv_, p->x_, p->w_, nb, od) != 0 || std::memcmp(od, yd, sizeof(int) * nb) != 0) {
    why = "cuDNN computes other output dims (asymmetric padding)";
    return nullptr;
  }
  AlgoPerf perf[kAlgoCount];
  int count = 0;
  // the heuristics, not cudnnFind: measured on the H200, the algorithms Find timed one by one made
  // ResNet-50's graph slower (5.3 ms against 4.8), and Find runs every candidate at compile time
  st = a.heuristics(handle_, p->x_, p->w_, p->conv_, p->y_, kAlgoCount, &count, perf);
  if (st != 0) {
    why = "cuDNN's algorithm heuristics failed: " + statusText(a, st);
    return nullptr;
  }
  for (int i = 0; i < count && i < kAlgoCount; i++) {
    const AlgoPerf& r = perf[i];
    if (r.status != 0 || r.algo < 0 || r.algo >= kAlgoCount) continue;
    // strict float32: only kernels that multiply in float32 (FMA math)
    if (!tf32 && r.mathType != kFmaMath) continue;
    size_t ws = 0;
    if (a.workspace(handle_, p->x_, p->w_, p->conv_, p->y_, r.algo, &ws) != 0 || ws > kMaxWorkspaceBytes) continue;
    if (r.mathType != p->math_ && a.setMath(p->conv_, r.mathType) != 0) continue;
    p->math_ = r.mathType;
    p->algo = r.algo;
    p->workspaceBytes = ws;
    // strict float32 only: on the H200 (2026-11-30, ResNet-50 batch 8, A/B in one lease) the fused
    // call took the FMA path from 4.46 to 4.21 ms, and the TF32 path from 2.04 to 2.17 ms (with
    // tensor-core math the plain call and kiln's bias pass are faster)
    if (!tf32 && s.bias && (s.relu || r.algo == kImplicitPrecompGemm)) {
      int bd[5] = {1, static_cast<int>(s.m), 1, 1, 1}, bs[5];
      bs[nb - 1] = 1;
      for (int i = nb - 2; i >= 0; i--) bs[i] = bs[i + 1] * bd[i + 1];
      p->fused = a.createTensor(&p->bias_) == 0 && a.setTensor(p->bias_, kFloat, nb, bd, bs) == 0 &&
                 a.createAct(&p->act_) == 0 &&
                 a.setAct(p->act_, s.relu ? kActRelu : kActIdentity, kPropagateNan, 0.0) == 0;
    }
    return p;
  }
  why = "cuDNN offers no algorithm for this convolution" + std::string(tf32 ? "" : " in strict float32");
  return nullptr;
}

bool Dnn::forward(const DnnConv& p, const float* x, const float* w, float* y, void* workspace, Error& err) {
  const Api& a = api();
  if (p.graphApi) {
    int st = 0;
    const void* at[4] = {x, w, y, workspace};
    if (!p.pack_ || std::memcmp(at, p.packFor_, sizeof(at)) != 0) {
      if (p.pack_) a.beDestroy(p.pack_);
      p.pack_ = nullptr;
      void* pack = nullptr;
      if (a.beCreate(kDescPack, &pack) != 0 || pack == nullptr) {
        return err.fail(KILN_E_KERNEL, "creating cuDNN's variant pack failed");
      }
      void* ptrs[3] = {const_cast<float*>(x), const_cast<float*>(w), y};
      st = a.beSet(pack, kPackUids, kTypeInt64, 3, kUids);
      if (st == 0) st = a.beSet(pack, kPackPointers, kTypeVoidPtr, 3, ptrs);
      if (st == 0) st = a.beSet(pack, kPackWorkspace, kTypeVoidPtr, 1, &workspace);
      if (st == 0) st = a.beFinalize(pack);
      if (st != 0) {
        a.beDestroy(pack);
        return err.fail(KILN_E_KERNEL, "cuDNN's variant pack failed: " + statusText(a, st));
      }
      p.pack_ = pack;
      std::memcpy(p.packFor_, at, sizeof(at));
    }
    st = a.beExecute(handle_, p.plan_, p.pack_);
    if (st != 0) {
      return err.fail(KILN_E_KERNEL, "cuDNN's graph API convolution (engine " + std::to_string(p.engine) +
                                         ") failed: " + statusText(a, st));
    }
    return true;
  }
  const float one = 1.0f, zero = 0.0f;
  const int st = a.forward(handle_, &one, p.x_, x, p.w_, w, p.conv_, p.algo, workspace, p.workspaceBytes, &zero, p.y_, y);
  if (st != 0) {
    return err.fail(KILN_E_KERNEL, "cudnnConvolutionForward failed (" + std::string(algoName(p.algo)) + "): " +
                                       statusText(a, st));
  }
  return true;
}

bool Dnn::forwardFused(const DnnConv& p, const float* x, const float* w, const float* bias, const float* z, float* y,
                       void* workspace, Error& err) {
  const Api& a = api();
  const float one = 1.0f, zero = 0.0f;
  // without a residual, z is y with alpha2 0 (the library reads no z then)
  const int st = a.forwardFused(handle_, &one, p.x_, x, p.w_, w, p.conv_, p.algo, workspace, p.workspaceBytes,
                                z ? &one : &zero, p.y_, z ? z : y, p.bias_, bias, p.act_, p.y_, y);
  if (st != 0) {
    return err.fail(KILN_E_KERNEL, "cudnnConvolutionBiasActivationForward failed (" + std::string(algoName(p.algo)) +
                                       "): " + statusText(a, st));
  }
  return true;
}

}  // namespace kiln
