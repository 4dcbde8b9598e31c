// MatMul, Gemm and Einsum (wasm/ops/linalg.ts, wasm/ops/data/einsum.ts), lowered onto kiln_gemm
// (gemm.h, gemm.hip: the vendor BLAS when one loaded, kiln's own tiled SGEMM otherwise), Einsum
// onto a generic kernel where the equation is not a batched matmul.
//
// MatMul follows numpy: 1-D operands are promoted and their dim dropped; a B without batch dims
// (or with only size-1 ones) folds A's batch into rows (one GEMM of batch*M rows); otherwise the
// broadcast batch runs as strided-batched GEMMs over the longest trailing run of batch dims whose
// offsets are linear in the batch index (stride 0 for a broadcast operand), one call per index of
// the dims before it. Gemm fills Y with beta * C broadcast to [M, N] and accumulates onto it
// (the ref's order). Einsum: two float32 operands that form a batched matmul run on the GEMM (each
// operand read in place when its layout is [batch, m, k] / [batch, k, m] (A) or [batch, k, n] /
// [batch, n, k] (B), else packed into the workspace); every other float32 or float64 equation (up
// to 4 operands and 12 labels) runs on a kernel with one thread per output element summing the
// products in double, as the ref's index loop does.
//
// On the host, each with its reason: float16, bfloat16, float64 and integer MatMul/Gemm (no device
// GEMM of those types), Einsum of other element types or past those limits.
#include <algorithm>
#include <map>

#include "device.h"
#include "gemm.h"

namespace kiln {
namespace {

constexpr int kThreads = 256;

// ---- MatMul ------------------------------------------------------------------------------

/** Element offsets of one strided-batched GEMM call. */
struct GemmCall {
  int64_t a, b, c;
};

struct MatMulKernel : Kernel {
  MatMulKernel() { blas = true; }
  int32_t A = -1, B = -1, Y = -1;
  bool transA = false, transB = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldc = 0;
  int64_t strideA = 0, strideB = 0, strideC = 0, batch = 1;
  float alpha = 1.0f;  // scalings of the operands folded in (fuse.cpp)
  std::vector<GemmCall> calls;
  bool run(Exec& x) override {
    const float* a = x.at<const float>(A);
    const float* b = x.at<const float>(B);
    float* y = x.at<float>(Y);
    for (const GemmCall& c : calls) {
      const bool ok =
          half != H_NONE
              ? kiln_gemm_half(x, half, transA, transB, m, n, k, alpha, a + c.a, lda, strideA, halfB + c.b, ldb,
                               strideB, 0.0f, y + c.c, ldc, strideC, batch)
              : kiln_gemm(x, transA, transB, m, n, k, alpha, a + c.a, lda, strideA, b + c.b, ldb, strideB, 0.0f,
                          y + c.c, ldc, strideC, batch);
      if (!ok) return false;
    }
    return true;
  }
  int32_t gemmB() const override { return B; }
  int64_t gemmAHalfBytes() const override { return gemmHalfWorkspace(m, k, strideA, batch); }
};

int64_t product(const std::vector<int64_t>& d, size_t from = 0, size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t i = from; i < d.size() && i < to; i++) p *= d[i];
  return p;
}

/** The layout of one GEMM operand whose rows (length `rows`) and columns (`cols`) have these element strides. */
bool gemmLayout(int64_t rows, int64_t cols, int64_t rowStride, int64_t colStride, bool& trans, int64_t& ld) {
  if (cols == 1 || colStride == 1) {  // row-major: element (i, j) at i * ld + j
    trans = false;
    ld = rows == 1 ? cols : rowStride;
    return ld >= cols;
  }
  if (rows == 1 || rowStride == 1) {  // stored transposed: element (i, j) at j * ld + i
    trans = true;
    ld = colStride;
    return ld >= rows;
  }
  return false;
}

}  // namespace

