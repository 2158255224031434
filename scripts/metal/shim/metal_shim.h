// A model of the Metal Shading Language for clang -fsyntax-only, so that
// MLX's Metal kernels can be type-checked on machines without Apple's Metal
// compiler. scripts/metal/check_metal.py force-includes it before every
// kernel and compiles as C++ for OpenCL: C++17 with address spaces.
// scripts/metal/metal_run.py compiles the kernels the same way for x86-64
// and runs them, with bodies for what is declared here from
// scripts/metal/runtime/metal_exec.h.
//
// device, threadgroup and constant are OpenCL's __global, __local and
// __constant (clang's diagnostics say those names), disjoint as in MSL.
// thread is OpenCL's generic address space, the default of pointers,
// references and `this` (MSL's default is thread); automatic variables are
// OpenCL's __private. Generic is a superset of the others but constant, so
// device and threadgroup pointers convert to thread ones implicitly here,
// which MSL rejects. A disjoint thread would reject what MSL allows: copying
// structs to or from device and threadgroup memory, and binding members to
// thread references in member functions (OpenCL's `this` is generic).
//
// It declares what the kernels use, with MSL's signatures; nothing here runs,
// so most functions have no body. README.md ("Checking the Metal code") says
// what it cannot model; the comments below say where it approximates MSL.

#pragma once

// What the Metal compiler predefines. Metal 4 (Xcode 26) is the newest
// language, based on C++17 as C++ for OpenCL 2021 is. Of the checked kernels
// only logging.h asks: it takes metal::os_log from Metal 3.2 on (and bf16.h
// needs the builtin bfloat of Metal 3.1 or later).
#define __METAL__ 1
#define __METAL_VERSION__ 400
#define __METAL_MACOS__ 1

// Address spaces; MSL's constant data is const.
#define thread
#define device __global
#define threadgroup __local
#define constant const __constant

// OpenCL keywords that MSL code may use as names.
#define generic mtl_shim_generic
#define global mtl_shim_global
#define kernel mtl_shim_kernel
#define local mtl_shim_local
#define pipe mtl_shim_pipe
#define read_only mtl_shim_read_only
#define read_write mtl_shim_read_write
#define write_only mtl_shim_write_only

#define METAL_FUNC inline __attribute__((__always_inline__))

// The fast-math arguments of the __metal_* builtins (bf16_math.h).
#define __METAL_FAST_MATH__ true
#define __METAL_PRECISE_MATH__ false
#define __METAL_MAYBE_FAST_MATH__ false

///////////////////////////////////////////////////////////////////////////////
// Scalar types
///////////////////////////////////////////////////////////////////////////////

// half is OpenCL's; bfloat is a struct further down.
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
struct bfloat;
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;

typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;
typedef unsigned long size_t;
typedef long ptrdiff_t;
typedef long intptr_t;
typedef unsigned long uintptr_t;

///////////////////////////////////////////////////////////////////////////////
// Type traits (metal_type_traits)
///////////////////////////////////////////////////////////////////////////////

