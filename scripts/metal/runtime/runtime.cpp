// Fiber runtime: runs a grid of threadgroups, each thread of a threadgroup a
// fiber, threadgroups one after another on the calling OS thread. A fiber
// switch is a few instructions in user space (mr_switch below), not
// swapcontext, which makes a system call per switch to save the signal mask.
// Barriers and SIMD-group rendezvous are cooperative: a waiting fiber
// yields to the scheduler. A round in which no fiber progresses is a
// deadlock (a collective or barrier that some lanes never reach), reported
// with where each thread waits.
#include <sys/mman.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "mr_abi.h"

// x86-64 System V: save the callee-saved registers, MXCSR and the x87
// control word on the current stack, store its pointer in *from, load `to`
// and restore the same from it. A new fiber's stack is laid out so that the
// restore "returns" into mr_fiber_start with the fiber in r12 and its entry
// function in r13.
extern "C" void mr_switch(void** from, void* to);
extern "C" void mr_fiber_start();
asm(R"(
  .text
  .globl mr_switch
  .type mr_switch, @function
mr_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mr_switch, .-mr_switch

  .globl mr_fiber_start
  .type mr_fiber_start, @function
mr_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size mr_fiber_start, .-mr_fiber_start
)");

namespace {

struct Barrier {
  int count = 0;
  unsigned gen = 0;
};

struct Fiber {
  void* sp = nullptr; // saved stack pointer while switched out
  MrAttrs attrs;
  bool done = false;
  int sg = 0, lane = 0;
  const char* waiting = nullptr; // what it waits at, for deadlock reports
  int wait_op = 0;
};

struct SimdGroup {
  alignas(16) unsigned char slots[32][16];
  int op[32];
  unsigned present = 0; // lanes that exist and have not exited
  Barrier bar[6][32]; // [level][block]
};

struct Threadgroup {
  std::vector<Fiber> fibers;
  std::vector<SimdGroup> sgs;
  Barrier tg_bar;
  int alive = 0;
  bool progress = false;
  std::map<int, std::vector<unsigned char>> mem;
  void* sched_sp = nullptr;
};

using Adapter = void (*)(void* const*, void* const*, const MrAttrs*);

thread_local Threadgroup* g_tg = nullptr;
thread_local Fiber* g_cur = nullptr;
thread_local Adapter g_fn = nullptr;
thread_local void* const* g_bufs = nullptr;
// Constant-reference parameters of absent buffers (function-constant gated
// ones that are off) may still be read by code that Metal's specialization
// removes; they read zeros here. Absent device pointers stay null.
alignas(16) unsigned char g_zero[256];
thread_local void* g_cbufs[32];
thread_local std::string g_error;
thread_local unsigned char* g_stacks = nullptr;
thread_local size_t g_stacks_size = 0;
constexpr size_t kStack = 64 * 1024;
constexpr size_t kGuard = 4096;
constexpr size_t kStackSlot = kGuard + kStack;

void fail(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (g_error.empty())
    g_error = buf;
}

void yield() {
  mr_switch(&g_cur->sp, g_tg->sched_sp);
}

// Wait at b until `expected()` arrivals; expected is re-evaluated, so that
// lanes that exit while others wait are not waited for.
template <typename F>
void arrive_wait(Barrier& b, F expected, const char* what, int op) {
  unsigned gen = b.gen;
  b.count++;
  g_tg->progress = true;
  if (b.count >= expected()) {
    b.count = 0;
    b.gen++;
    return;
  }
  g_cur->waiting = what;
  g_cur->wait_op = op;
  while (b.gen == gen) {
    yield();
    if (b.gen == gen && b.count >= expected()) {
      b.count = 0;
      b.gen++;
      g_tg->progress = true;
    }
  }
  g_cur->waiting = nullptr;
}

unsigned block_mask(int level, int lane) {
  unsigned n = 1u << level;
  unsigned base = lane & ~(n - 1);
  return (n == 32 ? 0xffffffffu : ((1u << n) - 1)) << base;
}

int popcount(unsigned x) {
  return __builtin_popcount(x);
}

[[noreturn]] void fiber_main(Fiber* f) {
  g_fn(g_bufs, g_cbufs, &f->attrs);
  f->done = true;
  g_tg->alive--;
  g_tg->sgs[f->sg].present &= ~(1u << f->lane);
  g_tg->progress = true;
  mr_switch(&f->sp, g_tg->sched_sp); // never resumed
  __builtin_unreachable();
}

// A new fiber's stack: what mr_switch pops, top down: the return address
// (mr_fiber_start), rbp, rbx, r12 (the fiber), r13 (its entry), r14, r15,
// then MXCSR and the x87 control word. mr_fiber_start runs with a 16-byte
// aligned stack, as a call expects.
void* new_fiber_stack(unsigned char* base, size_t size, Fiber* f) {
  uintptr_t top = ((uintptr_t)(base + size) & ~(uintptr_t)15) - 16;
  uint64_t* sp = (uint64_t*)top;
  *--sp = (uint64_t)(uintptr_t)&mr_fiber_start;
  *--sp = 0; // rbp
  *--sp = 0; // rbx
  *--sp = (uint64_t)(uintptr_t)f; // r12
  *--sp = (uint64_t)(uintptr_t)&fiber_main; // r13
  *--sp = 0; // r14
  *--sp = 0; // r15
  *--sp = 0x1f80ull | (0x037full << 32); // MXCSR, x87 control word
  return sp;
}

} // namespace

