// Work splitting across worker instances of the threaded core (build/kiln.threads.wasm) that
// share this instance's memory. The main instance runs the executor; a kernel with enough work
// writes its arguments into the control block and calls parallelFor(kind, n): tasks 0..n-1 are
// grabbed from a tagged counter by the main instance and by every worker parked in workerLoop,
// with no JavaScript in between (memory.atomic.wait32/notify). Worker code must not touch the
// managed heap, the shadow stack or any global the main instance set at run time: a task
// reads its arguments and its slot's scratch from the control block only (runTask).
// Without workers (threads == 1, or none alive yet), parallelFor runs every task itself, so
// results never depend on how many workers took part.
import { gemmBatchTask, gemmTask, gemvTask, packBTask, GEMM_SCRATCH_A, GEMM_SCRATCH_B, GEMM_SCRATCH_E } from "./gemm";
import { im2colTask } from "./conv";
import {
  affinePlanesTask, binaryRowsTask, fusedTask, layerNormTask, softmaxTask, unaryTask, unaryTestTask, whereRowsTask,
} from "./par_eltwise";

/** Task kinds (runTask's switch). */
export const TASK_GEMM: i32 = 1;
export const TASK_IM2COL: i32 = 2;
export const TASK_UNARY: i32 = 3;
export const TASK_BINARY_ROWS: i32 = 4;
export const TASK_SOFTMAX: i32 = 5;
export const TASK_AFFINE_PLANES: i32 = 6;
export const TASK_GEMM_BATCH: i32 = 7;
export const TASK_LAYERNORM: i32 = 8;
export const TASK_GEMV: i32 = 9;
export const TASK_UNARY_TEST: i32 = 10;
export const TASK_WHERE: i32 = 11;
export const TASK_PACK_B: i32 = 12;
export const TASK_FUSED: i32 = 13;

// control block, i32 words
const W_SEQ: usize = 0; // job sequence number: the futex word workers wait on
const W_NEXT: usize = 4; // (seq & 0xffff) << 16 | next task index
const W_DONE: usize = 8; // tasks finished in the current job
const W_NTASKS: usize = 12;
const W_KIND: usize = 16;
const W_STOP: usize = 20; // 1: workers leave workerLoop
const W_ALIVE: usize = 24; // workers inside workerLoop
const W_THREADS: usize = 28;
const W_FAIL: usize = 32; // set by a worker's host when a task trapped (a core bug)
const W_MAIN_WAITS: usize = 36; // 1: the main instance sleeps on W_DONE (notify it when a job's last task ends)
/** Byte offset of the task arguments (64 words) in the control block. */
export const ARGS: usize = 64;
/** Byte offset of the thread slots: three scratch pointers (A, B, edge) and a count of tasks run, 16 bytes each. */
export const SLOTS: usize = 64 + 256;
const CTL_BYTES: usize = SLOTS + 16 * 64;
/** Loads of the job word a worker makes before it sleeps (about 20 to 50 microseconds). */
const SPIN_BEFORE_WAIT: i32 = 20000;
/** At most this many threads (main included). */
export const MAX_THREADS: i32 = 64;

/** The control block (0 in an instance without threads). */
let ctl: usize = 0;
/** Threads sharing the work, main included (1: everything runs here). */
let nThreads: i32 = 1;
/** Whether this (main) thread may block in memory.atomic.wait (Deno, Node; not a browser page's main thread). */
let canBlock: bool = false;

/** Threads sharing kernel work in this instance (1 when the pool is off). */
// @ts-ignore: decorator
@inline
export function threadCount(): i32 {
  return nThreads;
}

/**
 * Items per task when `n` items are split over `nt` threads: about four tasks per thread, so
 * that a thread finishing early takes another instead of waiting on a slow one.
 */
// @ts-ignore: decorator
@inline
export function perTask(n: i32, nt: i32): i32 {
  return (n + 4 * nt - 1) / (4 * nt);
}

/** The control block's argument area (valid while threadCount() > 1). */
// @ts-ignore: decorator
@inline
export function taskArgs(): usize {
  return ctl + ARGS;
}

/**
 * Main instance only: sets up the control block and per-slot scratch for `n` threads (main
 * included); returns the control block's address for the workers, or 0 when n < 2.
 */