namespace metal {

template <typename T, T v>
struct integral_constant {
  static constexpr constant T value = v;
  using value_type = T;
  using type = integral_constant;
  constexpr operator value_type() const noexcept {
    return value;
  }
};
template <bool B>
using bool_constant = integral_constant<bool, B>;
using true_type = bool_constant<true>;
using false_type = bool_constant<false>;

template <bool B, typename T = void>
struct enable_if {};
template <typename T>
struct enable_if<true, T> {
  using type = T;
};
template <bool B, typename T = void>
using enable_if_t = typename enable_if<B, T>::type;

template <bool B, typename T, typename U>
struct conditional {
  using type = T;
};
template <typename T, typename U>
struct conditional<false, T, U> {
  using type = U;
};
template <bool B, typename T, typename U>
using conditional_t = typename conditional<B, T, U>::type;

template <typename T, typename U>
struct is_same : false_type {};
template <typename T>
struct is_same<T, T> : true_type {};
template <typename T, typename U>
constexpr constant bool is_same_v = is_same<T, U>::value;

template <typename T>
struct remove_const {
  using type = T;
};
template <typename T>
struct remove_const<const T> {
  using type = T;
};
template <typename T>
struct remove_volatile {
  using type = T;
};
template <typename T>
struct remove_volatile<volatile T> {
  using type = T;
};
template <typename T>
struct remove_cv {
  using type = typename remove_volatile<typename remove_const<T>::type>::type;
};
template <typename T>
using remove_const_t = typename remove_const<T>::type;
template <typename T>
using remove_volatile_t = typename remove_volatile<T>::type;
template <typename T>
using remove_cv_t = typename remove_cv<T>::type;

template <typename T>
struct remove_reference {
  using type = T;
};
template <typename T>
struct remove_reference<T&> {
  using type = T;
};
template <typename T>
struct remove_reference<T&&> {
  using type = T;
};
template <typename T>
using remove_reference_t = typename remove_reference<T>::type;

template <typename T>
struct remove_pointer {
  using type = T;
};
template <typename T>
struct remove_pointer<T*> {
  using type = T;
};
template <typename T>
struct remove_pointer<T* const> {
  using type = T;
};
template <typename T>
using remove_pointer_t = typename remove_pointer<T>::type;

template <typename T>
struct decay {
  using type = remove_cv_t<remove_reference_t<T>>;
};
template <typename T>
using decay_t = typename decay<T>::type;

template <typename T>
struct is_pointer : false_type {};
template <typename T>
struct is_pointer<T*> : true_type {};
template <typename T>
struct is_pointer<T* const> : true_type {};
template <typename T>
constexpr constant bool is_pointer_v = is_pointer<T>::value;

template <typename T>
struct __is_integral_impl : false_type {};
#define MTL_SHIM_INTEGRAL(T) \
  template <>                \
  struct __is_integral_impl<T> : true_type {};
MTL_SHIM_INTEGRAL(bool)
MTL_SHIM_INTEGRAL(char)
MTL_SHIM_INTEGRAL(signed char)
MTL_SHIM_INTEGRAL(unsigned char)
MTL_SHIM_INTEGRAL(short)
MTL_SHIM_INTEGRAL(unsigned short)
MTL_SHIM_INTEGRAL(int)
MTL_SHIM_INTEGRAL(unsigned int)
MTL_SHIM_INTEGRAL(long)
MTL_SHIM_INTEGRAL(unsigned long)
#undef MTL_SHIM_INTEGRAL
template <typename T>
struct is_integral : __is_integral_impl<remove_cv_t<T>> {};
template <typename T>
constexpr constant bool is_integral_v = is_integral<T>::value;

template <typename T>
struct __is_floating_impl : false_type {};
template <>
struct __is_floating_impl<half> : true_type {};
template <>
struct __is_floating_impl<float> : true_type {};
template <>
struct __is_floating_impl<::bfloat> : true_type {};
template <typename T>
struct is_floating_point : __is_floating_impl<remove_cv_t<T>> {};
template <typename T>
constexpr constant bool is_floating_point_v = is_floating_point<T>::value;

template <typename T>
struct is_arithmetic
    : bool_constant<is_integral_v<T> || is_floating_point_v<T>> {};
template <typename T>
constexpr constant bool is_arithmetic_v = is_arithmetic<T>::value;

template <typename T>
struct is_signed : bool_constant<is_floating_point_v<T> || T(-1) < T(0)> {};
template <typename T>
constexpr constant bool is_signed_v = is_signed<T>::value;
template <typename T>
struct is_unsigned : bool_constant<is_integral_v<T> && !(T(-1) < T(0))> {};
template <typename T>
constexpr constant bool is_unsigned_v = is_unsigned<T>::value;

template <typename From, typename To>
struct is_convertible : bool_constant<__is_convertible_to(From, To)> {};
template <typename From, typename To>
constexpr constant bool is_convertible_v = is_convertible<From, To>::value;

template <typename T>
T&& declval();

} // namespace metal

///////////////////////////////////////////////////////////////////////////////
// bfloat, MSL's builtin since Metal 3.1, is a struct here: clang 16's __bf16
// has no arithmetic, and a builtin stand-in would convert implicitly to half,
// which bfloat does not (bf16_math.h quotes the rule). As in MSL, bfloat
// converts implicitly to float only, bfloat op bfloat is a bfloat and bfloat
// op float or half computes in float. Laxer than MSL, the other arithmetic
// types convert implicitly to bfloat, as with the struct MLX used for Metal
// 3.0 (kernels/metal_3_0/bf16.h, removed in #2731), and bfloat op integer is
// a bfloat. There are no bfloat vectors.
///////////////////////////////////////////////////////////////////////////////

template <typename T>
constexpr constant bool __is_bfloat_peer = metal::is_arithmetic_v<T> &&
    !metal::is_same_v<metal::remove_cv_t<T>, bfloat>;

struct bfloat {
  uint16_t bits_;

  bfloat() = default;
  template <typename T, typename = metal::enable_if_t<__is_bfloat_peer<T>>>
  constexpr bfloat(T x) : bits_(from_float(static_cast<float>(x))) {}
  // A template, so that it is no copy constructor: bfloat stays trivial.
  template <
      typename U,
      typename = metal::enable_if_t<metal::is_same_v<U, bfloat>>>
  constexpr bfloat(const constant U& x) : bits_(x.bits_) {}