std::unique_ptr<Kernel> lowerMatMulViews(const NodeView& v, const StridedOperand* av, const StridedOperand* bv,
                                         const StridedOperand* yv, std::string& why, float alpha) {
  if (!v.has(0) || !v.has(1)) return nullptr;
  const SValue& a = v.in(0);
  const SValue& b = v.in(1);
  const SValue& o = v.out(0);
  if (a.dtype != DT_FLOAT || b.dtype != DT_FLOAT || o.dtype != DT_FLOAT) {
    why = std::string("MatMul of ") + dtypeName(a.dtype) + " (the device GEMM is float32)";
    return nullptr;
  }
  const int ra = a.rank(), rb = b.rank();
  if (ra == 0 || rb == 0) return nullptr;
  // every operand as dims and element strides: the node's own (contiguous) unless a view is given
  const std::vector<int64_t> as = av ? av->strides : contiguousStrides(a.dims);
  const std::vector<int64_t> bs = bv ? bv->strides : contiguousStrides(b.dims);
  const std::vector<int64_t> ys = yv ? yv->strides : contiguousStrides(o.dims);
  if ((av && av->dims != a.dims) || (bv && bv->dims != b.dims) || (yv && yv->dims != o.dims)) {
    why = "a strided view of other dims";
    return nullptr;
  }
  const int64_t M = ra > 1 ? a.dims[static_cast<size_t>(ra - 2)] : 1;
  const int64_t K = a.dims[static_cast<size_t>(ra - 1)];
  const int64_t N = rb > 1 ? b.dims[static_cast<size_t>(rb - 1)] : 1;
  const int64_t Kb = rb == 1 ? b.dims[0] : b.dims[static_cast<size_t>(rb - 2)];
  if (K != Kb) return nullptr;
  std::vector<int64_t> ab, bb;
  if (ra > 2) ab.assign(a.dims.begin(), a.dims.end() - 2);
  if (rb > 2) bb.assign(b.dims.begin(), b.dims.end() - 2);
  const size_t R = std::max(ab.size(), bb.size());
  std::vector<int64_t> batch(R), la(R), lb(R), sa(R), sb(R), sc(R);
  for (size_t d = 0; d < R; d++) {
    const ptrdiff_t da = static_cast<ptrdiff_t>(d) - static_cast<ptrdiff_t>(R - ab.size());
    const ptrdiff_t db = static_cast<ptrdiff_t>(d) - static_cast<ptrdiff_t>(R - bb.size());
    la[d] = da >= 0 ? ab[static_cast<size_t>(da)] : 1;
    lb[d] = db >= 0 ? bb[static_cast<size_t>(db)] : 1;
    if (la[d] != lb[d] && la[d] != 1 && lb[d] != 1) return nullptr;
    batch[d] = la[d] == 1 ? lb[d] : la[d];
    sa[d] = la[d] == 1 ? 0 : as[static_cast<size_t>(da)];
    sb[d] = lb[d] == 1 ? 0 : bs[static_cast<size_t>(db)];
    sc[d] = batch[d] == 1 ? 0 : ys[d];
  }
  std::vector<int64_t> want = batch;
  if (ra > 1) want.push_back(M);
  if (rb > 1) want.push_back(N);
  if (want != o.dims) {
    why = "MatMul output dims differ from the compiled ones";
    return nullptr;
  }
  auto k = std::make_unique<MatMulKernel>();
  k->A = av ? av->value : v.inId(0);
  k->B = bv ? bv->value : v.inId(1);
  k->Y = yv ? yv->value : v.outId(0);
  k->m = M;
  k->n = N;
  k->k = K;
  k->alpha = alpha;
  // the matrices' layouts: A is M x K, B is K x N, Y is M x N (a 1-D operand's missing dim has one row or column)
  const size_t ry = o.dims.size();
  const int64_t aRow = ra > 1 ? as[static_cast<size_t>(ra - 2)] : 0, aCol = as[static_cast<size_t>(ra - 1)];
  const int64_t bRow = rb > 1 ? bs[static_cast<size_t>(rb - 2)] : bs[0], bCol = rb > 1 ? bs[static_cast<size_t>(rb - 1)] : 0;
  int64_t yRow = 0, yCol = 0;
  if (ra > 1 && rb > 1) {
    yRow = ys[ry - 2];
    yCol = ys[ry - 1];
  } else if (ra > 1) {
    yRow = ys[ry - 1];
  } else if (rb > 1) {
    yCol = ys[ry - 1];
  }
  bool transY = false;
  if (!gemmLayout(M, K, aRow, aCol, k->transA, k->lda) || !gemmLayout(K, N, bRow, bCol, k->transB, k->ldb) ||
      !gemmLayout(M, N, yRow, yCol, transY, k->ldc) || transY) {
    why = "a strided view no GEMM layout reads";
    return nullptr;
  }
  const int64_t nb = product(batch);
  if (nb == 0 || M == 0 || N == 0) return k;  // an empty output: nothing to run
  const bool contiguous = !av && !yv;
  if (contiguous && product(bb) == 1) {
    // B is one matrix: A's batch and rows stack into one GEMM
    k->m = nb * M;
    k->calls.push_back({0, 0, 0});
    return k;
  }
  std::vector<size_t> dims;  // batch dims of length > 1
  for (size_t d = 0; d < R; d++) {
    if (batch[d] != 1) dims.push_back(d);
  }
  if (dims.empty()) {
    k->calls.push_back({0, 0, 0});
    return k;
  }
  // the longest trailing run of dims whose offsets are linear in their flattened index
  size_t split = dims.size() - 1;
  const size_t last = dims.back();
  int64_t count = batch[last];
  k->strideA = sa[last];
  k->strideB = sb[last];
  k->strideC = sc[last];
  while (split > 0) {
    const size_t d = dims[split - 1];
    if (sa[d] != k->strideA * count || sb[d] != k->strideB * count || sc[d] != k->strideC * count) break;
    count *= batch[d];
    split--;
  }
  k->batch = count;
  // one call per index of the outer dims
  const int64_t outer = nb / count;
  if ((av || bv || yv) && outer > 1) {
    // a folded Transpose whose batch dims do not collapse into one strided batch (batch 8 of
    // BERT's heads): several GEMM calls cost more than the copy they save (H200)
    why = "the strided view needs " + std::to_string(outer) + " GEMM calls";
    return nullptr;
  }
  if (outer > (int64_t(1) << 20)) {
    why = "MatMul batch broadcast needs more than 2^20 GEMM calls";
    return nullptr;
  }
  std::vector<int64_t> idx(split, 0);
  for (int64_t t = 0; t < outer; t++) {
    GemmCall c{0, 0, 0};
    for (size_t q = 0; q < split; q++) {
      const size_t d = dims[q];
      c.a += idx[q] * sa[d];
      c.b += idx[q] * sb[d];
      c.c += idx[q] * sc[d];
    }
    k->calls.push_back(c);
    for (size_t q = split; q-- > 0;) {
      if (++idx[q] < batch[dims[q]]) break;
      idx[q] = 0;
    }
  }
  return k;
}

