// A host model of the CUDA C++ that the series' CUDA kernels use, so that
// they run on the CPU from their own source under the fiber runtime of the
// Metal executor (scripts/metal/runtime/runtime.cpp): a thread block is a
// threadgroup, a warp a SIMD-group of 32 fibers, and every warp-wide
// instruction (shuffles, votes, mma.sync, ldmatrix, movmatrix) is a
// rendezvous of its 32 lanes. Force-included, after CUDA's own fp16 and bf16
// headers, into sources that cuda_run.py has rewritten: each inline PTX
// statement becomes a call to a function of namespace ptx below, named after
// its instruction, with its outputs by reference then its inputs; `extern
// __shared__` arrays read dynamic_smem(); launches `k<<<g, b, s>>>(...)`
// become cuda_run::launch(g, b, s, k, ...).
//
// What it models: thread and block indices, block barriers, the warp
// collectives and PTX instructions the kernels use, with the operand layouts
// of the PTX ISA; shared memory per block, at 32-bit shared addresses; the
// runtime API calls the checker makes (device memory is host memory, a
// launch runs to completion before it returns). What it does not: timing,
// occupancy, register limits, bank conflicts, memory-model subtleties
// (fibers switch only at barriers and collectives, so a race that needs
// interleaving elsewhere goes unseen), and the tensor cores' accumulation
// order (products summed in double, added to the float accumulator once).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mr_abi.h"

extern "C" {
// The calling fiber's indices (runtime.cpp).
const MrAttrs* __mr_attrs(void);
typedef void (*MrAdapter)(void* const*, void* const*, const MrAttrs*);
int mr_dispatch(
    MrAdapter fn,
    void* const* bufs,
    const unsigned grid[3],
    const unsigned group[3],
    int schedule);
const char* mr_error(void);
}

// CUDA's host headers define these as attributes of their own.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __shared__
#undef __align__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Block-wide: the fibers of a block run on one OS thread, one block after
// another, so a static thread_local is one block's copy (filled anew for
// each block: cuda_run::fresh).
#define __shared__ static thread_local