  constexpr operator float() const {
    return __builtin_bit_cast(float, uint32_t(bits_) << 16);
  }
  // float to bfloat rounds to nearest, ties to even, as Metal does; NaNs stay
  // NaNs (quieted), so that no rounding carries one into an infinity.
  static constexpr uint16_t from_float(float x) {
    uint32_t u = __builtin_bit_cast(uint32_t, x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      return uint16_t((u >> 16) | 0x40u);
    }
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  constexpr operator float() const __constant {
    return __builtin_bit_cast(float, uint32_t(bits_) << 16);
  }
  template <
      typename T,
      typename = metal::enable_if_t<
          __is_bfloat_peer<T> && !metal::is_same_v<T, float>>>
  constexpr explicit operator T() const {
    return T(float(*this));
  }
};

#define MTL_SHIM_BFLOAT_MIXED(op, otype, itype)    \
  constexpr otype operator op(bfloat a, itype b) { \
    return float(a) op float(b);                   \
  }                                                \
  constexpr otype operator op(itype a, bfloat b) { \
    return float(a) op float(b);                   \
  }
#define MTL_SHIM_BFLOAT_OP(op, op_assign)                                   \
  constexpr bfloat operator op(bfloat a, bfloat b) {                        \
    return float(a) op float(b);                                            \
  }                                                                         \
  MTL_SHIM_BFLOAT_MIXED(op, float, float)                                   \
  MTL_SHIM_BFLOAT_MIXED(op, float, half)                                    \
  MTL_SHIM_BFLOAT_MIXED(op, bfloat, int32_t)                                \
  MTL_SHIM_BFLOAT_MIXED(op, bfloat, uint32_t)                               \
  MTL_SHIM_BFLOAT_MIXED(op, bfloat, int64_t)                                \
  MTL_SHIM_BFLOAT_MIXED(op, bfloat, uint64_t)                               \
  template <typename T, typename = metal::enable_if_t<__is_bfloat_peer<T>>> \
  constexpr thread bfloat& operator op_assign(thread bfloat& a, T b) {      \
    return a = float(a) op float(b);                                        \
  }                                                                         \
  constexpr thread bfloat& operator op_assign(thread bfloat& a, bfloat b) { \
    return a = float(a) op float(b);                                        \
  }                                                                         \
  template <typename T, typename = metal::enable_if_t<__is_bfloat_peer<T>>> \
  constexpr thread T& operator op_assign(thread T& a, bfloat b) {           \
    return a = float(a) op float(b);                                        \
  }
#define MTL_SHIM_BFLOAT_COMPARE(op)                \
  constexpr bool operator op(bfloat a, bfloat b) { \
    return float(a) op float(b);                   \
  }                                                \
  MTL_SHIM_BFLOAT_MIXED(op, bool, float)           \
  MTL_SHIM_BFLOAT_MIXED(op, bool, half)            \
  MTL_SHIM_BFLOAT_MIXED(op, bool, int32_t)         \
  MTL_SHIM_BFLOAT_MIXED(op, bool, uint32_t)        \
  MTL_SHIM_BFLOAT_MIXED(op, bool, int64_t)         \
  MTL_SHIM_BFLOAT_MIXED(op, bool, uint64_t)
MTL_SHIM_BFLOAT_OP(+, +=)
MTL_SHIM_BFLOAT_OP(-, -=)
MTL_SHIM_BFLOAT_OP(*, *=)
MTL_SHIM_BFLOAT_OP(/, /=)
MTL_SHIM_BFLOAT_COMPARE(==)
MTL_SHIM_BFLOAT_COMPARE(!=)
MTL_SHIM_BFLOAT_COMPARE(<)
MTL_SHIM_BFLOAT_COMPARE(>)
MTL_SHIM_BFLOAT_COMPARE(<=)
MTL_SHIM_BFLOAT_COMPARE(>=)
#undef MTL_SHIM_BFLOAT_COMPARE
#undef MTL_SHIM_BFLOAT_OP
#undef MTL_SHIM_BFLOAT_MIXED

constexpr bfloat operator-(bfloat a) {
  return -float(a);
}

///////////////////////////////////////////////////////////////////////////////
// Vector types. MSL's constructors (float4(x), short2(a, b),
// float4(v.xy, z, w)) are not C++ for clang's vectors, so each type name is
// also a function-like macro that builds the vector: the name alone is the
// type, the name followed by ( is a construction.
///////////////////////////////////////////////////////////////////////////////

namespace metal {

template <typename T, int N>
using vec = T __attribute__((ext_vector_type(N)));

namespace __shim {

template <typename T>
struct vec_traits {
  static constexpr constant int size = 1;
};
template <typename T, int N>
struct vec_traits<vec<T, N>> {
  static constexpr constant int size = N;
};

template <typename T, int N, typename A>
inline void put(thread vec<T, N>& v, thread int& i, A a) {
  if constexpr (vec_traits<A>::size == 1) {
    v[i++] = static_cast<T>(a);
  } else {
    for (int j = 0; j < vec_traits<A>::size; j++) {
      v[i++] = static_cast<T>(a[j]);
    }
  }
}

template <typename T, int N>
inline vec<T, N> make_vec() {
  return vec<T, N>(T(0));
}

template <typename T, int N, typename A>
inline vec<T, N> make_vec(A a) {
  if constexpr (vec_traits<A>::size == 1) {
    return vec<T, N>(static_cast<T>(a));
  } else if constexpr (vec_traits<A>::size == N) {
    return __builtin_convertvector(a, vec<T, N>);
  } else {
    static_assert(
        vec_traits<A>::size == N,
        "a vector converts only to a vector of the same size");
    return vec<T, N>();
  }
}

template <typename T, int N, typename A, typename B, typename... C>
inline vec<T, N> make_vec(A a, B b, C... c) {
  static_assert(
      vec_traits<A>::size + vec_traits<B>::size +
              (0 + ... + vec_traits<C>::size) ==
          N,
      "the components do not add up to the size of the vector");
  vec<T, N> v;
  int i = 0;
  put(v, i, a);
  put(v, i, b);
  (put(v, i, c), ...);
  return v;
}

} // namespace __shim
} // namespace metal

// OpenCL allows threadgroup variables only in kernel functions, which cannot
// be templates; check_metal.py rewrites `threadgroup T x[n];` in MLX's
// kernels to `threadgroup T (&x)[n] = threadgroup_variable<T[n], ID>();`,
// with a number ID per declaration, so that the executor gives each
// declaration its own memory.
namespace metal {
namespace __shim {
template <typename T, int ID>
threadgroup T& threadgroup_variable();
} // namespace __shim
} // namespace metal

#define MTL_SHIM_VEC(T, name)       \
  typedef metal::vec<T, 2> name##2; \
  typedef metal::vec<T, 3> name##3; \
  typedef metal::vec<T, 4> name##4;
MTL_SHIM_VEC(char, char)
MTL_SHIM_VEC(uchar, uchar)
MTL_SHIM_VEC(short, short)
MTL_SHIM_VEC(ushort, ushort)
MTL_SHIM_VEC(int, int)
MTL_SHIM_VEC(uint, uint)
MTL_SHIM_VEC(long, long)
MTL_SHIM_VEC(ulong, ulong)
MTL_SHIM_VEC(half, half)
MTL_SHIM_VEC(float, float)
#undef MTL_SHIM_VEC

#define MTL_SHIM_MAKE(T, N, ...) ::metal::__shim::make_vec<T, N>(__VA_ARGS__)
#define char2(...) MTL_SHIM_MAKE(char, 2, __VA_ARGS__)
#define char3(...) MTL_SHIM_MAKE(char, 3, __VA_ARGS__)
#define char4(...) MTL_SHIM_MAKE(char, 4, __VA_ARGS__)
#define uchar2(...) MTL_SHIM_MAKE(uchar, 2, __VA_ARGS__)
#define uchar3(...) MTL_SHIM_MAKE(uchar, 3, __VA_ARGS__)
#define uchar4(...) MTL_SHIM_MAKE(uchar, 4, __VA_ARGS__)
#define short2(...) MTL_SHIM_MAKE(short, 2, __VA_ARGS__)
#define short3(...) MTL_SHIM_MAKE(short, 3, __VA_ARGS__)
#define short4(...) MTL_SHIM_MAKE(short, 4, __VA_ARGS__)
#define ushort2(...) MTL_SHIM_MAKE(ushort, 2, __VA_ARGS__)
#define ushort3(...) MTL_SHIM_MAKE(ushort, 3, __VA_ARGS__)
#define ushort4(...) MTL_SHIM_MAKE(ushort, 4, __VA_ARGS__)
#define int2(...) MTL_SHIM_MAKE(int, 2, __VA_ARGS__)
#define int3(...) MTL_SHIM_MAKE(int, 3, __VA_ARGS__)
#define int4(...) MTL_SHIM_MAKE(int, 4, __VA_ARGS__)
#define uint2(...) MTL_SHIM_MAKE(uint, 2, __VA_ARGS__)
#define uint3(...) MTL_SHIM_MAKE(uint, 3, __VA_ARGS__)
#define uint4(...) MTL_SHIM_MAKE(uint, 4, __VA_ARGS__)
#define long2(...) MTL_SHIM_MAKE(long, 2, __VA_ARGS__)
#define long3(...) MTL_SHIM_MAKE(long, 3, __VA_ARGS__)
#define long4(...) MTL_SHIM_MAKE(long, 4, __VA_ARGS__)
#define ulong2(...) MTL_SHIM_MAKE(ulong, 2, __VA_ARGS__)
#define ulong3(...) MTL_SHIM_MAKE(ulong, 3, __VA_ARGS__)
#define ulong4(...) MTL_SHIM_MAKE(ulong, 4, __VA_ARGS__)
#define half2(...) MTL_SHIM_MAKE(half, 2, __VA_ARGS__)
#define half3(...) MTL_SHIM_MAKE(half, 3, __VA_ARGS__)
#define half4(...) MTL_SHIM_MAKE(half, 4, __VA_ARGS__)
#define float2(...) MTL_SHIM_MAKE(float, 2, __VA_ARGS__)
#define float3(...) MTL_SHIM_MAKE(float, 3, __VA_ARGS__)
#define float4(...) MTL_SHIM_MAKE(float, 4, __VA_ARGS__)

///////////////////////////////////////////////////////////////////////////////
// numeric_limits (metal_limits)
///////////////////////////////////////////////////////////////////////////////

namespace metal {

template <typename T>
struct numeric_limits {
  static constexpr constant bool is_specialized = false;
};

template <typename T>
struct __int_limits {
  static constexpr constant bool is_specialized = true;
  static constexpr constant bool is_signed = T(-1) < T(0);
  static constexpr constant bool is_integer = true;
  static constexpr constant int digits = sizeof(T) * 8 - (T(-1) < T(0) ? 1 : 0);
  static constexpr T min() {
    return is_signed ? T(T(1) << digits) : T(0);
  }
  static constexpr T lowest() {
    return min();
  }
  static constexpr T max() {
    return T(~min());
  }
};
template <>
struct numeric_limits<bool> : __int_limits<bool> {};
template <>
struct numeric_limits<char> : __int_limits<char> {};
template <>
struct numeric_limits<signed char> : __int_limits<signed char> {};
template <>
struct numeric_limits<unsigned char> : __int_limits<unsigned char> {};
template <>
struct numeric_limits<short> : __int_limits<short> {};
template <>
struct numeric_limits<unsigned short> : __int_limits<unsigned short> {};
template <>
struct numeric_limits<int> : __int_limits<int> {};
template <>
struct numeric_limits<unsigned int> : __int_limits<unsigned int> {};
template <>
struct numeric_limits<long> : __int_limits<long> {};
template <>
struct numeric_limits<unsigned long> : __int_limits<unsigned long> {};

template <typename T>
struct __float_limits {
  static constexpr constant bool is_specialized = true;
  static constexpr constant bool is_signed = true;
  static constexpr constant bool is_integer = false;
  static constexpr constant bool has_infinity = true;
  static constexpr constant bool has_quiet_NaN = true;
  static constexpr T infinity() {
    return T(__builtin_huge_valf());
  }
  static constexpr T quiet_NaN() {
    return T(__builtin_nanf(""));
  }
  static constexpr T signaling_NaN() {
    return T(__builtin_nansf(""));
  }
};
template <>
struct numeric_limits<half> : __float_limits<half> {
  static constexpr constant int digits = 11;
  static constexpr half min() {
    return half(6.10351562e-05f);
  }
  static constexpr half lowest() {
    return half(-65504.0f);
  }
  static constexpr half max() {
    return half(65504.0f);
  }
  static constexpr half epsilon() {
    return half(9.765625e-04f);
  }
  static constexpr half denorm_min() {
    return half(5.96046448e-08f);
  }
};
template <>
struct numeric_limits<float> : __float_limits<float> {
  static constexpr constant int digits = __FLT_MANT_DIG__;
  static constexpr float min() {
    return __FLT_MIN__;
  }
  static constexpr float lowest() {
    return -__FLT_MAX__;
  }
  static constexpr float max() {
    return __FLT_MAX__;
  }
  static constexpr float epsilon() {
    return __FLT_EPSILON__;
  }
  static constexpr float denorm_min() {
    return __FLT_DENORM_MIN__;
  }
};
template <>
struct numeric_limits<bfloat> : __float_limits<bfloat> {
  static constexpr constant int digits = 8;
  static constexpr bfloat min() {
    return bfloat(1.17549435e-38f);
  }
  static constexpr bfloat lowest() {
    return bfloat(-3.38953139e38f);
  }
  static constexpr bfloat max() {
    return bfloat(3.38953139e38f);
  }
  static constexpr bfloat epsilon() {
    return bfloat(7.8125e-03f);
  }
  static constexpr bfloat denorm_min() {
    return bfloat(9.18354962e-41f);
  }
};

template <typename T>
struct numeric_limits<const T> : numeric_limits<T> {};

} // namespace metal

///////////////////////////////////////////////////////////////////////////////
// Reinterpretation (as_type) and the type classes of the library functions
///////////////////////////////////////////////////////////////////////////////

namespace metal {

template <typename T, typename U>
METAL_FUNC T as_type(U x) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of one size");
  return __builtin_bit_cast(T, x);
}

namespace __shim {

template <typename T>
struct scalar_of {
  using type = T;
};
template <typename T, int N>
struct scalar_of<vec<T, N>> {
  using type = T;
};
template <typename T>
using scalar_t = typename scalar_of<remove_cv_t<T>>::type;

// genfloat: half, float and their vectors (bfloat has its own overloads in
// bf16_math.h); geninteger: the integer types and their vectors, 64-bit ones
// included; simd: what the simdgroup functions take, 32 bits or less.
template <typename T>
constexpr constant bool is_genfloat =
    is_same_v<scalar_t<T>, half> || is_same_v<scalar_t<T>, float>;
template <typename T>
constexpr constant bool is_geninteger =
    is_integral_v<scalar_t<T>> && !is_same_v<scalar_t<T>, bool>;
template <typename T>
constexpr constant bool is_simd_type =
    (is_genfloat<T> || is_integral_v<scalar_t<T>>) && sizeof(scalar_t<T>) <= 4;

template <typename T>
using genfloat = enable_if_t<is_genfloat<T>, remove_cv_t<T>>;
template <typename T>
using gennumber =
    enable_if_t<is_genfloat<T> || is_geninteger<T>, remove_cv_t<T>>;
template <typename T>
using geninteger = enable_if_t<is_geninteger<T>, remove_cv_t<T>>;
template <typename T>
using simd_type = enable_if_t<is_simd_type<T>, remove_cv_t<T>>;

} // namespace __shim
} // namespace metal