namespace {

std::unique_ptr<Kernel> lowerMatMul(const NodeView& v, std::string& why) {
  return lowerMatMulViews(v, nullptr, nullptr, nullptr, why);
}

// ---- Gemm --------------------------------------------------------------------------------

/** y[i, j] = beta * c[i * sm + j * sn] over an M x N output. */
__global__ void biasFillKernel(const float* c, float* y, int64_t N, int64_t sm, int64_t sn, float beta, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t i = e / N;
    const int64_t j = e - i * N;
    y[e] = beta * c[i * sm + j * sn];
  }
}

struct GemmKernel : Kernel {
  GemmKernel() { blas = true; }
  int32_t A = -1, B = -1, C = -1, Y = -1;
  bool transA = false, transB = false, hasC = false;
  int64_t m = 0, n = 0, k = 0, sm = 0, sn = 0;
  float alpha = 1, beta = 1;
  bool run(Exec& x) override {
    if (m == 0 || n == 0) return true;
    float* y = x.at<float>(Y);
    if (hasC) {
      const int64_t total = m * n;
      KILN_LAUNCH(biasFillKernel, gridFor(total, kThreads), dim3(kThreads), 0, x.stream, x.at<const float>(C), y, n,
                  sm, sn, beta, total);
      if (!launched(x, "Gemm bias")) return false;
    }
    if (half != H_NONE) {
      return kiln_gemm_half(x, half, transA, transB, m, n, k, alpha, x.at<const float>(A), transA ? m : k, 0, halfB,
                            transB ? k : n, 0, hasC ? 1.0f : 0.0f, y, n, 0, 1);
    }
    return kiln_gemm(x, transA, transB, m, n, k, alpha, x.at<const float>(A), transA ? m : k, 0, x.at<const float>(B),
                     transB ? k : n, 0, hasC ? 1.0f : 0.0f, y, n, 0, 1);
  }
  int32_t gemmB() const override { return B; }
  int64_t gemmAHalfBytes() const override { return gemmHalfWorkspace(m, k, 0, 1); }
};

