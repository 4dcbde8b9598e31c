// Shared definitions of libkiln_hip's host code: element types (ONNX's numbering, as the
// compiler core uses), errors with context, and small helpers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../include/kiln_hip.h"
#include "platform/platform.h"

namespace kiln {

enum DType : int32_t {
  DT_FLOAT = 1,
  DT_UINT8 = 2,
  DT_INT8 = 3,
  DT_UINT16 = 4,
  DT_INT16 = 5,
  DT_INT32 = 6,
  DT_INT64 = 7,
  DT_BOOL = 9,
  DT_FLOAT16 = 10,
  DT_DOUBLE = 11,
  DT_UINT32 = 12,
  DT_UINT64 = 13,
  DT_BFLOAT16 = 16,
};

/** Bytes per element; 0 for element types the library does not store. */
int dtypeSize(int32_t dt);
/** "float32", "int64", ... */
const char* dtypeName(int32_t dt);

/** A failed call: a status code and a message that names what failed and on what. */
struct Error {
  int32_t status = KILN_OK;
  std::string message;
  bool ok() const { return status == KILN_OK; }
  /** Records the first failure (later ones keep the first's message); returns false. */
  bool fail(int32_t s, const std::string& m) {
    if (status == KILN_OK) {
      status = s;
      message = m;
    }
    return false;
  }
};

/** Checks a HIP call: on failure records "what: <runtime's text>" (device or out-of-memory). */
bool hipCheck(hipError_t e, const char* what, Error& err);

/** "12.3 MiB" */
std::string formatBytes(uint64_t n);

/** Copies a message into a caller's buffer; returns its full length. */
int64_t copyOut(const std::string& s, uint8_t* buf, uint64_t cap);

/** Appends s to out as a JSON string literal. */
void jsonString(std::string& out, const std::string& s);

}  // namespace kiln