// metal_math's constants that MLX's kernels use.
#define M_LOG2E_F 1.44269504088896340736f

///////////////////////////////////////////////////////////////////////////////
// Math (metal_math, metal_common, metal_integer): metal::, metal::fast:: and
// metal::precise:: have the same functions.
///////////////////////////////////////////////////////////////////////////////

#define MTL_SHIM_MATH_FUNCTIONS              \
  template <typename T>                      \
  __shim::genfloat<T> acos(T);               \
  template <typename T>                      \
  __shim::genfloat<T> acosh(T);              \
  template <typename T>                      \
  __shim::genfloat<T> asin(T);               \
  template <typename T>                      \
  __shim::genfloat<T> asinh(T);              \
  template <typename T>                      \
  __shim::genfloat<T> atan(T);               \
  template <typename T>                      \
  __shim::genfloat<T> atan2(T, T);           \
  template <typename T>                      \
  __shim::genfloat<T> atanh(T);              \
  template <typename T>                      \
  __shim::genfloat<T> ceil(T);               \
  template <typename T>                      \
  __shim::genfloat<T> copysign(T, T);        \
  template <typename T>                      \
  __shim::genfloat<T> cos(T);                \
  template <typename T>                      \
  __shim::genfloat<T> cosh(T);               \
  template <typename T>                      \
  __shim::genfloat<T> cospi(T);              \
  template <typename T>                      \
  __shim::genfloat<T> divide(T, T);          \
  template <typename T>                      \
  __shim::genfloat<T> exp(T);                \
  template <typename T>                      \
  __shim::genfloat<T> exp2(T);               \
  template <typename T>                      \
  __shim::genfloat<T> exp10(T);              \
  template <typename T>                      \
  __shim::genfloat<T> fabs(T);               \
  template <typename T>                      \
  __shim::genfloat<T> fdim(T, T);            \
  template <typename T>                      \
  __shim::genfloat<T> floor(T);              \
  template <typename T>                      \
  __shim::genfloat<T> fma(T, T, T);          \
  template <typename T>                      \
  __shim::genfloat<T> fmax(T, T);            \
  template <typename T>                      \
  __shim::genfloat<T> fmax3(T, T, T);        \
  template <typename T>                      \
  __shim::genfloat<T> fmin(T, T);            \
  template <typename T>                      \
  __shim::genfloat<T> fmin3(T, T, T);        \
  template <typename T>                      \
  __shim::genfloat<T> fmedian3(T, T, T);     \
  template <typename T>                      \
  __shim::genfloat<T> fmod(T, T);            \
  template <typename T>                      \
  __shim::genfloat<T> fract(T);              \
  template <typename T>                      \
  __shim::genfloat<T> frexp(T, thread int&); \
  template <typename T>                      \
  __shim::genfloat<T> ldexp(T, int);         \
  template <typename T>                      \
  __shim::genfloat<T> log(T);                \
  template <typename T>                      \
  __shim::genfloat<T> log2(T);               \
  template <typename T>                      \
  __shim::genfloat<T> log10(T);              \
  template <typename T>                      \
  __shim::genfloat<T> modf(T, thread T&);    \
  template <typename T>                      \
  __shim::genfloat<T> nextafter(T, T);       \
  template <typename T>                      \
  __shim::genfloat<T> pow(T, T);             \
  template <typename T>                      \
  __shim::genfloat<T> powr(T, T);            \
  template <typename T>                      \
  __shim::genfloat<T> rint(T);               \
  template <typename T>                      \
  __shim::genfloat<T> round(T);              \
  template <typename T>                      \
  __shim::genfloat<T> rsqrt(T);              \
  template <typename T>                      \
  __shim::genfloat<T> sin(T);                \
  template <typename T>                      \
  __shim::genfloat<T> sincos(T, thread T&);  \
  template <typename T>                      \
  __shim::genfloat<T> sinh(T);               \
  template <typename T>                      \
  __shim::genfloat<T> sinpi(T);              \
  template <typename T>                      \
  __shim::genfloat<T> sqrt(T);               \
  template <typename T>                      \
  __shim::genfloat<T> tan(T);                \
  template <typename T>                      \
  __shim::genfloat<T> tanh(T);               \
  template <typename T>                      \
  __shim::genfloat<T> tanpi(T);              \
  template <typename T>                      \
  __shim::genfloat<T> trunc(T);