std::unique_ptr<Kernel> lowerGemm(const NodeView& v, std::string& why) {
  if (!v.has(0) || !v.has(1)) return nullptr;
  const SValue& a = v.in(0);
  const SValue& b = v.in(1);
  const SValue& o = v.out(0);
  if (a.dtype != DT_FLOAT || b.dtype != DT_FLOAT || o.dtype != DT_FLOAT || (v.has(2) && v.in(2).dtype != DT_FLOAT)) {
    why = std::string("Gemm of ") + dtypeName(a.dtype) + " (the device GEMM is float32)";
    return nullptr;
  }
  if (a.rank() != 2 || b.rank() != 2) return nullptr;
  auto k = std::make_unique<GemmKernel>();
  k->transA = v.attrInt("transA", 0) != 0;
  k->transB = v.attrInt("transB", 0) != 0;
  k->alpha = v.attrFloat("alpha", 1.0f);
  k->beta = v.attrFloat("beta", 1.0f);
  k->m = k->transA ? a.dims[1] : a.dims[0];
  k->k = k->transA ? a.dims[0] : a.dims[1];
  const int64_t kb = k->transB ? b.dims[1] : b.dims[0];
  k->n = k->transB ? b.dims[0] : b.dims[1];
  if (kb != k->k) return nullptr;
  if (o.dims != std::vector<int64_t>{k->m, k->n}) {
    why = "Gemm output dims differ from the compiled ones";
    return nullptr;
  }
  k->hasC = v.has(2) && k->beta != 0.0f;
  if (k->hasC) {
    const SValue& c = v.in(2);
    const int cr = c.rank();
    if (cr > 2) return nullptr;
    const int64_t cm = cr == 2 ? c.dims[0] : 1;
    const int64_t cn = cr >= 1 ? c.dims[static_cast<size_t>(cr - 1)] : 1;
    if ((cm != 1 && cm != k->m) || (cn != 1 && cn != k->n)) return nullptr;
    k->sm = cm == 1 ? 0 : cn;
    k->sn = cn == 1 ? 0 : 1;
  }
  k->A = v.inId(0);
  k->B = v.inId(1);
  k->C = v.inId(2);
  k->Y = v.outId(0);
  return k;
}

// ---- Einsum ------------------------------------------------------------------------------

constexpr int kEllipsis = 1000;
constexpr int kEinOps = 4;
constexpr int kEinLabels = 12;

struct EinsumPlan {
  std::vector<std::vector<int>> inLabels;
  std::vector<int> outLabels, sumLabels;
  std::map<int, int64_t> sizes;
  int64_t size(int l) const {
    auto it = sizes.find(l);
    return it == sizes.end() ? 1 : it->second;
  }
};

