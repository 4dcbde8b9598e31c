#include "hash.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace kiln {
namespace {

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

struct Seeds {
  uint64_t a, b;
  Seeds() {
    std::random_device rd;
    const uint64_t t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    a = mix((uint64_t(rd()) << 32) ^ rd() ^ t);
    b = mix((uint64_t(rd()) << 32) ^ rd() ^ rotl(t, 17) ^ 0x9e3779b97f4a7c15ULL);
  }
};

const Seeds& seeds() {
  static const Seeds s;
  return s;
}

constexpr uint64_t P1 = 0x9e3779b185ebca87ULL;
constexpr uint64_t P2 = 0xc2b2ae3d27d4eb4fULL;
constexpr uint64_t P3 = 0x165667b19e3779f9ULL;
constexpr uint64_t P4 = 0x85ebca77c2b2ae63ULL;
constexpr uint32_t P5 = 0x9e3779b1u;

/** The per-process keys the stripes are mixed with: eight lanes, from the seeds. */
struct Keys {
  uint64_t k[ContentHash::kLanes];
  Keys() {
    uint64_t x = seeds().a, y = seeds().b;
    for (unsigned i = 0; i < ContentHash::kLanes; i++) {
      x = mix(x + P1 * (i + 1));
      y = mix(y ^ rotl(x, 23));
      k[i] = x ^ y;
    }
  }
};

const Keys& keys() {
  static const Keys k;
  return k;
}

}  // namespace

ContentHash::ContentHash() {
  const Keys& k = keys();
  for (unsigned i = 0; i < kLanes; i++) v_[i] = k.k[i] ^ (i & 1 ? seeds().a : seeds().b);
}

// Eight 64-bit lanes over 64-byte stripes, each lane adding the 32 x 32 -> 64-bit product of its
// keyed word's halves and its neighbour's raw word (the lanes are independent, so the compiler
// runs them as SIMD multiplies: about three times the rate of the earlier four multiply-rotate
// chains, measured on this machine and on the H200's host; see docs/gpu.md, the swap pipeline),
// with the lanes scrambled every kScrambleStripes stripes so that the products keep mixing.
// Written here, not taken from a library: the GPU library links nothing but the HIP/CUDA runtime.
inline void ContentHash::stripes(const uint8_t* p, uint64_t count) {
  const Keys& k = keys();
  uint64_t v[kLanes];
  for (unsigned i = 0; i < kLanes; i++) v[i] = v_[i];
  while (count > 0) {
    // up to the next scramble
    const uint64_t run = std::min<uint64_t>(count, kScrambleStripes - stripeCount_ % kScrambleStripes);
#if defined(__SSE2__) && !defined(KILN_HASH_SCALAR)
    // the same arithmetic on two lanes per register (x86-64 always has SSE2): pmuludq multiplies the
    // low halves of each 64-bit lane; the shuffle swaps the lanes of a pair for w[i ^ 1]
    __m128i acc[kLanes / 2], key[kLanes / 2];
    for (unsigned j = 0; j < kLanes / 2; j++) {
      acc[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 2 * j));
      key[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.k + 2 * j));
    }
    for (uint64_t s = 0; s < run; s++, p += kStripe) {
      for (unsigned j = 0; j < kLanes / 2; j++) {
        const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j));
        const __m128i d = _mm_xor_si128(w, key[j]);
        const __m128i prod = _mm_mul_epu32(d, _mm_srli_epi64(d, 32));
        acc[j] = _mm_add_epi64(acc[j], _mm_add_epi64(prod, _mm_shuffle_epi32(w, _MM_SHUFFLE(1, 0, 3, 2))));
      }
    }
    for (unsigned j = 0; j < kLanes / 2; j++) _mm_storeu_si128(reinterpret_cast<__m128i*>(v + 2 * j), acc[j]);
#else
    for (uint64_t s = 0; s < run; s++, p += kStripe) {
      uint64_t w[kLanes];
      std::memcpy(w, p, kStripe);
      for (unsigned i = 0; i < kLanes; i++) {
        const uint64_t d = w[i] ^ k.k[i];
        v[i] += (d & 0xffffffffULL) * (d >> 32) + w[i ^ 1];
      }
    }