namespace metal {

MTL_SHIM_MATH_FUNCTIONS

namespace fast {
MTL_SHIM_MATH_FUNCTIONS
} // namespace fast

namespace precise {
MTL_SHIM_MATH_FUNCTIONS
} // namespace precise

namespace __shim {
template <typename T>
struct bool_of {
  using type = bool;
};
template <typename T, int N>
struct bool_of<vec<T, N>> {
  using type = vec<int, N>; // OpenCL has no bool vectors
};
template <typename T>
using genfloat_bool = enable_if_t<is_genfloat<T>, typename bool_of<T>::type>;
} // namespace __shim

template <typename T>
__shim::genfloat_bool<T> isfinite(T);
template <typename T>
__shim::genfloat_bool<T> isinf(T);
template <typename T>
__shim::genfloat_bool<T> isnan(T);
template <typename T>
__shim::genfloat_bool<T> isnormal(T);
template <typename T>
__shim::genfloat_bool<T> signbit(T);

// Common and integer functions, for floats and integers alike.
template <typename T>
__shim::gennumber<T> abs(T);
template <typename T>
__shim::gennumber<T> max(T, T);
template <typename T>
__shim::gennumber<T> min(T, T);
template <typename T>
__shim::gennumber<T> max3(T, T, T);
template <typename T>
__shim::gennumber<T> min3(T, T, T);
template <typename T>
__shim::gennumber<T> median3(T, T, T);
template <typename T>
__shim::gennumber<T> clamp(T, T, T);
template <typename T>
__shim::genfloat<T> mix(T, T, T);
template <typename T>
__shim::genfloat<T> saturate(T);
template <typename T>
__shim::genfloat<T> sign(T);
template <typename T>
__shim::genfloat<T> step(T, T);
template <typename T>
__shim::genfloat<T> smoothstep(T, T, T);
template <typename T>
__shim::geninteger<T> absdiff(T, T);
template <typename T>
__shim::geninteger<T> clz(T);
template <typename T>
__shim::geninteger<T> ctz(T);
template <typename T>
__shim::geninteger<T> popcount(T);
template <typename T>
__shim::geninteger<T> mulhi(T, T);
template <typename T>
__shim::geninteger<T> rotate(T, T);
template <typename T>
__shim::geninteger<T> reverse_bits(T);
template <typename T>
__shim::geninteger<T> extract_bits(T, uint, uint);
template <typename T>
__shim::geninteger<T> insert_bits(T, T, uint, uint);
template <typename T>
remove_cv_t<T> select(T, T, bool);
template <typename T, int N>
vec<T, N> select(vec<T, N>, vec<T, N>, vec<int, N>);

} // namespace metal