extern "C" {

const void* __mr_exchange(
    const void* val,
    int size,
    int level,
    int op,
    unsigned* lane,
    unsigned* active) {
  Fiber* f = g_cur;
  SimdGroup& sg = g_tg->sgs[f->sg];
  std::memcpy(sg.slots[f->lane], val, size);
  sg.op[f->lane] = op;
  unsigned mask = block_mask(level, f->lane);
  Barrier& b = sg.bar[level][f->lane >> level];
  arrive_wait(
      b,
      [&] { return popcount(sg.present & mask); },
      "simd/quad collective",
      op);
  unsigned act = sg.present & mask;
  for (int l = 0; l < 32; l++)
    if ((act >> l & 1) && sg.op[l] != op)
      fail(
          "lanes %d and %d of simdgroup %d meet at different collectives (%d, %d)",
          f->lane,
          l,
          f->sg,
          op,
          sg.op[l]);
  *lane = f->lane;
  *active = act;
  return sg.slots;
}

void __mr_exchange_end(int level) {
  Fiber* f = g_cur;
  SimdGroup& sg = g_tg->sgs[f->sg];
  unsigned mask = block_mask(level, f->lane);
  Barrier& b = sg.bar[level][f->lane >> level];
  arrive_wait(
      b,
      [&] { return popcount(sg.present & mask); },
      "simd/quad collective (end)",
      0);
}

unsigned __mr_lane(void) {
  return g_cur->lane;
}

// The calling fiber's indices, for kernels that read them as globals (the
// CUDA executor's threadIdx and blockIdx).
const MrAttrs* __mr_attrs(void) {
  return &g_cur->attrs;
}

void __mr_threadgroup_barrier(void) {
  arrive_wait(
      g_tg->tg_bar, [] { return g_tg->alive; }, "threadgroup_barrier", 0);
}

void* __mr_threadgroup_alloc(int id, unsigned long size, unsigned long align) {
  auto& m = g_tg->mem[id];
  if (m.empty()) {
    m.assign(size + align, 0xff); // uninitialized: NaN-ish garbage
  }
  uintptr_t p = (uintptr_t)m.data();
  p = (p + align - 1) & ~(uintptr_t)(align - 1);
  return (void*)p;
}

// Run `fn` over a grid of threadgroups. Returns 0, or -1 with mr_error().
// Schedules: 0 ("rr") gives every thread a turn before any continues; 1
// ("sg_greedy") runs one SIMD-group until all its lanes wait, then the next,
// so that a SIMD-group races ahead of the others (to expose missing
// threadgroup barriers).
int mr_dispatch(
    Adapter fn,
    void* const* bufs,
    const unsigned grid[3],
    const unsigned group[3],
    int schedule) {
  g_error.clear();
  g_fn = fn;
  g_bufs = bufs;
  for (int i = 0; i < 32; i++)
    g_cbufs[i] = bufs[i] ? bufs[i] : (void*)g_zero;
  unsigned nthreads = group[0] * group[1] * group[2];
  if (nthreads == 0 || nthreads > 1024) {
    fail("threadgroup of %u threads", nthreads);
    return -1;
  }
  if (g_stacks_size < nthreads * kStackSlot) {
    if (g_stacks) {
      munmap(g_stacks, g_stacks_size);
    }
    g_stacks_size = nthreads * kStackSlot;
    void* p = mmap(
        nullptr,
        g_stacks_size,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        -1,
        0);
    if (p == MAP_FAILED) {
      g_stacks = nullptr;
      g_stacks_size = 0;
      fail("no memory for %u fiber stacks", nthreads);
      return -1;
    }
    g_stacks = (unsigned char*)p;
    // A guard page below each stack: an overflow faults instead of
    // overwriting the next fiber's stack.
    for (unsigned i = 0; i < nthreads; i++) {
      mprotect(g_stacks + i * kStackSlot, kGuard, PROT_NONE);
    }
  }
  unsigned nsg = (nthreads + 31) / 32;
  for (unsigned gz = 0; gz < grid[2]; gz++)
    for (unsigned gy = 0; gy < grid[1]; gy++)
      for (unsigned gx = 0; gx < grid[0]; gx++) {
        Threadgroup tg;
        g_tg = &tg;
        tg.fibers.resize(nthreads);
        tg.sgs.resize(nsg);
        tg.alive = nthreads;
        for (unsigned i = 0; i < nthreads; i++) {
          Fiber& f = tg.fibers[i];
          unsigned tx = i % group[0], ty = (i / group[0]) % group[1],
                   tz = i / (group[0] * group[1]);
          MrAttrs& a = f.attrs;
          std::memset(&a, 0, sizeof a);
          a.threadgroup_position_in_grid = {gx, gy, gz, 0};
          a.threadgroups_per_grid = {grid[0], grid[1], grid[2], 0};
          a.threads_per_threadgroup = {group[0], group[1], group[2], 0};
          a.thread_position_in_threadgroup = {tx, ty, tz, 0};
          a.thread_position_in_grid = {
              gx * group[0] + tx, gy * group[1] + ty, gz * group[2] + tz, 0};
          a.threads_per_grid = {
              grid[0] * group[0], grid[1] * group[1], grid[2] * group[2], 0};
          a.thread_index_in_threadgroup = i;
          a.simdgroup_index_in_threadgroup = i / 32;
          a.thread_index_in_simdgroup = i % 32;
          a.threads_per_simdgroup = 32;
          a.simdgroups_per_threadgroup = nsg;
          a.thread_index_in_quadgroup = i % 4;
          a.quadgroup_index_in_threadgroup = i / 4;
          f.sg = i / 32;
          f.lane = i % 32;
          tg.sgs[f.sg].present |= 1u << f.lane;
          f.sp =
              new_fiber_stack(g_stacks + i * kStackSlot + kGuard, kStack, &f);
        }
        bool greedy = schedule == 1;
        while (tg.alive > 0) {
          bool any = false;
          for (unsigned s0 = 0; s0 < nsg; s0++) {
            unsigned lo = greedy ? s0 * 32 : 0;
            unsigned hi = greedy ? std::min(nthreads, lo + 32) : nthreads;
            do {
              tg.progress = false;
              for (unsigned i = lo; i < hi; i++) {
                Fiber& f = tg.fibers[i];
                if (f.done)
                  continue;
                g_cur = &f;
                mr_switch(&tg.sched_sp, f.sp);
              }
              any |= tg.progress;
            } while (greedy && tg.progress);
            if (!greedy)
              break;
          }
          tg.progress = any;
          if (tg.alive > 0 && !tg.progress) {
            std::string s;
            int shown = 0;
            for (auto& f : tg.fibers)
              if (!f.done && shown++ < 8)
                s += " thread " +
                    std::to_string(f.attrs.thread_index_in_threadgroup) +
                    " at " + (f.waiting ? f.waiting : "?") + " (op " +
                    std::to_string(f.wait_op) + ");";
            fail(
                "deadlock in threadgroup (%u,%u,%u): %d threads wait:%s",
                gx,
                gy,
                gz,
                tg.alive,
                s.c_str());
            g_tg = nullptr;
            return -1;
          }
        }
        g_tg = nullptr;
        if (!g_error.empty())
          return -1;
      }
  return 0;
}

const char* mr_error(void) {
  return g_error.c_str();
}

} // extern "C"