namespace cuda_run {

[[noreturn]] inline void fail(const char* what) {
  const MrAttrs* a = __mr_attrs();
  std::fprintf(
      stderr,
      "cuda_run: %s (block %u,%u,%u thread %u,%u,%u)\n",
      what,
      a->threadgroup_position_in_grid.x,
      a->threadgroup_position_in_grid.y,
      a->threadgroup_position_in_grid.z,
      a->thread_position_in_threadgroup.x,
      a->thread_position_in_threadgroup.y,
      a->thread_position_in_threadgroup.z);
  std::abort();
}

// Ids of the warp collectives, so that lanes meeting at different ones are
// reported (beyond the Metal runtime's MrOp values).
enum Collective {
  SYNCWARP = 100,
  SHFL_XOR,
  SHFL,
  ANY,
  ALL,
  BALLOT,
  MMA_A,
  MMA_B,
  MOVMATRIX,
  LDMATRIX,
  LDMATRIX_TRANS,
};

struct Index {
  unsigned x, y, z;
};
inline Index index_of(const mr_u3& v) {
  return {v.x, v.y, v.z};
}

// Shared memory: every __shared__ variable and the dynamic array live in
// this OS thread's TLS block, so their distance from `shared_anchor` fits a
// 32-bit shared address.
alignas(16) inline thread_local unsigned char shared_anchor[16];
constexpr size_t max_shared = 232448; // 227 KiB, an H100's or H200's
alignas(16) inline thread_local unsigned char dynamic_smem_bytes[max_shared];
inline thread_local size_t dynamic_smem_size = 0;

inline unsigned char* dynamic_smem() {
  return dynamic_smem_bytes;
}

// Which block of which launch a fiber runs: launches are counted.
inline thread_local uint64_t launch_count = 0;
inline uint64_t block_id() {
  const MrAttrs* a = __mr_attrs();
  auto& b = a->threadgroup_position_in_grid;
  auto& n = a->threadgroups_per_grid;
  return (uint64_t(b.z) * n.y + b.y) * n.x + b.x;
}

// Schedules of the fiber runtime: 0 gives every thread a turn before any
// continues; 1 runs one warp until all its lanes wait (a warp racing ahead
// exposes missing barriers). CUDA_RUN_SCHEDULE picks one.
inline int schedule() {
  const char* s = std::getenv("CUDA_RUN_SCHEDULE");
  return s ? std::atoi(s) : 0;
}

// The byte that fills shared memory and device allocations: 0xff (NaN as
// floats and halves) unless CUDA_RUN_FILL gives another (e.g. 0x7b: large
// finite values, which fmaxf does not skip as it skips NaNs).
inline int fill_byte() {
  static const int b = [] {
    const char* s = std::getenv("CUDA_RUN_FILL");
    return s ? static_cast<int>(std::strtol(s, nullptr, 0)) : 0xff;
  }();
  return b;
}

struct SharedVariable {
  size_t size;
  uint64_t launch, block;
};
// The __shared__ variables seen, by address.
inline thread_local std::unordered_map<const void*, SharedVariable> shared;

// Shared memory is uninitialized on a GPU: each block's first thread to
// declare a __shared__ variable (the rewriter puts a call after each
// declaration) fills it, so that a read before the block wrote it, or
// before a barrier that should order it, shows. The block's static and
// dynamic shared memory must fit the multiprocessor's.
inline void fresh(const void* p, size_t size) {
  uint64_t launch = launch_count, block = block_id();
  auto it = shared.find(p);
  if (it != shared.end() && it->second.launch == launch &&
      it->second.block == block) {
    return;
  }
  std::memset(const_cast<void*>(p), fill_byte(), size);
  shared[p] = {size, launch, block};
  size_t total = dynamic_smem_size;
  for (auto& [q, v] : shared) {
    total += v.launch == launch && q != dynamic_smem_bytes ? v.size : 0;
  }
  if (total > max_shared) {
    fail("more shared memory than a multiprocessor has");
  }
}

// Whether [p, p + n) lies in one shared variable of the running kernel or
// in its dynamic array.
inline bool in_shared(const unsigned char* p, size_t n) {
  auto inside = [&](const void* base, size_t size) {
    auto b = static_cast<const unsigned char*>(base);
    return p >= b && p + n <= b + size;
  };
  if (inside(dynamic_smem_bytes, dynamic_smem_size)) {
    return true;
  }
  for (auto& [q, v] : shared) {
    if (v.launch == launch_count && q != dynamic_smem_bytes &&
        inside(q, v.size)) {
      return true;
    }
  }
  return false;
}

inline uint32_t shared_address(const void* p) {
  auto c = static_cast<const unsigned char*>(p);
  if (!in_shared(c, 1)) {
    fail("a pointer that is not to shared memory given as one");
  }
  return static_cast<uint32_t>(static_cast<int32_t>(c - shared_anchor));
}
// The `n` bytes at a shared address, which must be aligned to `align`.
inline const unsigned char*
shared_pointer(uint32_t address, size_t n, size_t align) {
  const unsigned char* p = shared_anchor + static_cast<int32_t>(address);
  if (address % align != 0 ||
      reinterpret_cast<uintptr_t>(p) % align != 0) {
    fail("a misaligned shared memory access");
  }
  if (!in_shared(p, n)) {
    fail("a shared memory access outside every shared variable");
  }
  return p;
}

// All 32 lanes' values of `x` (at most 16 bytes): lane l's in out[l].
// `op` names the collective, so that lanes meeting at different ones are
// reported; every lane of the warp must take part (`*.sync.aligned` and the
// full masks the kernels use).
template <typename T>
unsigned gather(T (&out)[32], const T& x, int op, unsigned mask = ~0u) {
  static_assert(sizeof(T) <= 16, "a warp value over 16 bytes");
  unsigned lane, active;
  auto* slots = static_cast<const unsigned char*>(
      __mr_exchange(&x, sizeof(T), 5, op, &lane, &active));
  if ((active & mask) != mask) {
    fail("a warp collective that lanes of its mask did not reach");
  }
  for (int l = 0; l < 32; ++l) {
    if (active >> l & 1) {
      std::memcpy(&out[l], slots + 16 * l, sizeof(T));
    }
  }
  __mr_exchange_end(5);
  return lane;
}

template <typename T>
void check_dim(const T& d) {
  if (d.x == 0 || d.y == 0 || d.z == 0) {
    std::fprintf(stderr, "cuda_run: a launch with an empty grid or block\n");
    std::abort();
  }
}

} // namespace cuda_run

#define threadIdx \
  (cuda_run::index_of(__mr_attrs()->thread_position_in_threadgroup))
