// Bodies for the declarations of scripts/metal/shim/metal_shim.h, so that MLX's
// Metal kernels, compiled as C++ for OpenCL for x86-64, run on the CPU under
// the fiber runtime (runtime.cpp). Force-included after metal_shim.h.
#pragma once
#include "mr_abi.h"

namespace metal {
namespace __mr {

template <typename T>
constexpr int size_of = __shim::vec_traits<T>::size;

// Elementwise helpers: scalars and clang vectors alike.
template <typename T, typename F>
METAL_FUNC T map1(T x, F f) {
  if constexpr (size_of<T> == 1) {
    return T(f(float(x)));
  } else {
    T r;
    for (int i = 0; i < size_of<T>; i++)
      r[i] = __shim::scalar_t<T>(f(float(x[i])));
    return r;
  }
}
template <typename T, typename F>
METAL_FUNC T map2(T x, T y, F f) {
  if constexpr (size_of<T> == 1) {
    return T(f(float(x), float(y)));
  } else {
    T r;
    for (int i = 0; i < size_of<T>; i++)
      r[i] = __shim::scalar_t<T>(f(float(x[i]), float(y[i])));
    return r;
  }
}
template <typename T, typename F>
METAL_FUNC T map3(T x, T y, T z, F f) {
  if constexpr (size_of<T> == 1) {
    return T(f(float(x), float(y), float(z)));
  } else {
    T r;
    for (int i = 0; i < size_of<T>; i++)
      r[i] = __shim::scalar_t<T>(f(float(x[i]), float(y[i]), float(z[i])));
    return r;
  }
}
// Integer-or-float elementwise, computed in the element type.
template <typename T, typename F>
METAL_FUNC T nmap2(T x, T y, F f) {
  if constexpr (size_of<T> == 1) {
    return f(x, y);
  } else {
    T r;
    for (int i = 0; i < size_of<T>; i++)
      r[i] = f(x[i], y[i]);
    return r;
  }
}

constexpr float pi = 3.14159265358979323846f;

} // namespace __mr
} // namespace metal

// Float math in float (half computes in float and rounds once; Metal's half
// functions may differ in the last bit). fast:: and precise:: are the same
// functions here: fast::exp is not Apple's approximation.
#define MR_F1(name, expr)                                        \
  template <typename T>                                          \
  __shim::genfloat<T> name(T x) {                                \
    return __mr::map1(x, [](float a) -> float { return expr; }); \
  }
#define MR_F2(name, expr)                                                    \
  template <typename T>                                                      \
  __shim::genfloat<T> name(T x, T y) {                                       \
    return __mr::map2(x, y, [](float a, float b) -> float { return expr; }); \
  }
#define MR_F3(name, expr)                                                  \
  template <typename T>                                                    \
  __shim::genfloat<T> name(T x, T y, T z) {                                \
    return __mr::map3(                                                     \
        x, y, z, [](float a, float b, float c) -> float { return expr; }); \
  }
