#include "hash.h"

#include <chrono>
#include <cstring>
#include <random>

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

}  // namespace

ContentHash::ContentHash() {
  v_[0] = seeds().a;
  v_[1] = seeds().b;
  v_[2] = seeds().a ^ P3;
  v_[3] = seeds().b + P4;
}

inline void ContentHash::stripe(const uint8_t* p) {
  uint64_t w[4];
  std::memcpy(w, p, 32);
  for (int i = 0; i < 4; i++) v_[i] = rotl(v_[i] + w[i] * P2, 31) * P1;
}

void ContentHash::update(const uint8_t* p, uint64_t n) {
  length_ += n;
  if (tailLen_ > 0) {
    const uint64_t take = n < 32 - tailLen_ ? n : 32 - tailLen_;
    std::memcpy(tail_ + tailLen_, p, take);
    tailLen_ += static_cast<unsigned>(take);
    p += take;
    n -= take;
    if (tailLen_ < 32) return;
    stripe(tail_);
    tailLen_ = 0;
  }
  // the lanes in locals: `p` may alias the object (uint8_t aliases anything), which would make the
  // compiler store and reload them on every stripe
  uint64_t v0 = v_[0], v1 = v_[1], v2 = v_[2], v3 = v_[3];
  for (; n >= 32; p += 32, n -= 32) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    v0 = rotl(v0 + w[0] * P2, 31) * P1;
    v1 = rotl(v1 + w[1] * P2, 31) * P1;
    v2 = rotl(v2 + w[2] * P2, 31) * P1;
    v3 = rotl(v3 + w[3] * P2, 31) * P1;
  }
  v_[0] = v0;
  v_[1] = v1;
  v_[2] = v2;
  v_[3] = v3;
  std::memcpy(tail_, p, n);
  tailLen_ = static_cast<unsigned>(n);
}

Hash128 ContentHash::finish() {
  // the partial stripe, zero-padded (the length, mixed in below, tells paddings apart)
  if (tailLen_ > 0) {
    std::memset(tail_ + tailLen_, 0, 32 - tailLen_);
    stripe(tail_);
  }
  const uint64_t x = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
  const uint64_t y = (v_[0] * P3) ^ rotl(v_[1] * P4, 29) ^ rotl(v_[2] * P1, 41) ^ rotl(v_[3] * P2, 53);
  Hash128 h;
  h.a = mix(x ^ length_);
  h.b = mix(y ^ rotl(length_, 32) ^ h.a);
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