// The compiler builtins that bf16_math.h calls for bfloat, with the types
// it passes: float, or uint16_t for the bits of a bfloat.
#define MTL_SHIM_BUILTIN(name) \
  template <typename... A>     \
  float __metal_##name(A...);
MTL_SHIM_BUILTIN(fabs)
MTL_SHIM_BUILTIN(acos)
MTL_SHIM_BUILTIN(acosh)
MTL_SHIM_BUILTIN(asin)
MTL_SHIM_BUILTIN(asinh)
MTL_SHIM_BUILTIN(atan)
MTL_SHIM_BUILTIN(atan2)
MTL_SHIM_BUILTIN(atanh)
MTL_SHIM_BUILTIN(ceil)
MTL_SHIM_BUILTIN(cos)
MTL_SHIM_BUILTIN(cosh)
MTL_SHIM_BUILTIN(cospi)
MTL_SHIM_BUILTIN(divide)
MTL_SHIM_BUILTIN(exp)
MTL_SHIM_BUILTIN(exp10)
MTL_SHIM_BUILTIN(exp2)
MTL_SHIM_BUILTIN(fdim)
MTL_SHIM_BUILTIN(floor)
MTL_SHIM_BUILTIN(fma)
MTL_SHIM_BUILTIN(fmax)
MTL_SHIM_BUILTIN(fmax3)
MTL_SHIM_BUILTIN(fmedian3)
MTL_SHIM_BUILTIN(fmin)
MTL_SHIM_BUILTIN(fmin3)
MTL_SHIM_BUILTIN(fmod)
MTL_SHIM_BUILTIN(fract)
MTL_SHIM_BUILTIN(frexp)
MTL_SHIM_BUILTIN(ldexp)
MTL_SHIM_BUILTIN(log)
MTL_SHIM_BUILTIN(log10)
MTL_SHIM_BUILTIN(log2)
MTL_SHIM_BUILTIN(nextafter)
MTL_SHIM_BUILTIN(pow)
MTL_SHIM_BUILTIN(powr)
MTL_SHIM_BUILTIN(rint)
MTL_SHIM_BUILTIN(round)
MTL_SHIM_BUILTIN(rsqrt)
MTL_SHIM_BUILTIN(sin)
MTL_SHIM_BUILTIN(sinh)
MTL_SHIM_BUILTIN(sinpi)
MTL_SHIM_BUILTIN(sqrt)
MTL_SHIM_BUILTIN(tan)
MTL_SHIM_BUILTIN(tanh)
MTL_SHIM_BUILTIN(tanpi)
MTL_SHIM_BUILTIN(trunc)
MTL_SHIM_BUILTIN(simd_max)
MTL_SHIM_BUILTIN(simd_min)
MTL_SHIM_BUILTIN(simd_prefix_exclusive_product)
MTL_SHIM_BUILTIN(simd_prefix_exclusive_sum)
MTL_SHIM_BUILTIN(simd_prefix_inclusive_product)
MTL_SHIM_BUILTIN(simd_prefix_inclusive_sum)
MTL_SHIM_BUILTIN(simd_product)
MTL_SHIM_BUILTIN(simd_sum)
MTL_SHIM_BUILTIN(simd_xor)
#undef MTL_SHIM_BUILTIN
#define MTL_SHIM_BUILTIN(name)         \
  template <typename T, typename... A> \
  T __metal_##name(T, A...);
