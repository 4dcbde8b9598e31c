// A program on a device: the schedule lowered to kernels, its memory (module arenas, buffers,
// the literal arena, kernel workspace, one buffer per bound weight), its launch lists (run and
// prepare, with If branches flattened into jumps and host steps where a node has no kernel),
// and bind transactions that switch weights atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blas.h"
#include "context.h"
#include "dnn.h"
#include "hash.h"
#include "lower.h"
#include "schedule.h"

namespace kiln {

class Program {
 public:
  /** Lowers `schedule` onto ctx's device; null with err on failure. */
  static Program* create(Context* ctx, const uint8_t* schedule, uint64_t length, uint32_t flags, Error& err);
  ~Program();

  /** The last failure of a call on this program (evals, literals, reads). */
  Error err;
  /** The last failure of a bind call: binds run beside evals, so they keep their own. */
  Error bindErr;

  bool literalWrite(uint32_t id, const uint8_t* data, uint64_t length);
  bool literalReadFile(uint32_t id, const std::string& path, uint64_t offset, uint64_t length, const std::string& sha1);

  bool bindBegin();
  bool bindBytes(uint32_t slot, const uint8_t* data, uint64_t length);
  bool bindFile(uint32_t slot, const std::string& path, uint64_t offset, uint64_t length);
  /**
   * Validates and loads the transaction's file ranges into staged buffers, switching nothing:
   * evals may run meanwhile (on other threads). False with bindErr; the transaction is then over.
   */
  bool bindStage();
  /** Stages (unless bindStage did), then switches to the staged weights: the report JSON, or false with bindErr. */
  bool bindCommit(std::string& report);
  bool bindAbort();
  /**
   * A low-rank delta for `slot` in the open transaction (kiln_bind_delta): at commit the slot
   * becomes its base weight plus scale * B * A; rank 0 clears its delta (back to the base).
   */
  bool bindDelta(uint32_t slot, const float* b, uint64_t bLength, const float* a, uint64_t aLength, uint32_t rank,
                 float scale, uint32_t flags);
  bool bindRevert();
  bool bindRelease();

  /**
   * Resident weight sets: instead of switching, keeps the staged transaction (every weight
   * staged; those equal to the bound ones copied on the device) as set `id`, held until removed.
   */
  bool setAdd(int32_t id);
  /** Evals read set `id` (-1: the bound weights) until another is selected. */
  bool setSelect(int32_t id);
  bool setRemove(int32_t id);
  int32_t selectedSet() const { return selected_set_; }

  /**
   * Host-resident weight sets: a whole weight set kept in pinned host memory (pinned once, when
   * it is filled), bound with a copy at the host-to-device link's rate. hostSetPut copies a
   * weight in; hostSetStage, inside a bind transaction, stages every weight from it (then
   * bindCommit switches as for any bind).
   */
  bool hostSetCreate(int32_t id);
  bool hostSetPut(int32_t id, uint32_t slot, const uint8_t* data, uint64_t length);
  bool hostSetStage(int32_t id);
  bool hostSetRemove(int32_t id);

  bool inputWrite(uint32_t index, const uint8_t* data, uint64_t length);
  bool outputRead(uint32_t index, uint8_t* data, uint64_t length);
  bool valueRead(uint32_t value, uint8_t* data, uint64_t length);
  bool valueWrite(uint32_t value, const uint8_t* data, uint64_t length);

  bool prepareSelect(const int32_t* slots, int32_t count, int32_t& chosen);
  /** 0 done, pc + 1 of a host step, or a negative status. */
  int32_t exec(int32_t list, int32_t pc);
  int32_t hostNode(int32_t list, int32_t pc);

  std::string report() const;

  /** Records each kernel's device time in the next executions (replaying no graph meanwhile). */
  void setProfiling(bool on);
  /** Per node, device milliseconds of the run list's last profiled execution, as JSON. */
  std::string profile() const;