#endif
    count -= run;
    stripeCount_ += run;
    if (stripeCount_ % kScrambleStripes == 0) {
      for (unsigned i = 0; i < kLanes; i++) {
        uint64_t a = v[i];
        a ^= a >> 47;
        a ^= k.k[(i + 3) % kLanes];
        v[i] = a * P5;
      }
    }
  }
  for (unsigned i = 0; i < kLanes; i++) v_[i] = v[i];
}

void ContentHash::update(const uint8_t* p, uint64_t n) {
  length_ += n;
  if (tailLen_ > 0) {
    const uint64_t take = n < kStripe - tailLen_ ? n : kStripe - tailLen_;
    std::memcpy(tail_ + tailLen_, p, take);
    tailLen_ += static_cast<unsigned>(take);
    p += take;
    n -= take;
    if (tailLen_ < kStripe) return;
    stripes(tail_, 1);
    tailLen_ = 0;
  }
  const uint64_t whole = n / kStripe;
  if (whole > 0) stripes(p, whole);
  p += whole * kStripe;
  n -= whole * kStripe;
  std::memcpy(tail_, p, n);
  tailLen_ = static_cast<unsigned>(n);
}

Hash128 ContentHash::finish() {
  // the partial stripe, zero-padded (the length, mixed in below, tells paddings apart)
  if (tailLen_ > 0) {
    std::memset(tail_ + tailLen_, 0, kStripe - tailLen_);
    stripes(tail_, 1);
    tailLen_ = 0;
  }
  uint64_t x = length_ * P1, y = rotl(length_, 32) ^ P2;
  for (unsigned i = 0; i < kLanes; i++) {
    x = mix(x ^ v_[i]) * P3;
    y = rotl(y + mix(v_[i] ^ P4 * (i + 1)), 29) * P1;
  }
  Hash128 h;
  h.a = mix(x);
  h.b = mix(y ^ h.a);
  return h;
}

Hash128 combineChunks(const std::vector<Hash128>& parts, uint64_t n) {
  ContentHash h;
  h.update(reinterpret_cast<const uint8_t*>(&n), sizeof n);
  for (const Hash128& p : parts) {
    h.update(reinterpret_cast<const uint8_t*>(&p.a), sizeof p.a);
    h.update(reinterpret_cast<const uint8_t*>(&p.b), sizeof p.b);
  }
  return h.finish();
}

Hash128 hashChunked(const uint8_t* p, uint64_t n) {
  std::vector<Hash128> parts;
  for (uint64_t at = 0; at < n; at += kLoadChunk) {
    ContentHash h;
    h.update(p + at, n - at < kLoadChunk ? n - at : kLoadChunk);
    parts.push_back(h.finish());
  }
  return combineChunks(parts, n);
}

// ---- SHA-1 ----

Sha1::Sha1() {
  h_[0] = 0x67452301u;
  h_[1] = 0xEFCDAB89u;
  h_[2] = 0x98BADCFEu;
  h_[3] = 0x10325476u;
  h_[4] = 0xC3D2E1F0u;
}

static inline uint32_t rol32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

void Sha1::block(const uint8_t* p) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++) {
    w[t] = (uint32_t(p[4 * t]) << 24) | (uint32_t(p[4 * t + 1]) << 16) | (uint32_t(p[4 * t + 2]) << 8) |
           uint32_t(p[4 * t + 3]);
  }
  for (int t = 16; t < 80; t++) w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    const uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rol32(b, 30);
    b = a;
    a = tmp;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
}

void Sha1::update(const uint8_t* p, uint64_t n) {
  length_ += n;
  if (bufLen_ > 0) {
    while (bufLen_ < 64 && n > 0) {
      buf_[bufLen_++] = *p++;
      n--;
    }
    if (bufLen_ < 64) return;
    block(buf_);
    bufLen_ = 0;
  }
  while (n >= 64) {
    block(p);
    p += 64;
    n -= 64;
  }
  while (n > 0) {
    buf_[bufLen_++] = *p++;
    n--;
  }
}

std::string Sha1::hex() {
  const uint64_t bits = length_ * 8;
  uint8_t pad = 0x80;
  update(&pad, 1);
  const uint8_t zero = 0;
  while (bufLen_ != 56) update(&zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  update(len, 8);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 5; i++) {
    for (int j = 28; j >= 0; j -= 4) out += digits[(h_[i] >> j) & 15];
  }
  return out;
}

}  // namespace kiln