#define MR_MATH_BODIES                                                   \
  MR_F1(acos, __builtin_acosf(a))                                        \
  MR_F1(acosh, __builtin_acoshf(a))                                      \
  MR_F1(asin, __builtin_asinf(a))                                        \
  MR_F1(asinh, __builtin_asinhf(a))                                      \
  MR_F1(atan, __builtin_atanf(a))                                        \
  MR_F2(atan2, __builtin_atan2f(a, b))                                   \
  MR_F1(atanh, __builtin_atanhf(a))                                      \
  MR_F1(ceil, __builtin_ceilf(a))                                        \
  MR_F2(copysign, __builtin_copysignf(a, b))                             \
  MR_F1(cos, __builtin_cosf(a))                                          \
  MR_F1(cosh, __builtin_coshf(a))                                        \
  MR_F1(cospi, __builtin_cosf(__mr::pi* a))                              \
  MR_F2(divide, a / b)                                                   \
  MR_F1(exp, __builtin_expf(a))                                          \
  MR_F1(exp2, __builtin_exp2f(a))                                        \
  MR_F1(exp10, __builtin_powf(10.0f, a))                                 \
  MR_F1(fabs, __builtin_fabsf(a))                                        \
  MR_F2(fdim, __builtin_fdimf(a, b))                                     \
  MR_F1(floor, __builtin_floorf(a))                                      \
  MR_F3(fma, __builtin_fmaf(a, b, c))                                    \
  MR_F2(fmax, __builtin_fmaxf(a, b))                                     \
  MR_F3(fmax3, __builtin_fmaxf(a, __builtin_fmaxf(b, c)))                \
  MR_F2(fmin, __builtin_fminf(a, b))                                     \
  MR_F3(fmin3, __builtin_fminf(a, __builtin_fminf(b, c)))                \
  MR_F2(fmod, __builtin_fmodf(a, b))                                     \
  MR_F1(fract, __builtin_fminf(a - __builtin_floorf(a), 0x1.fffffep-1f)) \
  MR_F1(log, __builtin_logf(a))                                          \
  MR_F1(log2, __builtin_log2f(a))                                        \
  MR_F1(log10, __builtin_log10f(a))                                      \
  MR_F2(nextafter, __builtin_nextafterf(a, b))                           \
  MR_F2(pow, __builtin_powf(a, b))                                       \
  MR_F2(powr, __builtin_powf(a, b))                                      \
  MR_F1(rint, __builtin_rintf(a))                                        \
  MR_F1(round, __builtin_roundf(a))                                      \
  MR_F1(rsqrt, 1.0f / __builtin_sqrtf(a))                                \
  MR_F1(sin, __builtin_sinf(a))                                          \
  MR_F1(sinh, __builtin_sinhf(a))                                        \
  MR_F1(sinpi, __builtin_sinf(__mr::pi* a))                              \
  MR_F1(sqrt, __builtin_sqrtf(a))                                        \
  MR_F1(tan, __builtin_tanf(a))                                          \
  MR_F1(tanh, __builtin_tanhf(a))                                        \
  MR_F1(tanpi, __builtin_tanf(__mr::pi* a))                              \
  MR_F1(trunc, __builtin_truncf(a))

namespace metal {
MR_MATH_BODIES
namespace fast {
MR_MATH_BODIES
} // namespace fast
namespace precise {
MR_MATH_BODIES
} // namespace precise

template <typename T>
__shim::genfloat_bool<T> isnan(T x) {
  static_assert(__mr::size_of<T> == 1, "vector isnan: not modelled");
  return __builtin_isnan(float(x));
}
template <typename T>
__shim::genfloat_bool<T> isinf(T x) {
  static_assert(__mr::size_of<T> == 1, "vector isinf: not modelled");
  return __builtin_isinf(float(x));
}
template <typename T>
__shim::genfloat_bool<T> isfinite(T x) {
  static_assert(__mr::size_of<T> == 1, "vector isfinite: not modelled");
  return __builtin_isfinite(float(x));
}

// max/min: fmax/fmin semantics for floats, as in MSL.
template <typename T>
__shim::gennumber<T> max(T x, T y) {
  if constexpr (is_floating_point_v<__shim::scalar_t<T>>)
    return __mr::map2(
        x, y, [](float a, float b) { return __builtin_fmaxf(a, b); });
  else
    return __mr::nmap2(x, y, [](auto a, auto b) { return a < b ? b : a; });
}
template <typename T>
__shim::gennumber<T> min(T x, T y) {
  if constexpr (is_floating_point_v<__shim::scalar_t<T>>)
    return __mr::map2(
        x, y, [](float a, float b) { return __builtin_fminf(a, b); });
  else
    return __mr::nmap2(x, y, [](auto a, auto b) { return b < a ? b : a; });
}
template <typename T>
__shim::gennumber<T> clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}
template <typename T>
__shim::gennumber<T> abs(T x) {
  if constexpr (is_floating_point_v<__shim::scalar_t<T>>)
    return __mr::map1(x, [](float a) { return __builtin_fabsf(a); });
  else
    return __mr::nmap2(x, x, [](auto a, auto) { return a < 0 ? -a : a; });
}
template <typename T>
__shim::genfloat<T> mix(T x, T y, T a) {
  return x + (y - x) * a;
}