 private:
  // ST_HALF: a 16-bit copy remade (halves_[target]); ST_AUX: relayouts_[target] (prepare lists only)
  enum StepKind : uint8_t { ST_KERNEL, ST_HOST, ST_BRANCH, ST_JUMP, ST_COPY, ST_HALF, ST_AUX };
  struct Step {
    StepKind kind;
    int32_t node = -1;    // HALF: the first GEMM that reads the 16-bit copy (for error messages)
    int32_t value = -1;   // BRANCH: the condition; COPY: the source; HALF: the float32 weight-only value
    int32_t target = -1;  // BRANCH (when false) and JUMP: the step to go to; COPY: the destination value; HALF: its halves_ index
  };
  // precision fp16/bf16: a 16-bit copy of a weight-only GEMM operand, in block_, remade in the
  // prepare step (an ST_HALF step after the prepare nodes) whenever its source changes
  struct HalfCopy {
    int32_t source = -1;  // root value (a weight, a literal or a prepare node's output)
    int32_t node = -1;    // the first GEMM node reading it
    int64_t elements = 0;
    uint64_t at = 0;      // offset in block_
  };
  // A low-rank delta (kiln_bind_delta): W = base + scale * B * A, or its transpose.
  struct Delta {
    int64_t rank = 0;
    float scale = 0;
    bool transposed = false;
    std::vector<float> b, a;
  };
  struct Slot {
    char* ptr = nullptr;
    // while a delta applies: the weight as bound (ptr then holds base + delta), and the delta,
    // kept so that a weight bound later is adapted too
    char* base = nullptr;
    std::shared_ptr<const Delta> delta;
    char* prevBase = nullptr;
    std::shared_ptr<const Delta> prevDelta;
    // the open transaction sets (or, null, clears) this slot's delta
    bool deltaStaged = false;
    std::shared_ptr<const Delta> stagedDelta;
    // base + delta, computed at commit
    char* adapted = nullptr;
    Hash128 hash;
    bool bound = false;
    // the weights bound before the last commit (kept until release or revert)
    char* prevPtr = nullptr;
    Hash128 prevHash;
    bool prevBound = false;
    bool changed = false;
    // a device buffer of this weight's size kept for the next bind to stage into (see retire)
    char* spare = nullptr;
    // staged in the open transaction
    char* staged = nullptr;
    Hash128 stagedHash;
    bool stagedSet = false;
  };
  struct PendingFile {
    uint32_t slot;
    std::string path;
    uint64_t offset;
    uint64_t length;
  };

  // A captured run list, valid for the device addresses it was captured with.
  struct Graph {
    hipGraphExec_t exec = nullptr;
    std::vector<char*> ptrs;
    uint64_t used = 0;
  };

  Program() {}
  bool lower(uint32_t flags);
  /** Replaces runs of elementwise nodes with fused kernels (lower.h, fuse.cpp). */
  void fuse();
  /** Opens the vendor DNN library when a kernel can run there (before fusion: residual folds need it). */
  void openDnn(uint32_t flags);
  /** Moves the kernels that can run on the DNN library onto it (Kernel::attachDnn), after fusion. */
  void attachDnn();
  /** Runs the Convs of TF32 programs channels-last where every reader and writer can (see program.cpp). */
  void planChannelsLast();
  /**
   * precision fp16/bf16: the GEMMs whose B is weight-only read a 16-bit copy of it (HalfCopy),
   * made in the prepare step; the others stay float32 and are counted (after fusion).
   */
  void planHalf(uint32_t flags);
  /** Runs the run list as a graph: 1 done, 0 when it must run step by step (graphs off), <0 an error. */
  int32_t execGraph();
  /** The graph for the current addresses: cached, or captured now (null when capture failed). */
  Graph* graphForPointers();
  void disableGraphs(const std::string& why);
  void releaseGraphs();
  bool allocate();
  void resolvePointers();
  void emitModule(int32_t module, std::vector<Step>& out);
  int32_t root(int32_t value) const;
  bool checkStatus();
  /** What a kernel sees when it runs now (errors into `e`). */
  Exec execContext(Error* e);
  /** An ST_COPY step (an If's branch result to the If's output), on the program's stream. */
  hipError_t copyStep(const Step& st);
  void dropStaged();
  /** Computes base + delta for every slot whose delta or base the transaction changes (at commit). */
  bool adaptStaged();
  bool checkValueCopy(uint32_t value, uint64_t length, const char* what);
  const std::vector<Step>& list(int32_t which) const { return which == KILN_LIST_PREPARE ? selected_ : run_; }