export function threadsInit(n: i32, mayBlock: bool): usize {
  canBlock = mayBlock;
  if (n > MAX_THREADS) n = MAX_THREADS;
  if (!ASC_FEATURE_THREADS) n = 1;
  if (n < 2 || ctl != 0) {
    if (ctl != 0) store<i32>(ctl + W_THREADS, n < 2 ? 1 : n);
    nThreads = n < 2 ? 1 : n;
    return ctl;
  }
  ctl = heap.alloc(CTL_BYTES + 64);
  ctl = (ctl + 63) & ~(<usize>63);
  memory.fill(ctl, 0, CTL_BYTES);
  for (let s = 0; s < n; s++) {
    const slot = ctl + SLOTS + (<usize>s << 4);
    store<usize>(slot, (heap.alloc(GEMM_SCRATCH_A + 64) + 15) & ~(<usize>15));
    store<usize>(slot, (heap.alloc(GEMM_SCRATCH_B + 64) + 15) & ~(<usize>15), 4);
    store<usize>(slot, (heap.alloc(GEMM_SCRATCH_E + 64) + 15) & ~(<usize>15), 8);
  }
  store<i32>(ctl + W_THREADS, n);
  nThreads = n;
  return ctl;
}

/** Scratch pointer k (0: A panel, 1: B panel, 2: edge tile) of thread slot `slot`. */
// @ts-ignore: decorator
@inline
export function slotScratch(c: usize, slot: i32, k: i32): usize {
  return load<usize>(c + SLOTS + (<usize>slot << 4) + (<usize>k << 2));
}

function runTask(c: usize, kind: i32, t: i32, slot: i32): void {
  if (kind == TASK_GEMM) gemmTask(c, c + ARGS, t, slot);
  else if (kind == TASK_IM2COL) im2colTask(c + ARGS, t);
  else if (kind == TASK_UNARY) unaryTask(c + ARGS, t);
  else if (kind == TASK_BINARY_ROWS) binaryRowsTask(c + ARGS, t);
  else if (kind == TASK_SOFTMAX) softmaxTask(c + ARGS, t);
  else if (kind == TASK_AFFINE_PLANES) affinePlanesTask(c + ARGS, t);
  else if (kind == TASK_GEMM_BATCH) gemmBatchTask(c, c + ARGS, t, slot);
  else if (kind == TASK_LAYERNORM) layerNormTask(c + ARGS, t);
  else if (kind == TASK_GEMV) gemvTask(c + ARGS, t);
  else if (kind == TASK_UNARY_TEST) unaryTestTask(c + ARGS, t);
  else if (kind == TASK_WHERE) whereRowsTask(c + ARGS, t);
  else if (kind == TASK_PACK_B) packBTask(c + ARGS, t);
  else if (kind == TASK_FUSED) fusedTask(c, c + ARGS, t, slot);
}

/** Takes and runs tasks of job `seq` until none is left. */
function drain(c: usize, seq: i32, slot: i32): void {
  if (!ASC_FEATURE_THREADS) return;
  const tag = (seq & 0xffff) << 16;
  while (true) {
    const w = atomic.load<i32>(c + W_NEXT);
    if ((w & 0xffff0000) != tag) return;
    const t = w & 0xffff;
    if (t >= atomic.load<i32>(c + W_NTASKS)) return;
    if (atomic.cmpxchg<i32>(c + W_NEXT, w, w + 1) != w) continue;
    runTask(c, atomic.load<i32>(c + W_KIND), t, slot);
    const count = c + SLOTS + (<usize>slot << 4) + 12;
    store<i32>(count, load<i32>(count) + 1);
    const done = atomic.add<i32>(c + W_DONE, 1) + 1;
    if (slot != 0 && done == atomic.load<i32>(c + W_NTASKS) && atomic.load<i32>(c + W_MAIN_WAITS) != 0) {
      atomic.notify(c + W_DONE, 1);
    }
  }
}

/** A job started by parallelBegin and not yet ended: its task count (0: none) and sequence number. */
let pendingN: i32 = 0;
let pendingSeq: i32 = 0;

/** Publishes job `kind` of `n` tasks (arguments already in taskArgs()) and wakes the workers; its sequence number. */
function publish(c: usize, kind: i32, n: i32): i32 {
  atomic.store<i32>(c + W_KIND, kind);
  atomic.store<i32>(c + W_NTASKS, n);
  atomic.store<i32>(c + W_DONE, 0);
  const seq = atomic.load<i32>(c + W_SEQ) + 1;
  atomic.store<i32>(c + W_NEXT, (seq & 0xffff) << 16);
  atomic.store<i32>(c + W_SEQ, seq);
  if (atomic.load<i32>(c + W_ALIVE) > 0) atomic.notify(c + W_SEQ);
  return seq;
}