bool isLetter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/** Labels of one term; ellipsis dims get kEllipsis + position, right-aligned to maxE (rank -1: the output). */
bool termLabels(const std::string& term, int rank, int maxE, std::vector<int>& out) {
  int letters = 0;
  bool hasE = false;
  for (size_t i = 0; i < term.size(); i++) {
    const char c = term[i];
    if (isLetter(c)) {
      letters++;
    } else if (c == '.') {
      if (hasE || term.compare(i, 3, "...") != 0) return false;
      hasE = true;
      i += 2;
    } else {
      return false;
    }
  }
  const int e = rank - letters;
  if (rank >= 0 && (e < 0 || (!hasE && e != 0))) return false;
  for (size_t i = 0; i < term.size(); i++) {
    const char c = term[i];
    if (isLetter(c)) {
      out.push_back(c);
    } else {
      const int n = rank >= 0 ? e : maxE;
      for (int k = 0; k < n; k++) out.push_back(kEllipsis + maxE - n + k);
      i += 2;
    }
  }
  return true;
}

/** wasm/ops/data/einsum.ts planEinsum; false for an equation the ref rejects. */
bool planEinsum(const std::string& eqIn, const std::vector<std::vector<int64_t>>& shapes, EinsumPlan& plan) {
  std::string eq;
  for (char c : eqIn) {
    if (c != ' ') eq += c;
  }
  const size_t arrow = eq.find("->");
  const std::string lhs = arrow != std::string::npos ? eq.substr(0, arrow) : eq;
  std::vector<std::string> terms(1);
  for (char c : lhs) {
    if (c == ',') {
      terms.emplace_back();
    } else {
      terms.back() += c;
    }
  }
  if (terms.size() != shapes.size()) return false;
  int maxE = 0;
  for (size_t t = 0; t < terms.size(); t++) {
    int letters = 0;
    for (char c : terms[t]) {
      if (isLetter(c)) letters++;
    }
    const int e = static_cast<int>(shapes[t].size()) - letters;
    if (terms[t].find("...") != std::string::npos && e > maxE) maxE = e;
  }
  std::map<int, int> counts;
  for (size_t t = 0; t < terms.size(); t++) {
    std::vector<int> labs;
    if (!termLabels(terms[t], static_cast<int>(shapes[t].size()), maxE, labs)) return false;
    for (size_t d = 0; d < labs.size(); d++) {
      const int l = labs[d];
      const int64_t n = shapes[t][d];
      counts[l]++;
      auto it = plan.sizes.find(l);
      if (it == plan.sizes.end() || it->second == 1) {
        plan.sizes[l] = n;
      } else if (n != 1 && it->second != n) {
        return false;
      }
    }
    plan.inLabels.push_back(labs);
  }
  if (arrow != std::string::npos) {
    std::vector<int> labs;
    if (!termLabels(eq.substr(arrow + 2), -1, maxE, labs)) return false;
    for (int l : labs) {
      if (!counts.count(l)) return false;
      if (std::find(plan.outLabels.begin(), plan.outLabels.end(), l) != plan.outLabels.end()) return false;
      plan.outLabels.push_back(l);
    }
  } else {
    for (int k = 0; k < maxE; k++) plan.outLabels.push_back(kEllipsis + k);
    for (int c = 65; c <= 122; c++) {
      auto it = counts.find(c);
      if (it != counts.end() && it->second == 1) plan.outLabels.push_back(c);
    }
  }
  for (const auto& kv : counts) {  // ascending label order, as the ref's sorted keys
    if (std::find(plan.outLabels.begin(), plan.outLabels.end(), kv.first) == plan.outLabels.end()) {
      plan.sumLabels.push_back(kv.first);
    }
  }
  return true;
}

/** Element strides of input t for each label (0 where absent or broadcast; repeated labels add). */
std::vector<int64_t> labelStrides(const EinsumPlan& plan, size_t t, const std::vector<int64_t>& lens,
                                  const std::vector<int>& labels) {
  const auto st = contiguousStrides(lens);
  const auto& labs = plan.inLabels[t];
  std::vector<int64_t> out(labels.size(), 0);
  for (size_t i = 0; i < labels.size(); i++) {
    for (size_t d = 0; d < labs.size(); d++) {
      if (labs[d] == labels[i] && lens[d] != 1) out[i] += st[d];
    }
  }
  return out;
}