MTL_SHIM_BUILTIN(simd_broadcast)
MTL_SHIM_BUILTIN(simd_shuffle)
MTL_SHIM_BUILTIN(simd_shuffle_and_fill_down)
MTL_SHIM_BUILTIN(simd_shuffle_and_fill_up)
MTL_SHIM_BUILTIN(simd_shuffle_down)
MTL_SHIM_BUILTIN(simd_shuffle_rotate_down)
MTL_SHIM_BUILTIN(simd_shuffle_rotate_up)
MTL_SHIM_BUILTIN(simd_shuffle_up)
MTL_SHIM_BUILTIN(simd_shuffle_xor)
#undef MTL_SHIM_BUILTIN
ushort __metal_get_simdgroup_size(ushort);

///////////////////////////////////////////////////////////////////////////////
// Synchronization and SIMD-group functions (metal_compute, metal_simdgroup)
///////////////////////////////////////////////////////////////////////////////

namespace metal {

enum class mem_flags {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) {
  return mem_flags(int(a) | int(b));
}

void threadgroup_barrier(mem_flags);
void simdgroup_barrier(mem_flags);

#define MTL_SHIM_SIMD(name)            \
  template <typename T>                \
  __shim::simd_type<T> simd_##name(T); \
  template <typename T>                \
  __shim::simd_type<T> quad_##name(T);
MTL_SHIM_SIMD(sum)
MTL_SHIM_SIMD(product)
MTL_SHIM_SIMD(max)
MTL_SHIM_SIMD(min)
MTL_SHIM_SIMD(and)
MTL_SHIM_SIMD(or)
MTL_SHIM_SIMD(xor)
MTL_SHIM_SIMD(prefix_exclusive_sum)
MTL_SHIM_SIMD(prefix_inclusive_sum)
MTL_SHIM_SIMD(prefix_exclusive_product)
MTL_SHIM_SIMD(prefix_inclusive_product)
MTL_SHIM_SIMD(broadcast_first)
#undef MTL_SHIM_SIMD
#define MTL_SHIM_SIMD(name, lane_t)            \
  template <typename T>                        \
  __shim::simd_type<T> simd_##name(T, lane_t); \
  template <typename T>                        \
  __shim::simd_type<T> quad_##name(T, lane_t);
MTL_SHIM_SIMD(broadcast, ushort)
MTL_SHIM_SIMD(shuffle, ushort)
MTL_SHIM_SIMD(shuffle_down, ushort)
MTL_SHIM_SIMD(shuffle_up, ushort)
MTL_SHIM_SIMD(shuffle_xor, ushort)
MTL_SHIM_SIMD(shuffle_rotate_down, ushort)
MTL_SHIM_SIMD(shuffle_rotate_up, ushort)
#undef MTL_SHIM_SIMD
template <typename T>
__shim::simd_type<T> simd_shuffle_and_fill_down(T, T, ushort);
template <typename T>
__shim::simd_type<T> simd_shuffle_and_fill_down(T, T, ushort, ushort);
template <typename T>
__shim::simd_type<T> simd_shuffle_and_fill_up(T, T, ushort);
template <typename T>
__shim::simd_type<T> simd_shuffle_and_fill_up(T, T, ushort, ushort);
bool simd_all(bool);
bool simd_any(bool);
bool simd_is_first();
bool quad_all(bool);
bool quad_any(bool);
bool quad_is_first();

} // namespace metal