#define blockIdx \
  (cuda_run::index_of(__mr_attrs()->threadgroup_position_in_grid))
#define blockDim (cuda_run::index_of(__mr_attrs()->threads_per_threadgroup))
#define gridDim (cuda_run::index_of(__mr_attrs()->threadgroups_per_grid))
constexpr int warpSize = 32;

///////////////////////////////////////////////////////////////////////////////
// Device functions
///////////////////////////////////////////////////////////////////////////////

inline void __syncthreads() {
  __mr_threadgroup_barrier();
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  int dummy = 0;
  int all[32];
  cuda_run::gather(all, dummy, cuda_run::SYNCWARP, mask);
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T x, int lane_mask, int width = 32) {
  T all[32];
  unsigned lane = cuda_run::gather(all, x, cuda_run::SHFL_XOR, mask);
  // shfl.sync.bfly with c = width's clamp: a partner past the end of the
  // lane's segment gives the lane its own value.
  unsigned src = lane ^ (static_cast<unsigned>(lane_mask) & 31);
  unsigned last = lane | static_cast<unsigned>(width - 1);
  return src > last ? x : all[src];
}
template <typename T>
T __shfl_sync(unsigned mask, T x, int src_lane, int width = 32) {
  T all[32];
  unsigned lane = cuda_run::gather(all, x, cuda_run::SHFL, mask);
  unsigned base = lane & ~static_cast<unsigned>(width - 1);
  return all[base + (static_cast<unsigned>(src_lane) % width)];
}
inline int __any_sync(unsigned mask, int pred) {
  int all[32];
  cuda_run::gather(all, pred, cuda_run::ANY, mask);
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1) && all[l]) {
      return 1;
    }
  }
  return 0;
}
inline int __all_sync(unsigned mask, int pred) {
  int all[32];
  cuda_run::gather(all, pred, cuda_run::ALL, mask);
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1) && !all[l]) {
      return 0;
    }
  }
  return 1;
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  int all[32];
  cuda_run::gather(all, pred, cuda_run::BALLOT, mask);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l) {
    r |= ((mask >> l & 1) && all[l]) ? 1u << l : 0u;
  }
  return r;
}