struct EinsumParams {
  int nOps, nOut, nSum;
  int64_t lens[kEinLabels];
  int64_t strides[kEinOps][kEinLabels];
  int64_t sumTotal;
};

/** One thread per output element: the sum over the summed labels of the operands' product, in double. */
template <typename T>
__global__ void einsumKernel(EinsumParams p, const T* x0, const T* x1, const T* x2, const T* x3, T* y, int64_t n) {
  const T* xs[kEinOps] = {x0, x1, x2, x3};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += stride) {
    int64_t off[kEinOps] = {0, 0, 0, 0};
    int64_t q = o;
    for (int l = p.nOut - 1; l >= 0; l--) {
      const int64_t len = p.lens[l];
      const int64_t nq = q / len;
      const int64_t r = q - nq * len;
      q = nq;
      for (int t = 0; t < p.nOps; t++) off[t] += r * p.strides[t][l];
    }
    int64_t cnt[kEinLabels];
    for (int l = 0; l < kEinLabels; l++) cnt[l] = 0;
    double acc = 0;
    for (int64_t s = 0; s < p.sumTotal; s++) {
      double prod = 1;
      for (int t = 0; t < p.nOps; t++) prod *= static_cast<double>(xs[t][off[t]]);
      acc += prod;
      for (int l = p.nOut + p.nSum - 1; l >= p.nOut; l--) {
        for (int t = 0; t < p.nOps; t++) off[t] += p.strides[t][l];
        if (++cnt[l] < p.lens[l]) break;
        for (int t = 0; t < p.nOps; t++) off[t] -= p.strides[t][l] * p.lens[l];
        cnt[l] = 0;
      }
    }
    y[o] = static_cast<T>(acc);
  }
}

struct EinsumGeneric : Kernel {
  EinsumParams p{};
  int32_t in[kEinOps] = {-1, -1, -1, -1};
  int32_t out = -1;
  int64_t n = 0;
  bool f64 = false;
  bool run(Exec& x) override {
    if (n == 0) return true;
    const dim3 g = gridFor(n, kThreads);
    if (f64) {
      KILN_LAUNCH(einsumKernel<double>, g, dim3(kThreads), 0, x.stream, p, x.at<const double>(in[0]),
                  x.at<const double>(in[1]), x.at<const double>(in[2]), x.at<const double>(in[3]), x.at<double>(out), n);
    } else {
      KILN_LAUNCH(einsumKernel<float>, g, dim3(kThreads), 0, x.stream, p, x.at<const float>(in[0]),
                  x.at<const float>(in[1]), x.at<const float>(in[2]), x.at<const float>(in[3]), x.at<float>(out), n);
    }
    return launched(x, "Einsum");
  }
};

/** A contiguous copy over dims of a strided float32 view (an operand packed for the GEMM). */
struct PackParams {
  int rank;
  int64_t dims[kMaxDims];
  int64_t src[kMaxDims];
};

__global__ void packKernel(PackParams p, const float* in, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t s = 0, q = i;
    for (int d = p.rank - 1; d >= 0; d--) {
      const int64_t len = p.dims[d];
      const int64_t nq = q / len;
      s += (q - nq * len) * p.src[d];
      q = nq;
    }
    out[i] = in[s];
  }
}

/** One operand of the Einsum GEMM: read in place, or packed into the workspace at `at` bytes. */
struct EinsumOperand {
  int32_t value = -1;
  bool pack = false;
  PackParams p{};
  int64_t n = 0;
  int64_t at = 0;
  const float* ptr(Exec& x) const {
    return pack ? reinterpret_cast<const float*>(x.workspace + at) : x.at<const float>(value);
  }
  bool launch(Exec& x) const {
    if (!pack || n == 0) return true;
    KILN_LAUNCH(packKernel, gridFor(n, kThreads), dim3(kThreads), 0, x.stream, p, x.at<const float>(value),
                reinterpret_cast<float*>(x.workspace + at), n);
    return launched(x, "Einsum pack");
  }
};