/** Takes what is left of job `seq` (n tasks) on this thread, then waits until every task is done. */
function finish(c: usize, seq: i32, n: i32): void {
  drain(c, seq, 0);
  // the last tasks run on other threads: spin a little, then (where this thread may block) sleep
  // until the last one notifies, so that on a busy machine the worker can have this core
  let spins = 0;
  while (true) {
    const d = atomic.load<i32>(c + W_DONE);
    if (d >= n) break;
    if (!canBlock || ++spins < 4000) continue;
    atomic.store<i32>(c + W_MAIN_WAITS, 1);
    if (atomic.load<i32>(c + W_DONE) < n) atomic.wait<i32>(c + W_DONE, d, 1000000); // 1 ms at most
    atomic.store<i32>(c + W_MAIN_WAITS, 0);
  }
  if (atomic.load<i32>(c + W_FAIL) != 0) unreachable();
}

/**
 * Main instance: runs tasks 0..n-1 of `kind` (arguments already in taskArgs()) on every thread,
 * returning when all are done. n <= 65535.
 */
export function parallelFor(kind: i32, n: i32): void {
  parallelBegin(kind, n);
  parallelEnd();
}

/**
 * Main instance: starts tasks 0..n-1 of `kind` on the workers and returns at once, so this thread
 * can do other work (a bind reads the next staged chunk while the workers pack this one);
 * parallelEnd takes what the workers have not and waits for the rest. Without threads, or with
 * no worker awake, the tasks run at parallelEnd. The arguments must stay as they are until then.
 */
export function parallelBegin(kind: i32, n: i32): void {
  const c = ctl;
  if (!ASC_FEATURE_THREADS || c == 0) {
    for (let t = 0; t < n; t++) runTask(c, kind, t, 0);
    return;
  }
  if (pendingN > 0) parallelEnd();
  pendingSeq = publish(c, kind, n);
  pendingN = n;
}

/** Main instance: ends the job parallelBegin started (nothing when none is pending). */
export function parallelEnd(): void {
  if (!ASC_FEATURE_THREADS || ctl == 0 || pendingN == 0) return;
  const n = pendingN;
  pendingN = 0;
  finish(ctl, pendingSeq, n);
}

/**
 * A worker instance's loop: waits for jobs on the control block at `c` and runs its tasks with
 * the scratch of `slot` (1..threads-1). Returns 0 when asked to stop, 1 after `idleMs` without
 * a job (the host then ends the worker; the main instance runs on without it).
 */
export function workerLoop(c: usize, slot: i32, idleMs: i32): i32 {
  if (!ASC_FEATURE_THREADS) return 0;
  atomic.add<i32>(c + W_ALIVE, 1);
  let seen = atomic.load<i32>(c + W_SEQ);
  let result = 0;
  while (true) {
    if (atomic.load<i32>(c + W_STOP) != 0) break;
    let s = atomic.load<i32>(c + W_SEQ);
    // jobs often come back to back (one kernel after another): look again for a short while
    // before sleeping, which saves the futex wake-up (tens of microseconds) per job
    for (let k = 0; k < SPIN_BEFORE_WAIT && s == seen; k++) s = atomic.load<i32>(c + W_SEQ);
    if (s != seen) {
      seen = s;
      drain(c, s, slot);
      continue;
    }
    const r = atomic.wait<i32>(c + W_SEQ, s, <i64>idleMs * 1000000);
    if (r == AtomicWaitResult.TIMED_OUT && atomic.load<i32>(c + W_SEQ) == s) {
      result = 1;
      break;
    }
  }
  atomic.sub<i32>(c + W_ALIVE, 1);
  return result;
}

/** Main instance: asks every worker to leave workerLoop (dispose). */
export function threadsStop(): void {
  if (!ASC_FEATURE_THREADS || ctl == 0) return;
  atomic.store<i32>(ctl + W_STOP, 1);
  atomic.add<i32>(ctl + W_SEQ, 1);
  atomic.notify(ctl + W_SEQ);
  nThreads = 1;
}