  Context* ctx_ = nullptr;
  Schedule s_;
  hipStream_t stream_ = nullptr;
  hipStream_t uploadStream_ = nullptr;  // binds' uploads from the caller's memory (never captured)
  std::unique_ptr<Blas> blas_;
  /** the vendor DNN library the Convs run on (attachDnn), its absence's reason, and the kernels it refused */
  std::unique_ptr<Dnn> dnn_;
  std::string dnnWhy_, dnnMissWhy_, residualMissWhy_;
  int32_t dnnKernels_ = 0, dnnMisses_ = 0, dnnGraph_ = 0, residualFolds_ = 0;
  bool dnnTf32_ = false;
  char* blasWorkspace_ = nullptr;
  bool tf32_ = false;         // GEMMs on TF32 tensor cores (KILN_PROG_TF32, where the BLAS has them)
  HalfFormat half_ = H_NONE;  // KILN_PROG_FP16 / KILN_PROG_BF16: weight-only GEMM operands in 16 bits
  std::vector<HalfCopy> halves_;
  std::vector<std::pair<int32_t, int32_t>> halfIndex_;  // (kernel's node, its halves_ index)
  int32_t halfGemms_ = 0, floatGemms_ = 0;  // GEMMs on 16-bit weights, and those left float32
  int32_t einsums32_ = 0;                   // Einsum nodes (float32 whatever the precision)
  std::string floatGemmWhy_;                // the first one left float32, and why
  std::string precisionWhy_;  // why TF32 was asked for and not applied  // given to cuBLAS (Blas::setWorkspace); null: its own
  std::string blasWhy_;
  char* block_ = nullptr;
  uint64_t blockBytes_ = 0;
  uint64_t arenaBytes_ = 0;
  char* literalArena_ = nullptr;
  char* workspace_ = nullptr;
  int32_t* status_ = nullptr;
  int64_t workspaceBytes_ = 0;
  std::vector<uint64_t> moduleArena_;  // offsets in block_
  std::vector<uint64_t> bufferAt_;     // per value: offset in block_ (S_INPUT, S_BUFFER)
  std::vector<char*> ptrs_;
  std::vector<Slot> slots_;
  std::vector<PendingFile> pending_;
  void dropPendingFile(uint32_t slot);
  /** A buffer for slot's staged weight: its spare, else a new one (spares given back if that fails). */
  char* stageBuffer(uint32_t slot, Error& e);
  /** A buffer of slot's size no longer used: kept as its spare, or released when it has one. */
  void retire(uint32_t slot, char* p);
  void releaseSpares();
  bool inBind_ = false;
  // resident weight sets (setAdd): per set, a device buffer per weight slot
  struct ResidentSet {
    int32_t id;
    std::vector<char*> ptrs;
  };
  std::vector<ResidentSet> sets_;
  struct HostSet {
    int32_t id;
    std::vector<char*> host;  // pinned, one per weight slot (null until put)
    std::vector<Hash128> hash;
  };
  std::vector<HostSet> hostSets_;
  HostSet* findHostSet(int32_t id);
  uint64_t hostSetBytes_ = 0;
  int32_t selected_set_ = -1;
  ResidentSet* findSet(int32_t id);
  /** The quoted names of the weights `pick` chooses, comma-separated (cut near 400 characters). */
  std::string weightList(const std::function<bool(size_t)>& pick) const;
  // what bindStage did, for the commit's report
  bool staged_ = false;
  double stageValidateMs_ = 0, stageReadMs_ = 0;
  uint64_t stageBytesRead_ = 0;
  LoadStats stageLoad_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<std::string> hostReasons_;  // per node: why it runs on the host ("" on the device)
  std::vector<bool> fusedAway_;            // per node: runs inside a fused kernel at a later node
  std::map<int32_t, FusedRegion> fusedRegions_;  // per node that runs a fused kernel: its region
  // channels-last: the Convs switched, why none were, and the filter relayouts the prepare step runs
  struct Relayout {
    int32_t reads = -1;  // the value it lays out (a Conv's filter)
    std::unique_ptr<Kernel> kernel;
    uint64_t bytes = 0, at = 0;  // what it writes, at this offset in block_
  };
  std::vector<Relayout> relayouts_;
  int32_t channelsLastConvs_ = 0;
  std::string channelsLastWhy_;
  int32_t fusedNodes_ = 0, fusedKernels_ = 0, foldedTransposes_ = 0, foldedScalings_ = 0, convEpilogues_ = 0;
  std::vector<Step> run_;
  std::vector<int32_t> prepareNodes_;
  std::vector<Step> selected_;
  // graphs: the run list captured once per set of device addresses and replayed
  bool graphs_ = false;
  std::string graphWhy_;
  std::vector<Graph> graphCache_;
  uint64_t graphUse_ = 0, graphCaptures_ = 0, graphReplays_ = 0;
  // profiling: an event after each step of the run list, device time per step
  bool profiling_ = false;
  std::vector<hipEvent_t> events_;
  std::vector<float> stepMs_;
};

}  // namespace kiln