///////////////////////////////////////////////////////////////////////////////
// Logging (metal_logging)
///////////////////////////////////////////////////////////////////////////////

namespace metal {

struct os_log {
  constexpr os_log(constant char*, constant char*) {}
  template <typename... Args>
  void log_debug(constant char*, Args...) const;
  template <typename... Args>
  void log_info(constant char*, Args...) const;
  template <typename... Args>
  void log_error(constant char*, Args...) const;
};

} // namespace metal

///////////////////////////////////////////////////////////////////////////////
// SIMD-group matrices (metal_simdgroup_matrix)
///////////////////////////////////////////////////////////////////////////////

namespace metal {

template <typename T, int Cols, int Rows>
struct simdgroup_matrix {
  simdgroup_matrix() = default;
  explicit simdgroup_matrix(T);
  thread vec<T, 2>& thread_elements();
  const thread vec<T, 2>& thread_elements() const;
  // This lane's two elements: the executor's storage (metal_exec.h), which
  // Metal keeps to itself.
  vec<T, 2> __elements;
};

typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T);

template <typename T, int Cols, int Rows>
void simdgroup_load(
    thread simdgroup_matrix<T, Cols, Rows>& d,
    const device T* src,
    size_t elements_per_row = Cols,
    ulong2 matrix_origin = 0,
    bool transpose_matrix = false);
template <typename T, int Cols, int Rows>
void simdgroup_load(
    thread simdgroup_matrix<T, Cols, Rows>& d,
    const threadgroup T* src,
    size_t elements_per_row = Cols,
    ulong2 matrix_origin = 0,
    bool transpose_matrix = false);
template <typename T, int Cols, int Rows>
void simdgroup_store(
    simdgroup_matrix<T, Cols, Rows> a,
    device T* dst,
    size_t elements_per_row = Cols,
    ulong2 matrix_origin = 0,
    bool transpose_matrix = false);
template <typename T, int Cols, int Rows>
void simdgroup_store(
    simdgroup_matrix<T, Cols, Rows> a,
    threadgroup T* dst,
    size_t elements_per_row = Cols,
    ulong2 matrix_origin = 0,
    bool transpose_matrix = false);

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
    const thread simdgroup_matrix<TC, N, M>& c);
template <typename TD, typename TA, typename TB, int M, int N, int K>
void simdgroup_multiply(
    thread simdgroup_matrix<TD, N, M>& d,
    const thread simdgroup_matrix<TA, K, M>& a,
    const thread simdgroup_matrix<TB, N, K>& b);

} // namespace metal