///////////////////////////////////////////////////////////////////////////////
// SIMD-group and quad-group functions: each lane posts its value, waits for
// the active lanes of its block (the quad, the SIMD-group, or for xor
// shuffles the smallest aligned block that holds the partner), reads, and
// meets them again before the slots are reused.
///////////////////////////////////////////////////////////////////////////////

namespace __mr {

struct Ex {
  const unsigned char* slots;
  unsigned lane, active;
  int level;
  unsigned base() const {
    return lane & ~((1u << level) - 1);
  }
  unsigned count() const {
    return 1u << level;
  }
  bool on(unsigned l) const {
    return (active >> l) & 1u;
  }
  template <typename T>
  T at(unsigned l) const {
    return *(const T*)(slots + 16 * l);
  }
};

template <typename T>
METAL_FUNC Ex begin(T x, int level, int op) {
  static_assert(sizeof(T) <= 16, "SIMD value over 16 bytes");
  Ex e;
  e.level = level;
  e.slots = (const unsigned char*)__mr_exchange(
      &x, sizeof(T), level, op, &e.lane, &e.active);
  return e;
}
METAL_FUNC void end(const thread Ex& e) {
  __mr_exchange_end(e.level);
}

template <typename T, typename F>
METAL_FUNC T reduce(T x, int level, int op, F f) {
  Ex e = begin(x, level, op);
  T r = x;
  bool first = true;
  for (unsigned l = e.base(); l < e.base() + e.count(); l++) {
    if (!e.on(l))
      continue;
    T v = e.at<T>(l);
    r = first ? v : f(r, v);
    first = false;
  }
  end(e);
  return r;
}
template <typename T, typename F>
METAL_FUNC T prefix(T x, int level, int op, bool inclusive, T init, F f) {
  Ex e = begin(x, level, op);
  T r = init;
  for (unsigned l = e.base(); l < e.lane + (inclusive ? 1 : 0); l++) {
    if (e.on(l))
      r = f(r, e.at<T>(l));
  }
  end(e);
  return r;
}
template <typename T>
METAL_FUNC T from_lane(T x, int level, int op, unsigned src) {
  Ex e = begin(x, level, op);
  T r = (src < 32 && e.on(src)) ? e.at<T>(src) : x;
  end(e);
  return r;
}
inline int xor_level(unsigned mask) {
  int l = 0;
  while ((1u << l) <= mask && l < 5)
    l++;
  return l;
}

template <typename T>
METAL_FUNC T emax(T a, T b) {
  if constexpr (is_floating_point_v<__shim::scalar_t<T>>)
    return metal::max(a, b);
  else
    return __mr::nmap2(a, b, [](auto x, auto y) { return x < y ? y : x; });
}
template <typename T>
METAL_FUNC T emin(T a, T b) {
  if constexpr (is_floating_point_v<__shim::scalar_t<T>>)
    return metal::min(a, b);
  else
    return __mr::nmap2(a, b, [](auto x, auto y) { return y < x ? y : x; });
}

} // namespace __mr

#define MR_SIMD_REDUCE(name, op, expr)                                 \
  template <typename T>                                                \
  __shim::simd_type<T> simd_##name(T x) {                              \
    return __mr::reduce(x, 5, op, [](T a, T b) -> T { return expr; }); \
  }                                                                    \
  template <typename T>                                                \
  __shim::simd_type<T> quad_##name(T x) {                              \
    return __mr::reduce(x, 2, op, [](T a, T b) -> T { return expr; }); \
  }
MR_SIMD_REDUCE(sum, MR_SUM, a + b)
MR_SIMD_REDUCE(product, MR_PRODUCT, a* b)
MR_SIMD_REDUCE(max, MR_MAX, __mr::emax(a, b))
MR_SIMD_REDUCE(min, MR_MIN, __mr::emin(a, b))
MR_SIMD_REDUCE(and, MR_AND, a& b)
MR_SIMD_REDUCE(or, MR_OR, a | b)
MR_SIMD_REDUCE(xor, MR_XOR, a ^ b)
#undef MR_SIMD_REDUCE

#define MR_SIMD_PREFIX(name, op, incl, init, expr)                    \
  template <typename T>                                               \
  __shim::simd_type<T> simd_##name(T x) {                             \
    return __mr::prefix(                                              \
        x, 5, op, incl, T(init), [](T a, T b) -> T { return expr; }); \
  }                                                                   \
  template <typename T>                                               \
  __shim::simd_type<T> quad_##name(T x) {                             \
    return __mr::prefix(                                              \
        x, 2, op, incl, T(init), [](T a, T b) -> T { return expr; }); \
  }