template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  return *p;
}
// The blocks of a launch run one after another, so a fence has nothing to
// order and an atomic nothing to race with.
inline void __threadfence() {}
inline unsigned atomicAdd(unsigned* p, unsigned x) {
  unsigned old = *p;
  *p = old + x;
  return old;
}
// __syncthreads_or: a flag of the block's, set by the threads whose
// predicate holds between two barriers, read between the second and a
// third, after which the first thread clears it.
inline int syncthreads_or_flag = 0;
inline int __syncthreads_or(int pred) {
  __syncthreads();
  if (pred) {
    syncthreads_or_flag = 1;
  }
  __syncthreads();
  int any = syncthreads_or_flag;
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    syncthreads_or_flag = 0;
  }
  return any;
}
inline size_t __cvta_generic_to_shared(const void* p) {
  return cuda_run::shared_address(p);
}
inline float __uint_as_float(unsigned x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float __int_as_float(int x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
inline int __float_as_int(float x) {
  int u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<unsigned>(x >> (shift & 31));
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
  uint64_t x = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<unsigned>((x << (shift & 31)) >> 32);
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint64_t bytes = (static_cast<uint64_t>(y) << 32) | x;
  unsigned out = 0;
  for (int i = 0; i < 4; ++i) {
    unsigned sel = (s >> (4 * i)) & 15;
    unsigned b = (bytes >> (8 * (sel & 7))) & 0xff;
    if (sel & 8) { // the sign of the byte, replicated
      b = (b & 0x80) ? 0xff : 0;
    }
    out |= b << (8 * i);
  }
  return out;
}
inline int __popc(unsigned x) {
  return __builtin_popcount(x);
}
inline int __clz(int x) {
  return x ? __builtin_clz(static_cast<unsigned>(x)) : 32;
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline float __fdividef(float x, float y) {
  return x / y;
}
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __saturatef(float x) {
  return std::isnan(x) ? 0.0f : std::fmin(std::fmax(x, 0.0f), 1.0f);
}
// Fused, rounded once: the product of two halves is exact in double.
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  float2 x = __half22float2(a), y = __half22float2(b), z = __half22float2(c);
  return __halves2half2(
      __double2half(double(x.x) * y.x + z.x),
      __double2half(double(x.y) * y.y + z.y));
}
// CUDA's min and max, for the types the kernels mix.
template <typename A, typename B>
std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <typename A, typename B>
std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}

///////////////////////////////////////////////////////////////////////////////
// PTX instructions, by name: outputs by reference, then inputs.
///////////////////////////////////////////////////////////////////////////////

namespace ptx {

inline float flush(float x) {
  return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x;
}

inline void ex2_approx_ftz_f32(float& y, float x) {
  y = flush(std::exp2(flush(x)));
}

inline void and_b32(uint32_t& y, uint32_t x, uint32_t mask) {
  y = x & mask;
}

// A load of 16 bytes of device memory (which is host memory here) that
// skips L1.
inline void ld_global_nc_L1__no_allocate_v4_u32(
    uint32_t& x,
    uint32_t& y,
    uint32_t& z,
    uint32_t& w,
    const void* p) {
  uint32_t v[4];
  std::memcpy(v, p, 16);
  x = v[0];
  y = v[1];
  z = v[2];
  w = v[3];
}

inline void ld_shared_u32(uint32_t& y, uint32_t address) {
  std::memcpy(&y, cuda_run::shared_pointer(address, 4, 4), 4);
}

// cp.async: a copy from global to shared memory that lands at a time of the
// hardware's choosing between its issue and the wait for its group. Under
// schedule 0 it lands at the wait, so that a read of the destination before
// the wait sees the fill; under schedule 1 at its issue, so that a read of
// the destination's old contents after the issue sees the new ones. Copies
// are the issuing thread's: only its own waits land them.
struct AsyncCopy {
  uint32_t dst;
  uint32_t n;
  unsigned char bytes[16];
};
struct AsyncGroups {
  std::vector<AsyncCopy> open;
  std::deque<std::vector<AsyncCopy>> committed;
};
// By launch, block and thread (the fibers of a block share an OS thread).
inline thread_local std::map<std::tuple<uint64_t, uint64_t, unsigned>, AsyncGroups>
    async_groups;
inline AsyncGroups& async_of_thread() {
  const MrAttrs* a = __mr_attrs();
  auto& t = a->thread_position_in_threadgroup;
  auto& n = a->threads_per_threadgroup;
  unsigned tid = (t.z * n.y + t.y) * n.x + t.x;
  uint64_t launch = cuda_run::launch_count;
  // Groups of earlier launches are gone with their shared memory.
  while (!async_groups.empty() && std::get<0>(async_groups.begin()->first) != launch) {
    async_groups.erase(async_groups.begin());
  }
  return async_groups[{launch, cuda_run::block_id(), tid}];
}
inline void land(const AsyncCopy& c) {
  std::memcpy(
      const_cast<unsigned char*>(cuda_run::shared_pointer(c.dst, c.n, c.n)),
      c.bytes,
      c.n);
}
inline void copy_async(uint32_t dst, const void* src, int n) {
  if (n != 4 && n != 8 && n != 16) {
    cuda_run::fail("a cp.async of other than 4, 8 or 16 bytes");
  }
  if (reinterpret_cast<uintptr_t>(src) % n != 0) {
    cuda_run::fail("a misaligned cp.async source");
  }
  cuda_run::shared_pointer(dst, n, n);
  AsyncCopy c{dst, static_cast<uint32_t>(n), {}};
  std::memcpy(c.bytes, src, n);
  if (cuda_run::schedule() == 1) {
    land(c);
  } else {
    async_of_thread().open.push_back(c);
  }
}
inline void cp_async_ca_shared_global(uint32_t dst, const void* src, int n) {
  copy_async(dst, src, n);
}
inline void cp_async_cg_shared_global(uint32_t dst, const void* src, int n) {
  if (n != 16) {
    cuda_run::fail("a cp.async.cg of other than 16 bytes");
  }
  copy_async(dst, src, n);
}
inline void cp_async_commit_group() {
  auto& a = async_of_thread();
  a.committed.push_back(std::move(a.open));
  a.open.clear();
}
inline void cp_async_wait_group(int n) {
  auto& a = async_of_thread();
  while (a.committed.size() > static_cast<size_t>(n)) {
    for (auto& c : a.committed.front()) {
      land(c);
    }
    a.committed.pop_front();
  }
}
inline void cp_async_wait_all() {
  cp_async_commit_group();
  cp_async_wait_group(0);
}

// 16-bit element `i` (0 low, 1 high) of a register.
inline uint16_t half_of(uint32_t r, int i) {
  return static_cast<uint16_t>(r >> (16 * i));
}
inline float f16_value(uint16_t bits) {
  static const auto table = [] {
    auto t = new float[65536];
    for (uint32_t i = 0; i < 65536; ++i) {
      __half_raw raw;
      raw.x = static_cast<unsigned short>(i);
      t[i] = __half2float(__half(raw));
    }
    return t;
  }();
  return table[bits];
}
inline float bf16_value(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: D (16 x 8) += A (16 x
// 16) B (16 x 8). Lane (g, t) = (lane / 4, lane % 4) holds A's rows g and
// g + 8 at columns 2t, 2t + 1 (a0: row g, a1: row g + 8) and 2t + 8, 2t + 9
// (a2, a3); B's rows 2t, 2t + 1 (b0) and 2t + 8, 2t + 9 (b1) at column g;
// D's rows g (d0, d1) and g + 8 (d2, d3) at columns 2t, 2t + 1.
template <float (*value)(uint16_t)>
void mma_m16n8k16(
    float& d0,
    float& d1,
    float& d2,
    float& d3,
    uint32_t a0,
    uint32_t a1,
    uint32_t a2,
    uint32_t a3,
    uint32_t b0,
    uint32_t b1) {
  struct A {
    uint32_t r[4];
  };
  struct B {
    uint32_t r[2];
  };
  A as[32];
  B bs[32];
  unsigned lane = cuda_run::gather(as, A{{a0, a1, a2, a3}}, cuda_run::MMA_A);
  cuda_run::gather(bs, B{{b0, b1}}, cuda_run::MMA_B);
  int g = lane / 4, t = lane % 4;
  // This lane's rows of A (g, g + 8) and columns of B (2t, 2t + 1).
  float a[2][16], b[2][16];
  for (int k = 0; k < 16; ++k) {
    for (int i = 0; i < 2; ++i) {
      const A& x = as[g * 4 + (k % 8) / 2];
      a[i][k] = value(half_of(x.r[i + (k >= 8 ? 2 : 0)], k % 2));
      const B& y = bs[(2 * t + i) * 4 + (k % 8) / 2];
      b[i][k] = value(half_of(y.r[k >= 8 ? 1 : 0], k % 2));
    }
  }
  float* d[4] = {&d0, &d1, &d2, &d3};
  for (int i = 0; i < 4; ++i) {
    double s = 0;
    for (int k = 0; k < 16; ++k) {
      s += double(a[i / 2][k]) * b[i % 2][k];
    }
    *d[i] = static_cast<float>(*d[i] + s);
  }
}

// By the instructions' names, which the rewriter calls.
inline constexpr auto* mma_sync_aligned_m16n8k16_row_col_f32_f16_f16_f32 =
    &mma_m16n8k16<f16_value>;
inline constexpr auto* mma_sync_aligned_m16n8k16_row_col_f32_bf16_bf16_f32 =
    &mma_m16n8k16<bf16_value>;

// An 8 x 8 matrix of 16-bit elements as fragments: lane l holds row l / 4,
// columns 2 (l % 4) and 2 (l % 4) + 1. Element (row, col) of the matrix
// whose fragments are `regs`.
inline uint16_t fragment_at(const uint32_t (&regs)[32], int row, int col) {
  return half_of(regs[row * 4 + col / 2], col % 2);
}
inline uint32_t pack(uint16_t lo, uint16_t hi) {
  return lo | static_cast<uint32_t>(hi) << 16;
}

// movmatrix.sync.aligned.m8n8.trans.b16: the fragments of the transpose.
inline void movmatrix_sync_aligned_m8n8_trans_b16(uint32_t& y, uint32_t x) {
  uint32_t all[32];
  unsigned lane = cuda_run::gather(all, x, cuda_run::MOVMATRIX);
  int row = lane / 4, col = 2 * (lane % 4);
  y = pack(fragment_at(all, col, row), fragment_at(all, col + 1, row));
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane i gives the shared
// address of row i % 8 of matrix i / 8; register j receives matrix j's
// fragments (of its transpose with .trans).
template <bool trans>
void ldmatrix_x4(
    uint32_t& x0,
    uint32_t& x1,
    uint32_t& x2,
    uint32_t& x3,
    uint32_t address) {
  uint32_t rows[32];
  unsigned lane = cuda_run::gather(
      rows, address, trans ? cuda_run::LDMATRIX_TRANS : cuda_run::LDMATRIX);
  // Each row is 16 bytes, aligned to 16.
  auto at = [&](int matrix, int row, int col) {
    uint16_t v[8];
    std::memcpy(v, cuda_run::shared_pointer(rows[matrix * 8 + row], 16, 16), 16);
    return v[col];
  };
  int r = lane / 4, c = 2 * (lane % 4);
  uint32_t* out[4] = {&x0, &x1, &x2, &x3};
  for (int j = 0; j < 4; ++j) {
    *out[j] = trans ? pack(at(j, c, r), at(j, c + 1, r))
                    : pack(at(j, r, c), at(j, r, c + 1));
  }
}
// By the instructions' names, which the rewriter calls.
inline constexpr auto* ldmatrix_sync_aligned_m8n8_x4_shared_b16 =
    &ldmatrix_x4<false>;
inline constexpr auto* ldmatrix_sync_aligned_m8n8_x4_trans_shared_b16 =
    &ldmatrix_x4<true>;

} // namespace ptx

///////////////////////////////////////////////////////////////////////////////
// Runtime API: what the checker calls. Device memory is host memory.
///////////////////////////////////////////////////////////////////////////////

// CUDA's headers declare these (cuda_runtime_api.h, through cuda_fp16.h);
// here are their bodies.
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};

const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "an error of the CUDA executor";
}
cudaError_t cudaGetLastError() {
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  return cudaSuccess;
}
// Device memory is uninitialized too: filled as shared memory is.
cudaError_t cudaMalloc(void** p, size_t n) {
  size_t size = (n + 255) / 256 * 256;
  *p = std::aligned_alloc(256, size);
  if (*p) {
    std::memset(*p, cuda_run::fill_byte(), size);
  }
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <typename T>
cudaError_t cudaMalloc(T** p, size_t n) {
  return cudaMalloc(reinterpret_cast<void**>(p), n);
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);
  return cudaSuccess;
}
// The SM count of an H100 or H200, so that launches are planned as there.
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  if (attr != cudaDevAttrMultiProcessorCount) {
    return cudaErrorInvalidValue;
  }
  *v = 132;
  return cudaSuccess;
}
namespace cuda_run {
// The dynamic shared memory each kernel may take (cudaFuncSetAttribute):
// 48 KiB unless raised.
inline std::unordered_map<const void*, int> max_dynamic_smem;
} // namespace cuda_run
template <typename F>
cudaError_t cudaFuncSetAttribute(F kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    cuda_run::max_dynamic_smem[reinterpret_cast<const void*>(kernel)] = value;
  }
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
  *ms = std::chrono::duration<float, std::milli>(stop->t - start->t).count();
  return cudaSuccess;
}