struct EinsumGemm : Kernel {
  EinsumGemm() { blas = true; }
  EinsumOperand a, b;
  int32_t out = -1;
  bool transA = false, transB = false;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool run(Exec& x) override {
    if (!a.launch(x) || !b.launch(x)) return false;
    return kiln_gemm(x, transA, transB, m, n, k, 1.0f, a.ptr(x), transA ? m : k, m * k, b.ptr(x), transB ? k : n,
                     k * n, 0.0f, x.at<float>(out), n, m * n, batch);
  }
};

/**
 * Whether operand t laid out as `order` (a permutation of its labels) is contiguous in memory,
 * dims of size 1 aside.
 */
bool inPlace(const std::vector<int64_t>& lens, const std::vector<int64_t>& strides) {
  int64_t expect = 1;
  for (size_t i = lens.size(); i-- > 0;) {
    if (lens[i] == 1) continue;
    if (strides[i] != expect) return false;
    expect *= lens[i];
  }
  return true;
}

bool hasRepeat(const std::vector<int>& l) {
  for (size_t i = 0; i < l.size(); i++) {
    for (size_t j = i + 1; j < l.size(); j++) {
      if (l[i] == l[j]) return true;
    }
  }
  return false;
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::vector<int> concat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/** The ref's matmulPath on the GEMM: null when the equation is not a batched matmul. */
std::unique_ptr<Kernel> einsumGemm(const NodeView& v, const EinsumPlan& plan) {
  const auto& la = plan.inLabels[0];
  const auto& lb = plan.inLabels[1];
  if (hasRepeat(la) || hasRepeat(lb)) return nullptr;
  std::vector<int> batch, ms, ns, ks;
  for (int l : plan.outLabels) {
    const bool ia = contains(la, l), ib = contains(lb, l);
    if (ia && ib) {
      batch.push_back(l);
    } else if (ia) {
      ms.push_back(l);
    } else if (ib) {
      ns.push_back(l);
    } else {
      return nullptr;
    }
  }
  for (int l : plan.sumLabels) {
    if (!contains(la, l) || !contains(lb, l)) return nullptr;
    ks.push_back(l);
  }
  if (concat(concat(batch, ms), ns) != plan.outLabels) return nullptr;
  const auto& da = v.in(0).dims;
  const auto& db = v.in(1).dims;
  for (size_t i = 0; i < la.size(); i++) {
    if (da[i] != plan.size(la[i])) return nullptr;
  }
  for (size_t i = 0; i < lb.size(); i++) {
    if (db[i] != plan.size(lb[i])) return nullptr;
  }
  auto k = std::make_unique<EinsumGemm>();
  auto prod = [&](const std::vector<int>& ls) {
    int64_t p = 1;
    for (int l : ls) p *= plan.size(l);
    return p;
  };
  k->batch = prod(batch);
  k->m = prod(ms);
  k->n = prod(ns);
  k->k = prod(ks);
  k->out = v.outId(0);
  int64_t at = 0;
  // chooses in-place (either orientation) or a packed copy in the first orientation
  auto setup = [&](size_t t, EinsumOperand& op, const std::vector<int>& plain, const std::vector<int>& trans,
                   bool& transposed) -> bool {
    op.value = v.inId(static_cast<int>(t));
    const auto& dims = v.in(static_cast<int>(t)).dims;
    auto lensOf = [&](const std::vector<int>& order) {
      std::vector<int64_t> l;
      for (int x : order) l.push_back(plan.size(x));
      return l;
    };
    const auto lp = lensOf(plain), lt = lensOf(trans);
    const auto sp = labelStrides(plan, t, dims, plain), stt = labelStrides(plan, t, dims, trans);
    transposed = false;
    if (inPlace(lp, sp)) return true;
    if (inPlace(lt, stt)) {
      transposed = true;
      return true;
    }
    // pack: drop size-1 dims so the copy fits kMaxDims more often
    std::vector<int64_t> d, s;
    for (size_t i = 0; i < lp.size(); i++) {
      if (lp[i] == 1) continue;
      d.push_back(lp[i]);
      s.push_back(sp[i]);
    }
    if (d.size() > static_cast<size_t>(kMaxDims)) return false;
    op.pack = true;
    op.p.rank = static_cast<int>(d.size());
    op.n = 1;
    for (size_t i = 0; i < d.size(); i++) {
      op.p.dims[i] = d[i];
      op.p.src[i] = s[i];
      op.n *= d[i];
    }
    op.at = at;
    at += (op.n * 4 + 255) / 256 * 256;
    return true;
  };
  if (!setup(0, k->a, concat(concat(batch, ms), ks), concat(concat(batch, ks), ms), k->transA)) return nullptr;
  if (!setup(1, k->b, concat(concat(batch, ks), ns), concat(concat(batch, ns), ks), k->transB)) return nullptr;
  k->workspace = at;
  return k;
}

std::unique_ptr<Kernel> lowerEinsum(const NodeView& v, std::string& why) {
  const int nIn = v.inputCount();
  if (nIn < 1 || v.outputCount() < 1) return nullptr;
  const SValue& o = v.out(0);
  std::vector<std::vector<int64_t>> shapes;
  for (int i = 0; i < nIn; i++) {
    if (!v.has(i)) return nullptr;
    if (v.in(i).dtype != o.dtype) return nullptr;
    shapes.push_back(v.in(i).dims);
  }
  if (o.dtype != DT_FLOAT && o.dtype != DT_DOUBLE) {
    why = std::string("Einsum of ") + dtypeName(o.dtype) + " (the device kernel is float32/float64)";
    return nullptr;
  }
  EinsumPlan plan;
  if (!planEinsum(v.attrString("equation", ""), shapes, plan)) {
    why = "Einsum equation the device plan does not accept";
    return nullptr;
  }
  std::vector<int64_t> outLens;
  for (int l : plan.outLabels) outLens.push_back(plan.size(l));
  if (outLens != o.dims) {
    why = "Einsum output dims differ from the compiled ones";
    return nullptr;
  }
  if (nIn == 2 && o.dtype == DT_FLOAT) {
    auto g = einsumGemm(v, plan);
    if (g) return g;
  }
  const std::vector<int> labels = concat(plan.outLabels, plan.sumLabels);
  if (nIn > kEinOps || labels.size() > static_cast<size_t>(kEinLabels)) {
    why = "Einsum with more than 4 operands or 12 labels";
    return nullptr;
  }
  auto k = std::make_unique<EinsumGeneric>();
  k->f64 = o.dtype == DT_DOUBLE;
  k->p.nOps = nIn;
  k->p.nOut = static_cast<int>(plan.outLabels.size());
  k->p.nSum = static_cast<int>(plan.sumLabels.size());
  k->p.sumTotal = 1;
  for (size_t i = 0; i < labels.size(); i++) {
    k->p.lens[i] = plan.size(labels[i]);
    if (static_cast<int>(i) >= k->p.nOut) k->p.sumTotal *= k->p.lens[i];
  }
  for (int t = 0; t < nIn; t++) {
    const auto st = labelStrides(plan, static_cast<size_t>(t), shapes[static_cast<size_t>(t)], labels);
    for (size_t i = 0; i < labels.size(); i++) k->p.strides[t][i] = st[i];
    k->in[t] = v.inId(t);
  }
  k->out = v.outId(0);
  k->n = o.elements();
  return k;
}

}  // namespace

void registerLinalg() {
  registerLowering("MatMul", lowerMatMul);
  registerLowering("Gemm", lowerGemm);
  registerLowering("Einsum", lowerEinsum);
}

}  // namespace kiln