MR_SIMD_PREFIX(prefix_exclusive_sum, MR_PREFIX_EXCL_SUM, false, 0, a + b)
MR_SIMD_PREFIX(prefix_inclusive_sum, MR_PREFIX_INCL_SUM, true, 0, a + b)
MR_SIMD_PREFIX(prefix_exclusive_product, MR_PREFIX_EXCL_PROD, false, 1, a* b)
MR_SIMD_PREFIX(prefix_inclusive_product, MR_PREFIX_INCL_PROD, true, 1, a* b)
#undef MR_SIMD_PREFIX

// Lane-to-lane functions. A lane outside the block or inactive reads its own
// value (MSL leaves it undefined).
template <typename T>
__shim::simd_type<T> simd_broadcast(T x, ushort l) {
  return __mr::from_lane(x, 5, MR_BROADCAST, l);
}
template <typename T>
__shim::simd_type<T> quad_broadcast(T x, ushort l) {
  __mr::Ex e = __mr::begin(x, 2, MR_BROADCAST);
  T r = e.on(e.base() + (l & 3)) ? e.at<T>(e.base() + (l & 3)) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> simd_broadcast_first(T x) {
  __mr::Ex e = __mr::begin(x, 5, MR_BROADCAST_FIRST);
  T r = x;
  for (unsigned l = 0; l < 32; l++)
    if (e.on(l)) {
      r = e.at<T>(l);
      break;
    }
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> simd_shuffle(T x, ushort l) {
  return __mr::from_lane(x, 5, MR_SHUFFLE, l);
}
template <typename T>
__shim::simd_type<T> simd_shuffle_xor(T x, ushort mask) {
  int level = __mr::xor_level(mask & 31);
  __mr::Ex e = __mr::begin(x, level, MR_SHUFFLE_XOR);
  unsigned src = e.lane ^ (mask & 31);
  T r = e.on(src) ? e.at<T>(src) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> quad_shuffle_xor(T x, ushort mask) {
  __mr::Ex e = __mr::begin(x, 2, MR_SHUFFLE_XOR);
  unsigned src = e.lane ^ (mask & 3);
  T r = e.on(src) ? e.at<T>(src) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> simd_shuffle_down(T x, ushort d) {
  __mr::Ex e = __mr::begin(x, 5, MR_SHUFFLE_DOWN);
  unsigned src = e.lane + d;
  T r = (src < 32 && e.on(src)) ? e.at<T>(src) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> simd_shuffle_up(T x, ushort d) {
  __mr::Ex e = __mr::begin(x, 5, MR_SHUFFLE_UP);
  T r = (e.lane >= d && e.on(e.lane - d)) ? e.at<T>(e.lane - d) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> quad_shuffle_down(T x, ushort d) {
  __mr::Ex e = __mr::begin(x, 2, MR_SHUFFLE_DOWN);
  unsigned src = e.lane + d;
  T r = (src < e.base() + 4 && e.on(src)) ? e.at<T>(src) : x;
  __mr::end(e);
  return r;
}
template <typename T>
__shim::simd_type<T> quad_shuffle_up(T x, ushort d) {
  __mr::Ex e = __mr::begin(x, 2, MR_SHUFFLE_UP);
  T r = (e.lane >= e.base() + d && e.on(e.lane - d)) ? e.at<T>(e.lane - d) : x;
  __mr::end(e);
  return r;
}

inline void threadgroup_barrier(mem_flags) {
  __mr_threadgroup_barrier();
}
inline void simdgroup_barrier(mem_flags) {
  __mr::Ex e = __mr::begin(0, 5, MR_SIMD_BARRIER);
  __mr::end(e);
}

///////////////////////////////////////////////////////////////////////////////
// SIMD-group matrices. Each lane holds two elements of an 8 x 8 matrix, where
// Apple's layout puts them (the one MLX's steel BaseMMAFrag::get_coord
// assumes): with q = lane / 4, row (q & 4) + (lane / 2) % 4, columns
// (q & 2) * 2 + (lane % 2) * 2 and the next. Code that reads or writes
// thread_elements() therefore sees what it would on a GPU. Loads and stores
// move a lane's own elements, at a rendezvous of the SIMD-group (they are
// collective in MSL); a multiply posts each lane's elements of A and B and
// computes the lane's elements of the product in float, in the order of k.
///////////////////////////////////////////////////////////////////////////////

namespace __mr {

struct MatCoord {
  int row, col; // the lane's first element; the second is at col + 1
};
inline MatCoord mat_coord(unsigned lane) {
  unsigned q = lane / 4;
  return {int((q & 4) + (lane / 2) % 4), int((q & 2) * 2 + (lane % 2) * 2)};
}
template <int Cols, int Rows>
constexpr void check_mat_shape() {
  static_assert(Cols == 8 && Rows == 8, "only 8 x 8 SIMD-group matrices");
}
// Element (row, col) of a row-major matrix at `origin` (column, row) in memory
// of `per_row` elements a row, read transposed if asked.
inline size_t
mat_offset(int row, int col, size_t per_row, ulong2 origin, bool transpose) {
  if (transpose) {
    int t = row;
    row = col;
    col = t;
  }
  return (origin.y + row) * per_row + origin.x + col;
}

} // namespace __mr

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows>::simdgroup_matrix(T diagonal) {
  __mr::check_mat_shape<Cols, Rows>();
  __mr::MatCoord c = __mr::mat_coord(__mr_lane());
  __elements[0] = c.row == c.col ? diagonal : T(0);
  __elements[1] = c.row == c.col + 1 ? diagonal : T(0);
}
template <typename T, int Cols, int Rows>
thread vec<T, 2>& simdgroup_matrix<T, Cols, Rows>::thread_elements() {
  return __elements;
}
template <typename T, int Cols, int Rows>
const thread vec<T, 2>& simdgroup_matrix<T, Cols, Rows>::thread_elements()
    const {
  return __elements;
}
template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  __mr::check_mat_shape<Cols, Rows>();
  simdgroup_matrix<T, Cols, Rows> m;
  m.__elements = vec<T, 2>(value);
  return m;
}

namespace __mr {
template <typename T, int Cols, int Rows, typename P>
METAL_FUNC void mat_load(
    thread simdgroup_matrix<T, Cols, Rows>& d,
    P src,
    size_t per_row,
    ulong2 origin,
    bool transpose) {
  check_mat_shape<Cols, Rows>();
  Ex e = begin(0, 5, MR_MATRIX_LOAD);
  MatCoord c = mat_coord(e.lane);
  for (int j = 0; j < 2; j++)
    d.__elements[j] =
        src[mat_offset(c.row, c.col + j, per_row, origin, transpose)];
  end(e);
}
template <typename T, int Cols, int Rows, typename P>
METAL_FUNC void mat_store(
    simdgroup_matrix<T, Cols, Rows> a,
    P dst,
    size_t per_row,
    ulong2 origin,
    bool transpose) {
  check_mat_shape<Cols, Rows>();
  Ex e = begin(0, 5, MR_MATRIX_STORE);
  MatCoord c = mat_coord(e.lane);
  for (int j = 0; j < 2; j++)
    dst[mat_offset(c.row, c.col + j, per_row, origin, transpose)] =
        a.__elements[j];
  end(e);
}
} // namespace __mr

template <typename T, int Cols, int Rows>
void simdgroup_load(
    thread simdgroup_matrix<T, Cols, Rows>& d,
    const device T* src,
    size_t elements_per_row,
    ulong2 matrix_origin,
    bool transpose_matrix) {
  __mr::mat_load(d, src, elements_per_row, matrix_origin, transpose_matrix);
}
template <typename T, int Cols, int Rows>
void simdgroup_load(
    thread simdgroup_matrix<T, Cols, Rows>& d,
    const threadgroup T* src,
    size_t elements_per_row,
    ulong2 matrix_origin,
    bool transpose_matrix) {
  __mr::mat_load(d, src, elements_per_row, matrix_origin, transpose_matrix);
}
template <typename T, int Cols, int Rows>
void simdgroup_store(
    simdgroup_matrix<T, Cols, Rows> a,
    device T* dst,
    size_t elements_per_row,
    ulong2 matrix_origin,
    bool transpose_matrix) {
  __mr::mat_store(a, dst, elements_per_row, matrix_origin, transpose_matrix);
}
template <typename T, int Cols, int Rows>
void simdgroup_store(
    simdgroup_matrix<T, Cols, Rows> a,
    threadgroup T* dst,
    size_t elements_per_row,
    ulong2 matrix_origin,
    bool transpose_matrix) {
  __mr::mat_store(a, dst, elements_per_row, matrix_origin, transpose_matrix);
}

template <
    typename TD,
    typename TA,
    typename TB,
    typename TC,
    int M,
    int N,
    int K>
void simdgroup_multiply_accumulate(
    thread simdgroup_matrix<TD, N, M>& d,
    const thread simdgroup_matrix<TA, K, M>& a,
    const thread simdgroup_matrix<TB, N, K>& b,
    const thread simdgroup_matrix<TC, N, M>& c) {
  __mr::check_mat_shape<N, M>();
  __mr::check_mat_shape<K, M>();
  // A lane that has exited holds zeros (MSL leaves its elements undefined).
  struct {
    float a[2], b[2];
  } mine = {
      {float(a.__elements[0]), float(a.__elements[1])},
      {float(b.__elements[0]), float(b.__elements[1])}};
  __mr::Ex e = __mr::begin(mine, 5, MR_MATRIX_MULTIPLY);
  float A[8][8] = {}, B[8][8] = {};
  for (unsigned l = 0; l < 32; l++) {
    if (!e.on(l))
      continue;
    const float* v = (const float*)(e.slots + 16 * l);
    __mr::MatCoord p = __mr::mat_coord(l);
    A[p.row][p.col] = v[0];
    A[p.row][p.col + 1] = v[1];
    B[p.row][p.col] = v[2];
    B[p.row][p.col + 1] = v[3];
  }
  __mr::MatCoord p = __mr::mat_coord(e.lane);
  float out[2];
  for (int j = 0; j < 2; j++) {
    float s = 0;
    for (int k = 0; k < 8; k++)
      s = __builtin_fmaf(A[p.row][k], B[k][p.col + j], s);
    out[j] = s + float(c.__elements[j]);
  }
  __mr::end(e);
  d.__elements[0] = TD(out[0]);
  d.__elements[1] = TD(out[1]);
}
template <typename TD, typename TA, typename TB, int M, int N, int K>
void simdgroup_multiply(
    thread simdgroup_matrix<TD, N, M>& d,
    const thread simdgroup_matrix<TA, K, M>& a,
    const thread simdgroup_matrix<TB, N, K>& b) {
  simdgroup_multiply_accumulate(
      d, a, b, make_filled_simdgroup_matrix<TD, N, M>(0));
}

namespace __shim {
// check_metal's rewrite of `threadgroup T x[n];`, with a number per
// declaration: one allocation per running threadgroup and declaration.
template <typename T, int ID>
threadgroup T& threadgroup_variable() {
  return *(threadgroup T*)__mr_threadgroup_alloc(ID, sizeof(T), alignof(T));
}
} // namespace __shim

} // namespace metal

// Binding of buffers to kernel parameters: converts to whichever pointer or
// constant reference the parameter is.
struct MrBuf {
  device void* p;
  constant void* c;
  template <typename T>
  operator device T*() const {
    return (device T*)p;
  }
  template <typename T>
  operator const constant T&() const {
    return *(const constant T*)c;
  }
};

// Thread-position attributes, converted to the parameter's declared type
// (uint, uint2, uint3 or their ushort forms).
struct MrPos {
  uint3 v;
  template <typename T>
  operator T() const {
    constexpr int n = metal::__mr::size_of<T>;
    using S = metal::__shim::scalar_t<T>;
    if constexpr (n == 1) {
      return T(v.x);
    } else if constexpr (n == 2) {
      T r;
      r.x = S(v.x);
      r.y = S(v.y);
      return r;
    } else {
      T r;
      r.x = S(v.x);
      r.y = S(v.y);
      r.z = S(v.z);
      return r;
    }
  }
};