namespace cuda_run {

inline thread_local std::function<void()>* launch_body = nullptr;

// kernel<<<grid, block, smem>>>(args...): runs every block, then returns.
template <typename... Params, typename... Args>
void launch(
    dim3 grid,
    dim3 block,
    size_t smem,
    void (*kernel)(Params...),
    Args&&... args) {
  check_dim(grid);
  check_dim(block);
  auto allowed = max_dynamic_smem.find(reinterpret_cast<const void*>(kernel));
  size_t limit = allowed == max_dynamic_smem.end() ? 48 * 1024 : allowed->second;
  if (smem > limit || smem > max_shared) {
    std::fprintf(
        stderr,
        "cuda_run: %zu bytes of dynamic shared memory, over the kernel's %zu "
        "(cudaFuncSetAttribute raises it)\n",
        smem,
        limit);
    std::abort();
  }
  std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  std::function<void()> body = [&] { std::apply(kernel, params); };
  launch_body = &body;
  dynamic_smem_size = smem;
  ++launch_count;
  const unsigned g[3] = {grid.x, grid.y, grid.z};
  const unsigned b[3] = {block.x, block.y, block.z};
  void* bufs[32] = {};
  int rc = mr_dispatch(
      [](void* const*, void* const*, const MrAttrs*) { (*launch_body)(); },
      bufs,
      g,
      b,
      schedule());
  launch_body = nullptr;
  if (rc != 0) {
    std::fprintf(stderr, "cuda_run: %s\n", mr_error());
    std::abort();
  }
}
} // namespace cuda_run
