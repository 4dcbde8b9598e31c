// Hashes of weight and literal bytes, computed while they are read:
//  - ContentHash: a fast 128-bit hash (eight independent lanes over 64-byte stripes, each adding a
//    32 x 32 -> 64-bit product of its keyed word, so the compiler runs them as SIMD multiplies;
//    keyed per process) that lets a bind skip a tensor whose content is unchanged without reading
//    device memory back. It runs on every byte a swap reads, on the reader threads. Not cryptographic; the random per-process seed keeps collisions from being
//    crafted ahead of time, and a skip also needs the byte length to match.
//  - Sha1: SHA-1 (FIPS 180-4), for the per-literal checksums of .kiln files. Written here
//    because the library links nothing but the HIP/CUDA runtime (no OpenSSL on the GPU hosts).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct Hash128 {
  uint64_t a = 0, b = 0;
  bool operator==(const Hash128& o) const { return a == o.a && b == o.b; }
  bool operator!=(const Hash128& o) const { return !(*this == o); }
};

class ContentHash {
 public:
  static constexpr unsigned kLanes = 8;
  static constexpr unsigned kStripe = kLanes * 8;
  static constexpr uint64_t kScrambleStripes = 16;  // a scramble every KiB
  ContentHash();
  void update(const uint8_t* p, uint64_t n);
  Hash128 finish();

 private:
  void stripes(const uint8_t* p, uint64_t count);
  uint64_t v_[kLanes];
  uint64_t length_ = 0;
  uint64_t stripeCount_ = 0;
  uint8_t tail_[kStripe];
  unsigned tailLen_ = 0;
};

/**
 * Weights are hashed in chunks of this size, each chunk on its own (so several reader threads
 * hash in parallel), and the chunks' hashes combined in order: see hashChunked.
 */
constexpr uint64_t kLoadChunk = uint64_t(8) << 20;

/** The hash of a tensor's bytes: ContentHash of each kLoadChunk chunk, combined in order. */
Hash128 hashChunked(const uint8_t* p, uint64_t n);
/** Combines the chunk hashes of n bytes (what hashChunked does after hashing the chunks). */
Hash128 combineChunks(const std::vector<Hash128>& parts, uint64_t n);

class Sha1 {
 public:
  Sha1();
  void update(const uint8_t* p, uint64_t n);
  /** 40 lowercase hex characters. */
  std::string hex();

 private:
  void block(const uint8_t* p);
  uint32_t h_[5];
  uint64_t length_ = 0;
  uint8_t buf_[64];
  unsigned bufLen_ = 0;
};

}  // namespace kiln
