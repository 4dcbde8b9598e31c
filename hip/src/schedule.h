// The schedule: the compiled program as data, written by kiln's compiler core
// (wasm/exec/schedule.ts; byte by byte in docs/internals.md "Schedule"). Parsed once, with every
// length, index and kind checked: a malformed schedule is an error, never a crash.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common.h"

namespace kiln {

enum Storage : uint8_t { S_INPUT = 1, S_WEIGHT = 2, S_LITERAL = 3, S_ARENA = 4, S_BUFFER = 5, S_ALIAS = 6 };
enum NodeFlags : uint8_t { N_PREPARE = 1, N_SKIP = 2 };
enum AttrKind : uint8_t {
  A_INT = 1,
  A_FLOAT = 2,
  A_STRING = 3,
  A_INTS = 4,
  A_FLOATS = 5,
  A_STRINGS = 6,
  A_TENSOR = 7,
  A_GRAPH = 8,
};

struct Attr {
  uint8_t kind = 0;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  int32_t tensorDtype = 0;
  std::vector<int64_t> tensorDims;
  std::vector<uint8_t> tensorBytes;
  int32_t graph = -1;
};

struct SValue {
  uint32_t irId = 0;
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> dims;
  int64_t bytes = 0;
  uint8_t storage = 0;
  /** input index (S_INPUT), weight slot (S_WEIGHT), module (S_ARENA), root value (S_ALIAS) */
  uint32_t index = 0;
  /** arena offset (S_ARENA) or literal arena offset (S_LITERAL) */
  int64_t offset = 0;
  /** host literal id (S_LITERAL), -1 for an inline literal */
  int64_t hostId = -1;
  /** an inline literal's bytes */
  std::vector<uint8_t> inlineBytes;

  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  int rank() const { return static_cast<int>(dims.size()); }
};

struct SWeight {
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> dims;
  int64_t bytes = 0;
  std::string location;
  int64_t offset = 0;
  int64_t length = 0;
  std::string checksum;
};

struct SNode {
  /** the node's index among all nodes of the schedule (modules in order) */
  int32_t index = 0;
  int32_t module = 0;
  /** the instruction's index in its IR module (the host's fallback names it so) */
  uint32_t instr = 0;
  std::string op;
  std::string name;
  uint8_t flags = 0;
  std::vector<int32_t> inputs;  // -1: omitted
  std::vector<int32_t> outputs;
  std::map<std::string, Attr> attrs;
};

struct SModule {
  std::string name;
  int32_t parent = -1;
  int64_t arenaBytes = 0;
  std::vector<int32_t> nodes;  // indices into Schedule::nodes
  std::vector<int32_t> returns;
};

struct Schedule {
  uint32_t opset = 0;
  int64_t literalArenaBytes = 0;
  std::vector<SValue> values;
  std::vector<SWeight> weights;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  std::vector<std::string> outputNames;
  std::vector<SModule> modules;
  std::vector<SNode> nodes;
};

/** Parses and checks a schedule; false with err set on a malformed one. */
bool parseSchedule(const uint8_t* data, uint64_t length, Schedule& out, Error& err);

}  // namespace kiln
