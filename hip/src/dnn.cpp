#include "dnn.h"

#include <dlfcn.h>

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
}

std::string DnnConv::describe() const {
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

std::unique_ptr<DnnConv> Dnn::plan(const DnnConvShape& s, bool tf32, std::string& why) {
  const Api& a = api();
  const int sp = s.spatial == 1 ? 2 : s.spatial;  // 1-D as 2-D with a unit height
  const int nb = sp + 2;
  const int64_t lim = 0x7fffffff;
  int64_t in[3], ker[3], out[3], str[3], pad[3], dil[3];
  for (int i = 0; i < sp; i++) {
    const int j = 3 - sp + i;  // the shape's dims are right-aligned in (d, h, w)
    in[i] = s.in[j];
    ker[i] = s.kernel[j];
    out[i] = s.out[j];
    str[i] = s.stride[j];
    pad[i] = s.pad[j];
    dil[i] = s.dilation[j];
  }
  int64_t xElems = s.n * s.c, yElems = s.n * s.m;
  for (int i = 0; i < sp; i++) {
    xElems *= in[i];
    yElems *= out[i];
  }
  if (xElems > lim || yElems > lim || s.c * ker[0] * ker[1] * (sp == 3 ? ker[2] : 1) > lim) {
    why = "tensors past 2^31 elements";
    return nullptr;
  }
  std::unique_ptr<DnnConv> p(new DnnConv());
  if (a.createTensor(&p->x_) != 0 || a.createTensor(&p->y_) != 0 || a.createFilter(&p->w_) != 0 ||
      a.createConv(&p->conv_) != 0) {
    why = "creating descriptors failed";
    return nullptr;
  }
  int xd[5], yd[5], wd[5], xs[5], ys[5], pads[3], strides[3], dils[3];
  xd[0] = yd[0] = static_cast<int>(s.n);
  xd[1] = static_cast<int>(s.c);
  yd[1] = static_cast<int>(s.m);
  wd[0] = static_cast<int>(s.m);
  wd[1] = static_cast<int>(s.c / s.group);
  for (int i = 0; i < sp; i++) {
    xd[2 + i] = static_cast<int>(in[i]);
    yd[2 + i] = static_cast<int>(out[i]);
    wd[2 + i] = static_cast<int>(ker[i]);
    pads[i] = static_cast<int>(pad[i]);
    strides[i] = static_cast<int>(str[i]);
    dils[i] = static_cast<int>(dil[i]);
  }
  xs[nb - 1] = ys[nb - 1] = 1;
  for (int i = nb - 2; i >= 0; i--) {
    xs[i] = xs[i + 1] * xd[i + 1];
    ys[i] = ys[i + 1] * yd[i + 1];
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
