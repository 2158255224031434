// Checks and times the series' CUDA quantized SDPA kernels
// (mlx/backend/cuda/quantized_sdpa.cuh) on their own, without building MLX:
// random packed keys and values, decoded on the host, against attention in
// double precision; then decode times at long contexts. The tiled kernel for
// many queries is checked the same way, in float16 and bfloat16, and so are
// the kernels of the path through cuDNN (decoding chunks of keys, folding
// the chunks' outputs), with cuDNN's attention done on the host. The
// tensor-core decoding kernel (turbo4, turbo3, turbo4 keys with turbo3
// values) is checked on the device like the others, and its operands on the
// host first (check_operands: which table entry each lane reads for each
// mma operand).
//
//   nvcc -std=c++20 -O3 -arch=sm_90a -I mlx check_quantized_sdpa.cu
//   ./a.out            (exits 1 if a check fails)
//   QSDPA_HOST_ONLY=1 ./a.out   (the host checks of the operands only: no
//                               GPU needed)
//   QSDPA_PROFILE=1 ./a.out   (one turbo4 case at 128K keys, for ncu;
//                             QSDPA_PROFILE=turbo3: turbo3 on tensor cores)
//   QSDPA_PREFILL=1 ./a.out   (the tiled kernel for many queries only)
//   QSDPA_CHECKS=1 ./a.out    (every check, no times: what
//                             scripts/cuda/cuda_run.py runs on the CPU;
//                             QSDPA_CHECKS=64,128: those head dimensions;
//                             QSDPA_CHECKS=smoke: a few cases)
//   (built with -DQSDPA_TIME_ONLY: only the tiled kernel's times, quick to
//   build; with QSDPA_DECODE=1, the decode times on tensor cores only)
//   The checker needs only quantized_sdpa.cuh, steel/defines.cuh and
//   turbo_codebooks.h of the MLX tree.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mlx/backend/common/turbo_codebooks.h"
#include "mlx/backend/cuda/quantized_sdpa.cuh"

#include <thread>

using namespace mlx::core;

// The codebooks, without the rest of MLX's headers.
template <int bits>
struct TurboCodebook;
template <>
struct TurboCodebook<3> {
  static constexpr float centroids[8] = {MLX_TURBO3_CENTROIDS};
};
template <>
struct TurboCodebook<4> {
  static constexpr float centroids[16] = {MLX_TURBO4_CENTROIDS};
};

#define CHECK(x)                                                      \
  do {                                                                \
    cudaError_t err = (x);                                            \
    if (err != cudaSuccess) {                                         \
      std::printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(err)); \
      std::exit(2);                                                   \
    }                                                                 \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(const std::vector<T>& host) : n(host.size()) {
    CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)));
    CHECK(cudaMemcpy(ptr, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  explicit DeviceBuffer(size_t n) : n(n) {
    CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)));
  }
  ~DeviceBuffer() {
    cudaFree(ptr);
  }
  std::vector<T> to_host() const {
    std::vector<T> out(n);
    CHECK(cudaMemcpy(out.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return out;
  }
};

// How many decode calls the timings issue back to back between two events
// (see time_fixed_cost; the time is per call).
int time_calls = 1;

// The median time of `reps` runs of f (time_calls of them back to back, the
// time per run), timed with CUDA events, after 100 ms of runs that bring the
// card to its clocks.
template <typename F>
float median_ms(int reps, F&& f) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  for (float warm = 0; warm < 100;) {
    f();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventElapsedTime(&warm, start, stop));
  }
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(start));
    for (int k = 0; k < time_calls; ++k) {
      f();
    }
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms / time_calls);
  }
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// One side's format: TurboQuant (bits 3 or 4) or affine.
struct Format {
  std::string name;
  bool turbo;
  int bits;
  int group_size; // affine only
};

// Packed random rows of one format, with their host decoding.
struct Side {
  Format f;
  std::vector<uint32_t> w;
  std::vector<__half> scales, biases;
  // The same scales and biases in bfloat16, if `bf16` (then `decoded` is
  // of those).
  std::vector<__nv_bfloat16> scales_bf, biases_bf;
  std::vector<float> decoded;
  int words_per_row, groups_per_row;

  Side(
      const Format& f,
      int64_t rows,
      int dim,
      std::mt19937& rng,
      bool decode,
      bool bf16 = false)
      : f(f) {
    words_per_row = dim * f.bits / 32;
    groups_per_row = f.turbo ? 1 : dim / f.group_size;
    w.resize(rows * words_per_row);
    for (auto& x : w) {
      x = rng();
    }
    std::uniform_real_distribution<float> u(0.5f, 1.5f), b(-0.5f, 0.5f);
    float unit = f.turbo ? 1.0f : 2.0f / ((1 << f.bits) - 1);
    for (int64_t i = 0; i < rows * groups_per_row; ++i) {
      float sc = unit * u(rng);
      float bi = -1.0f + 0.2f * b(rng);
      if (bf16) {
        scales_bf.push_back(__float2bfloat16(sc));
        biases_bf.push_back(__float2bfloat16(bi));
        sc = __bfloat162float(scales_bf.back());
        bi = __bfloat162float(biases_bf.back());
      }
      scales.push_back(__float2half(sc));
      biases.push_back(__float2half(bi));
    }
    if (!decode) {
      return;
    }
    decoded.resize(rows * dim);
    const float* lut = f.bits == 3 ? TurboCodebook<3>::centroids
                                   : TurboCodebook<4>::centroids;
    for (int64_t r = 0; r < rows; ++r) {
      for (int e = 0; e < dim; ++e) {
        int64_t bit = int64_t(e) * f.bits;
        const uint32_t* row = w.data() + r * words_per_row;
        uint64_t x = row[bit / 32];
        if (bit % 32 + f.bits > 32) {
          x |= uint64_t(row[bit / 32 + 1]) << 32;
        }
        uint32_t code = (x >> (bit % 32)) & ((1u << f.bits) - 1);
        float value;
        if (f.turbo) {
          value = __half2float(scales[r]) * lut[code];
        } else {
          int64_t g = r * groups_per_row + e / f.group_size;
          value = __half2float(scales[g]) * code + __half2float(biases[g]);
        }
        decoded[r * dim + e] = value;
      }
    }
  }
};

struct Problem {
  int batch, q_heads, kv_heads, q_len, k_len, dim;
  bool causal = false, bool_mask = false, float_mask = false, sinks = false;
  // Decoding checks only (the prefill checks have Prefill::empty_row): every
  // third query row sees no key (all masked out), and an additive mask is
  // -inf at some keys of the other rows too.
  bool empty_rows = false;
  // The keys and values are the first k_len rows of each head of a buffer
  // of `k_alloc` rows a head (a slice of a cache that grows in steps; 0:
  // k_len), and with `kv_broadcast` one batch entry of them serves every
  // batch entry (a batch stride of 0).
  int k_alloc = 0;
  bool kv_broadcast = false;

  int alloc() const {
    if (k_alloc && k_alloc < k_len) {
      std::fprintf(stderr, "k_alloc %d < k_len %d\n", k_alloc, k_len);
      std::abort();
    }
    return k_alloc ? k_alloc : k_len;
  }
  // The rows of the keys' (and values') buffer, and the first row of batch
  // entry b and KV head h.
  int64_t kv_rows() const {
    return int64_t(kv_broadcast ? 1 : batch) * kv_heads * alloc();
  }
  int64_t kv_row0(int b, int h) const {
    return ((kv_broadcast ? 0 : int64_t(b)) * kv_heads + h) * alloc();
  }
  cu::RowStrides kv_strides() const {
    return {kv_broadcast ? 0 : int64_t(kv_heads) * alloc(), alloc()};
  }
};

// The kernels' parameters for a problem, as eval_gpu fills them; masks are
// [batch, heads, q_len, k_len], row-contiguous.
cu::QuantizedSdpaParams
params_of(const Problem& p, int D, int blocks, int chunk_len) {
  cu::QuantizedSdpaParams params{};
  params.n_kv_heads = p.kv_heads;
  params.gqa = p.q_heads / p.kv_heads;
  params.q_len = p.q_len;
  params.k_len = p.k_len;
  params.blocks = blocks;
  params.chunk_len = chunk_len;
  params.scale_log2 = (1.0f / std::sqrt(float(D))) * 1.44269504089f;
  params.causal = p.causal;
  params.mask_strides[0] = int64_t(p.q_heads) * p.q_len * p.k_len;
  params.mask_strides[1] = int64_t(p.q_len) * p.k_len;
  params.mask_strides[2] = p.k_len;
  params.mask_strides[3] = 1;
  return params;
}

// The codebooks of whichever of the keys' and values' formats are TurboQuant.
cu::QuantizedSdpaCodebooks codebooks_of(const Format& kf, const Format& vf) {
  cu::QuantizedSdpaCodebooks books{};
  auto fill = [](const Format& f, float* lut) {
    if (f.turbo) {
      const float* c = f.bits == 3 ? TurboCodebook<3>::centroids
                                   : TurboCodebook<4>::centroids;
      std::copy(c, c + (1 << f.bits), lut);
    }
  };
  fill(kf, books.keys);
  fill(vf, books.values);
  return books;
}

// A check's errors: the outputs' relative RMS error (infinite where one of
// an output and its reference is NaN and the other not), and the largest
// absolute error of the rows' log-sum-exps in natural-log units (infinite
// where one is -inf and the other not).
//
// Tolerances, float16 then bfloat16. The tensor-core kernels take the
// scores from keys and queries rounded to the 16-bit type, which moves a
// row's log-sum-exp by up to 2.6e-3 in the float16 checks (against a
// reference from the same rounded operands the tiled kernel agrees to 1e-6).
// The log-sum-exp's tolerance is five times the output's.
constexpr double out_tolerance[2] = {2e-3, 1.5e-2};
constexpr double lse_tolerance[2] = {1e-2, 7.5e-2};
struct Errors {
  double out = 0, lse = 0;
  bool ok(bool bf16) const {
    return out < out_tolerance[bf16] && lse < lse_tolerance[bf16];
  }
};

double lse_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    bool inf = std::isinf(ref[i]) && ref[i] < 0;
    if (inf || (std::isinf(got[i]) && got[i] < 0)) {
      if (!(inf && std::isinf(got[i]) && got[i] < 0)) {
        return INFINITY;
      }
      continue;
    }
    double e = std::abs(double(got[i]) - ref[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

// The relative RMS error of `got` against `ref`; NaN where the reference is
// NaN must be NaN, else the error is infinite.
template <typename F>
double rms_error(const std::vector<F>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double o = double(got[i]);
    if (std::isnan(ref[i]) || std::isnan(o)) {
      if (std::isnan(ref[i]) != std::isnan(o)) {
        return INFINITY;
      }
      continue;
    }
    num += (o - ref[i]) * (o - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

// Runs pass 1 (on tensor cores if `mma`, for turbo4 only) and pass 2 for one
// pair of formats; returns the output on the host and, if `time_ms` is given,
// the median of `reps` timed runs.
template <int D, typename KR, typename VR>
std::vector<float> run(
    const Problem& p,
    KR keys,
    VR values,
    const std::vector<__half>& q_host,
    const std::vector<uint8_t>* bmask,
    const std::vector<__half>* fmask,
    const std::vector<__half>* sinks_host,
    const Format& kf,
    const Format& vf,
    bool mma,
    float* time_ms = nullptr,
    int reps = 0,
    std::vector<float>* lse_host = nullptr) {
  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  // As eval_gpu in quantized_sdpa.cu.
  auto plan = cu::quantized_sdpa_plan(
      mma && cu::has_mma_pass1<__half, D, KR, VR>, D, p.batch,
      p.kv_heads, p.q_heads / p.kv_heads * p.q_len, p.k_len, sms);
  auto& grid = plan.grid;
  int row_groups = plan.row_groups;
  int blocks = grid.blocks;
  int rows = p.batch * p.q_heads * p.q_len;

  DeviceBuffer<__half> q(q_host);
  DeviceBuffer<float> pout(size_t(rows) * blocks * D), pmax(rows * blocks),
      psum(rows * blocks);
  DeviceBuffer<__half> out(size_t(rows) * D);
  DeviceBuffer<float> lse{size_t(rows)};
  std::vector<uint8_t> no_mask;
  std::vector<__half> no_half;
  DeviceBuffer<uint8_t> bm(bmask ? *bmask : no_mask);
  DeviceBuffer<__half> fm(fmask ? *fmask : no_half);
  DeviceBuffer<__half> sk(sinks_host ? *sinks_host : no_half);

  auto params = params_of(p, D, blocks, grid.chunk_len);
  auto books = codebooks_of(kf, vf);

  // The row groups' counters, zero once: the kernel leaves them zero (MLX
  // zeroes fresh ones for each call, beside the work before it).
  DeviceBuffer<unsigned> counters(size_t(p.kv_heads) * row_groups * p.batch);
  CHECK(cudaMemset(counters.ptr, 0, counters.n * sizeof(unsigned)));

  auto pass1 = cu::quantized_sdpa_pass1_kernel<__half, D, KR, VR>(mma);
  auto launch = [&] {
    pass1<<<dim3(p.kv_heads * row_groups, p.batch, blocks),
            dim3(32, cu::qsdpa_warps)>>>(
        q.ptr,
        keys,
        values,
        bmask ? reinterpret_cast<const bool*>(bm.ptr) : nullptr,
        fmask ? fm.ptr : nullptr,
        pout.ptr,
        pmax.ptr,
        psum.ptr,
        params,
        books,
        cu::QuantizedSdpaOutputs<__half>{
            counters.ptr,
            sinks_host ? sk.ptr : nullptr,
            out.ptr,
            lse_host ? lse.ptr : nullptr,
            bmask != nullptr || p.causal});
  };
  launch();
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  if (time_ms) {
    *time_ms = median_ms(reps, launch);
  }
  if (lse_host) {
    *lse_host = lse.to_host();
  }
  auto host = out.to_host();
  std::vector<float> result(host.size());
  for (size_t i = 0; i < host.size(); ++i) {
    result[i] = __half2float(host[i]);
  }
  return result;
}

template <typename R>
R rows_of(const Side& s, const DeviceBuffer<uint32_t>& w,
          const DeviceBuffer<__half>& sc, const DeviceBuffer<__half>& bi,
          cu::RowStrides strides) {
  R r{};
  r.w = w.ptr;
  r.scales = sc.ptr;
  r.words_per_row = s.words_per_row;
  r.strides = strides;
  if constexpr (R::has_biases) {
    r.biases = bi.ptr;
    r.groups_per_row = s.groups_per_row;
  }
  return r;
}

// Attention in double over the decoded rows.
std::vector<double> reference(
    const Problem& p,
    const std::vector<__half>& q,
    const Side& k,
    const Side& v,
    const std::vector<uint8_t>* bmask,
    const std::vector<__half>* fmask,
    const std::vector<__half>* sinks,
    std::vector<double>& lse) {
  int D = p.dim, gqa = p.q_heads / p.kv_heads;
  double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> out(size_t(p.batch) * p.q_heads * p.q_len * D);
  lse.assign(size_t(p.batch) * p.q_heads * p.q_len, 0.0);
  std::vector<double> s(p.k_len);
  std::vector<char> seen(p.k_len);
  for (int b = 0; b < p.batch; ++b) {
    for (int h = 0; h < p.q_heads; ++h) {
      int64_t kv0 = p.kv_row0(b, h / gqa);
      for (int i = 0; i < p.q_len; ++i) {
        int64_t row = (int64_t(b) * p.q_heads + h) * p.q_len + i;
        double mx = sinks ? double(__half2float((*sinks)[h])) : -1e300;
        for (int j = 0; j < p.k_len; ++j) {
          double dot = 0;
          for (int e = 0; e < D; ++e) {
            dot += double(__half2float(q[row * D + e])) *
                k.decoded[(kv0 + j) * D + e];
          }
          s[j] = dot * scale;
          int64_t m = row * p.k_len + j;
          bool keep = !p.causal || j <= p.k_len - p.q_len + i;
          if (bmask) {
            keep = keep && (*bmask)[m];
          }
          if (fmask) {
            s[j] += double(__half2float((*fmask)[m]));
          }
          // A key a boolean or causal mask hides scores the lowest value: a
          // row that sees no key gives the mean of the values, as pass 2
          // does. (A row whose additive mask is -inf throughout gives NaN.)
          if (!keep) {
            s[j] = -1e300;
          }
          seen[j] = keep;
          mx = std::max(mx, s[j]);
        }
        double sum = sinks ? std::exp(double(__half2float((*sinks)[h])) - mx)
                           : 0.0;
        double seen_sum = sum;
        for (int j = 0; j < p.k_len; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
          seen_sum += seen[j] ? s[j] : 0.0;
        }
        lse[row] = seen_sum > 0 ? mx + std::log(seen_sum) : -INFINITY;
        for (int e = 0; e < D; ++e) {
          double acc = 0;
          for (int j = 0; j < p.k_len; ++j) {
            acc += s[j] * v.decoded[(kv0 + j) * D + e];
          }
          out[row * D + e] = acc / sum;
        }
      }
    }
  }
  return out;
}

template <int D, typename KR, typename VR>
Errors check_case(
    const Problem& p,
    const Format& kf,
    const Format& vf,
    std::mt19937& rng,
    bool mma = false,
    float* time_ms = nullptr,
    int reps = 0,
    double* gbytes = nullptr) {
  int64_t kv_rows = p.kv_rows();
  Side k(kf, kv_rows, D, rng, !gbytes), v(vf, kv_rows, D, rng, !gbytes);
  std::normal_distribution<float> n(0, 1);
  std::vector<__half> q(size_t(p.batch) * p.q_heads * p.q_len * D);
  for (auto& x : q) {
    x = __float2half(n(rng));
  }
  size_t mask_size = size_t(p.batch) * p.q_heads * p.q_len * p.k_len;
  std::vector<uint8_t> bmask;
  std::vector<__half> fmask, sinks;
  auto empty = [&](size_t i) {
    return p.empty_rows && (i / p.k_len) % 3 == 1;
  };
  if (p.bool_mask) {
    std::bernoulli_distribution keep(0.7);
    for (size_t i = 0; i < mask_size; ++i) {
      bmask.push_back(!empty(i) && (keep(rng) || i % p.k_len == 0));
    }
  }
  if (p.float_mask) {
    for (size_t i = 0; i < mask_size; ++i) {
      bool inf = empty(i) || (p.empty_rows && i % 7 == 3);
      fmask.push_back(__float2half(inf ? -INFINITY : n(rng)));
    }
  }
  if (p.sinks) {
    for (int h = 0; h < p.q_heads; ++h) {
      sinks.push_back(__float2half(n(rng)));
    }
  }
  DeviceBuffer<uint32_t> kw(k.w), vw(v.w);
  DeviceBuffer<__half> ks(k.scales), kb(k.biases), vs(v.scales), vb(v.biases);
  std::vector<float> lse;
  auto out = run<D>(
      p,
      rows_of<KR>(k, kw, ks, kb, p.kv_strides()),
      rows_of<VR>(v, vw, vs, vb, p.kv_strides()),
      q,
      p.bool_mask ? &bmask : nullptr,
      p.float_mask ? &fmask : nullptr,
      p.sinks ? &sinks : nullptr,
      kf,
      vf,
      mma,
      time_ms,
      reps,
      gbytes ? nullptr : &lse);
  if (gbytes) {
    size_t bytes = (k.w.size() + v.w.size()) * 4 +
        (k.scales.size() + v.scales.size()) * 2 +
        (kf.turbo ? 0 : k.biases.size() * 2) +
        (vf.turbo ? 0 : v.biases.size() * 2);
    *gbytes = bytes / 1e9;
    return {};
  }
  std::vector<double> ref_lse;
  auto ref = reference(
      p,
      q,
      k,
      v,
      p.bool_mask ? &bmask : nullptr,
      p.float_mask ? &fmask : nullptr,
      p.sinks ? &sinks : nullptr,
      ref_lse);
  return {rms_error(out, ref), lse_error(lse, ref_lse)};
}

using T = __half;
const Format turbo3{"turbo3", true, 3, 0}, turbo4{"turbo4", true, 4, 0},
    affine4{"affine4 g64", false, 4, 64}, affine6{"affine6 g32", false, 6, 32},
    affine8{"affine8 g32", false, 8, 32}, affine8_64{"affine8 g64", false, 8, 64},
    affine4_32{"affine4 g32", false, 4, 32};

template <int D>
int check_all(std::mt19937& rng) {
  int failures = 0;
  auto report = [&](const char* what, const Format& kf, const Format& vf,
                    const Problem& p, Errors err) {
    bool ok = err.ok(false);
    failures += !ok;
    std::printf(
        "%-4s D=%d %-11s/%-11s B=%d Hq=%d Hkv=%d Lq=%d Lk=%d %-10s rel err "
        "%.2e lse err %.2e\n",
        ok ? "ok" : "FAIL", D, kf.name.c_str(), vf.name.c_str(), p.batch,
        p.q_heads, p.kv_heads, p.q_len, p.k_len, what, err.out, err.lse);
  };
  for (int q_len : {1, 4, 8}) {
    Problem p{2, 8, 2, q_len, 1000, D};
    using R3 = cu::TurboRows<T, 3>;
    using R4 = cu::TurboRows<T, 4>;
    using A4 = cu::AffineRows<T, 4, 64>;
    using A6 = cu::AffineRows<T, 6, 32>;
    using A8 = cu::AffineRows<T, 8, 32>;
    using A8b = cu::AffineRows<T, 8, 64>;
    report("plain", turbo3, turbo3, p, check_case<D, R3, R3>(p, turbo3, turbo3, rng));
    report("plain", turbo4, turbo4, p, check_case<D, R4, R4>(p, turbo4, turbo4, rng));
    report("mma", turbo4, turbo4, p, check_case<D, R4, R4>(p, turbo4, turbo4, rng, true));
    report("plain", affine4, affine4, p, check_case<D, A4, A4>(p, affine4, affine4, rng));
    report("plain", affine6, affine6, p, check_case<D, A6, A6>(p, affine6, affine6, rng));
    report("plain", affine8, affine8, p, check_case<D, A8, A8>(p, affine8, affine8, rng));
    report("plain", affine8_64, turbo4, p, check_case<D, A8b, R4>(p, affine8_64, turbo4, rng));
    report("plain", affine8, turbo3, p, check_case<D, A8, R3>(p, affine8, turbo3, rng));
    report("plain", turbo4, turbo3, p, check_case<D, R4, R3>(p, turbo4, turbo3, rng));
    Problem c = p;
    c.causal = true;
    report("causal", turbo4, turbo4, c, check_case<D, R4, R4>(c, turbo4, turbo4, rng));
    report("mma caus", turbo4, turbo4, c, check_case<D, R4, R4>(c, turbo4, turbo4, rng, true));
    Problem m = p;
    m.bool_mask = true;
    report("boolmask", turbo3, turbo3, m, check_case<D, R3, R3>(m, turbo3, turbo3, rng));
    report("mma bool", turbo4, turbo4, m, check_case<D, R4, R4>(m, turbo4, turbo4, rng, true));
    Problem a = p;
    a.float_mask = true;
    a.sinks = true;
    report("add+sink", affine8, turbo4, a, check_case<D, A8, R4>(a, affine8, turbo4, rng));
    report("mma add", turbo4, turbo4, a, check_case<D, R4, R4>(a, turbo4, turbo4, rng, true));
    // Three query heads per KV head, and fewer keys than a chunk.
    Problem g{1, 6, 2, q_len, 37, D};
    g.causal = true;
    report("gqa3", turbo4, turbo4, g, check_case<D, R4, R4>(g, turbo4, turbo4, rng));
    report("mma gqa3", turbo4, turbo4, g, check_case<D, R4, R4>(g, turbo4, turbo4, rng, true));
    // Rows past a block's 8, and a key length off the 16-key tiles.
    Problem h{1, 24, 2, q_len, 1003, D};
    report("mma gqa12", turbo4, turbo4, h, check_case<D, R4, R4>(h, turbo4, turbo4, rng, true));
    report("gqa3", affine6, affine6, g, check_case<D, A6, A6>(g, affine6, affine6, rng));

    // The tensor-core kernel for turbo3 keys and values, for turbo4 keys
    // with turbo3 values, for affine 4- and 8-bit keys and values, and for
    // 8-bit keys with TurboQuant values: every case above, then rows that
    // see no key, GQA 1, 8 sequences and a long cache split over many chunks.
    using A4b = cu::AffineRows<T, 4, 32>;
    auto mma_pairs = [&](const char* what, const Problem& x) {
      report(what, turbo3, turbo3, x, check_case<D, R3, R3>(x, turbo3, turbo3, rng, true));
      report(what, turbo4, turbo3, x, check_case<D, R4, R3>(x, turbo4, turbo3, rng, true));
      report(what, affine4, affine4, x, check_case<D, A4, A4>(x, affine4, affine4, rng, true));
      report(what, affine4_32, affine4_32, x, check_case<D, A4b, A4b>(x, affine4_32, affine4_32, rng, true));
      report(what, affine8, affine8, x, check_case<D, A8, A8>(x, affine8, affine8, rng, true));
      report(what, affine8_64, affine8_64, x, check_case<D, A8b, A8b>(x, affine8_64, affine8_64, rng, true));
      report(what, affine8_64, turbo4, x, check_case<D, A8b, R4>(x, affine8_64, turbo4, rng, true));
      report(what, affine8, turbo3, x, check_case<D, A8, R3>(x, affine8, turbo3, rng, true));
    };
    mma_pairs("mma", p);
    mma_pairs("mma caus", c);
    mma_pairs("mma bool", m);
    mma_pairs("mma add", a);
    mma_pairs("mma gqa3", g);
    mma_pairs("mma gqa12", h);
    // Every third row sees no key: the mean of the values with a boolean
    // mask, NaN with an additive one (zero with a sink); the additive mask is
    // -inf at some keys of the other rows.
    Problem e = m;
    e.empty_rows = true;
    mma_pairs("mma empty", e);
    report("mma empty", turbo4, turbo4, e, check_case<D, R4, R4>(e, turbo4, turbo4, rng, true));
    report("empty", turbo3, turbo3, e, check_case<D, R3, R3>(e, turbo3, turbo3, rng));
    Problem f = p;
    f.float_mask = true;
    f.empty_rows = true;
    mma_pairs("mma -inf", f);
    report("mma -inf", turbo4, turbo4, f, check_case<D, R4, R4>(f, turbo4, turbo4, rng, true));
    report("-inf", turbo4, turbo3, f, check_case<D, R4, R3>(f, turbo4, turbo3, rng));
    f.sinks = true;
    mma_pairs("mma -inf+sk", f);
    Problem g1{2, 4, 4, q_len, 300, D};
    mma_pairs("mma gqa1", g1);
    Problem b8{8, 8, 2, q_len, 517, D};
    b8.causal = true;
    mma_pairs("mma B=8", b8);
    Problem lg{1, 8, 1, q_len, 20011, D};
    lg.bool_mask = true;
    mma_pairs("mma long", lg);
    report("mma long", turbo4, turbo4, lg, check_case<D, R4, R4>(lg, turbo4, turbo4, rng, true));
    // Slices of a cache that grows in steps (heads 29 rows apart), with
    // rows that see no key (the mean of the values, in pass 2), and one
    // batch entry of keys and values for all (a batch stride of 0).
    Problem sl = e;
    sl.k_alloc = sl.k_len + 29;
    mma_pairs("mma sliced", sl);
    report("sliced", turbo4, turbo3, sl, check_case<D, R4, R3>(sl, turbo4, turbo3, rng));
    report("sliced", affine4, affine4, sl, check_case<D, A4, A4>(sl, affine4, affine4, rng));
    Problem bc{3, 8, 2, q_len, 200, D};
    bc.kv_broadcast = true;
    bc.k_alloc = 256;
    mma_pairs("mma bcast", bc);
    report("bcast", turbo3, turbo3, bc, check_case<D, R3, R3>(bc, turbo3, turbo3, rng));
  }
  return failures;
}

// ---------------------------------------------------------------------------
// The operands of the tensor-core decoding kernel, on the host: for every
// lane, the table entry that cu::TurboOperands picks for each mma operand,
// from the words the kernel loads (its part of keys g and g + 8 and of values
// 2t, 2t + 1, 2t + 8 and 2t + 9 of a tile of 16 random rows), against the
// codes that the fragment layout of mma.m16n8k16 puts there (PTX ISA: a[0]
// holds row g, columns 2t and 2t + 1 of A; a[1] row g + 8; a[2] columns
// 2t + 8 and 2t + 9; a[3] both). The kernel's table holds at entry e the half2
// of the centroids of codes e & (2^bits - 1) (low half) and e >> bits (high).
// Scores: A is the 16 keys by 16 dimensions of k-step s, the dimensions of
// column 2t + c (c < 2) being t D / 4 + 4 s + c and of column 2t + 8 + c
// t D / 4 + 4 s + 2 + c, as the queries' B operand has them. Outputs: A is
// m-tile i of V^T, row g being dimension g D / 8 + 2 i and row g + 8 the next,
// column j value j.
template <int bits, int D>
int check_operands(std::mt19937& rng) {
  using Ops = cu::TurboOperands<bits, D>;
  using KeyPart = typename Ops::KeyPart;
  using ValuePart = typename Ops::ValuePart;
  constexpr int row_words = Ops::row_words;
  static_assert(row_words == D * bits / 32, "row size");
  int failures = 0;
  auto fail = [&](const char* what, int lane, int step, int e, int expected,
                  long long got) {
    if (failures++ < 10) {
      std::printf(
          "FAIL operands turbo%d D=%d %s lane %d step %d a[%d]: entry %lld, "
          "expected %d\n",
          bits, D, what, lane, step, e, got, expected);
    }
  };
  auto code = [](const uint32_t* row, int d) {
    int64_t bit = int64_t(d) * bits;
    uint64_t x = row[bit / 32];
    if (bit % 32 + bits > 32) {
      x |= uint64_t(row[bit / 32 + 1]) << 32;
    }
    return int((x >> (bit % 32)) & ((1u << bits) - 1));
  };
  // The entry at a byte offset into the table, -1 if none starts there.
  auto entry_of = [](uint32_t offset) -> long long {
    bool ok = offset % 128 == 0 && offset / 128 < uint32_t(Ops::entries);
    return ok ? static_cast<long long>(offset / 128) : -1LL;
  };
  auto part_ok = [](int word, int words, int align) {
    return word >= 0 && word + words <= row_words && word % align == 0 &&
        row_words % align == 0;
  };
  std::vector<uint32_t> k(16 * row_words), v(16 * row_words);
  for (int trial = 0; trial < 200; ++trial) {
    for (auto& x : k) {
      x = rng();
    }
    for (auto& x : v) {
      x = rng();
    }
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4;
      const int t = lane % 4;
      const KeyPart key_part(t);
      const ValuePart value_part(g);
      if (!part_ok(key_part.word, KeyPart::words, KeyPart::align)) {
        fail("key part", lane, key_part.word, 0, 0, 0);
      }
      if (!part_ok(value_part.word, ValuePart::words, ValuePart::align)) {
        fail("value part", lane, value_part.word, 0, 0, 0);
      }
      uint32_t kw[2][KeyPart::words];
      uint32_t vw[4][ValuePart::words];
      for (int n = 0; n < 2; ++n) {
        for (int w = 0; w < KeyPart::words; ++w) {
          kw[n][w] = k[(g + 8 * n) * row_words + key_part.word + w];
        }
      }
      for (int i = 0; i < 4; ++i) {
        int key = 2 * t + (i & 1) + 8 * (i >> 1);
        for (int w = 0; w < ValuePart::words; ++w) {
          vw[i][w] = v[key * row_words + value_part.word + w];
        }
      }
      for (int s = 0; s < D / 16; ++s) {
        uint32_t a[4];
        Ops::key_entries(key_part, kw, s, a);
        for (int e = 0; e < 4; ++e) {
          const uint32_t* row = &k[(g + 8 * (e % 2)) * row_words];
          int d = t * (D / 4) + 4 * s + 2 * (e / 2);
          int expected = code(row, d) | code(row, d + 1) << bits;
          if (entry_of(a[e]) != expected) {
            fail("keys", lane, s, e, expected, entry_of(a[e]));
          }
        }
      }
      const auto pairs = Ops::pair_values(value_part, vw);
      for (int i = 0; i < D / 16; ++i) {
        uint32_t a[4];
        Ops::value_entries(pairs, i, a);
        for (int e = 0; e < 4; ++e) {
          int key = 2 * t + 8 * (e / 2);
          int d = g * (D / 8) + 2 * i + e % 2;
          int expected = code(&v[key * row_words], d) |
              code(&v[(key + 1) * row_words], d) << bits;
          if (entry_of(a[e]) != expected) {
            fail("values", lane, i, e, expected, entry_of(a[e]));
          }
        }
      }
    }
  }
  std::printf(
      "%-4s operands turbo%d D=%d (key part %d words, value part %d words)\n",
      failures ? "FAIL" : "ok", bits, D, KeyPart::words, ValuePart::words);
  return failures != 0;
}

int check_all_operands(std::mt19937& rng) {
  return check_operands<3, 64>(rng) + check_operands<3, 128>(rng) +
      check_operands<3, 256>(rng) + check_operands<4, 64>(rng) +
      check_operands<4, 128>(rng) + check_operands<4, 256>(rng);
}

// ---------------------------------------------------------------------------
// The tiled kernel for many queries (quantized_sdpa_tiled_pass1 and pass 2),
// in float16 and bfloat16.

template <typename T>
T to_type(float x) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half(x);
  } else {
    return __float2bfloat16(x);
  }
}

template <typename T>
float from_type(T x) {
  if constexpr (std::is_same_v<T, __half>) {
    return __half2float(x);
  } else {
    return __bfloat162float(x);
  }
}

// A device buffer of T on the host, in float.
template <typename T>
std::vector<float> floats_of(const DeviceBuffer<T>& buffer) {
  auto host = buffer.to_host();
  std::vector<float> out(host.size());
  for (size_t i = 0; i < host.size(); ++i) {
    out[i] = from_type<T>(host[i]);
  }
  return out;
}

// What the prefill checks add to a problem: a boolean mask whose query 0
// sees no key, an additive mask whose query 0 is -inf throughout (NaN out).
struct Prefill {
  Problem p;
  bool empty_row = false;
};

// Attention in double over the decoded rows, with the fallback's semantics:
// a key a boolean mask hides scores the lowest finite value (a row that sees
// no key gives the mean of the values), an additive mask is added (a row of
// -inf gives NaN, as does the fallback's softmax).
std::vector<double> reference_prefill(
    const Problem& p,
    const std::vector<float>& q,
    const Side& k,
    const Side& v,
    const std::vector<uint8_t>* bmask,
    const std::vector<float>* fmask,
    const std::vector<float>* sinks,
    std::vector<double>& lse) {
  int D = p.dim, gqa = p.q_heads / p.kv_heads;
  double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> out(size_t(p.batch) * p.q_heads * p.q_len * D);
  lse.assign(size_t(p.batch) * p.q_heads * p.q_len, 0.0);
  auto head = [&](int b, int h) {
    std::vector<double> s(p.k_len);
    std::vector<char> seen(p.k_len);
    int64_t kv0 = p.kv_row0(b, h / gqa);
    for (int i = 0; i < p.q_len; ++i) {
      int64_t row = (int64_t(b) * p.q_heads + h) * p.q_len + i;
      double mx = sinks ? double((*sinks)[h]) : -INFINITY;
      for (int j = 0; j < p.k_len; ++j) {
        double dot = 0;
        for (int e = 0; e < D; ++e) {
          dot += double(q[row * D + e]) * k.decoded[(kv0 + j) * D + e];
        }
        s[j] = dot * scale;
        int64_t m = row * p.k_len + j;
        bool keep = !p.causal || j <= p.k_len - p.q_len + i;
        if (bmask) {
          keep = keep && (*bmask)[m];
        }
        if (fmask) {
          s[j] += double((*fmask)[m]);
        }
        if (!keep) {
          s[j] = -1e300;
        }
        seen[j] = keep;
        mx = std::max(mx, s[j]);
      }
      double sum = sinks ? std::exp(double((*sinks)[h]) - mx) : 0.0;
      double seen_sum = sum;
      for (int j = 0; j < p.k_len; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
        seen_sum += seen[j] ? s[j] : 0.0;
      }
      lse[row] = seen_sum > 0 ? mx + std::log(seen_sum) : -INFINITY;
      for (int e = 0; e < D; ++e) {
        double acc = 0;
        for (int j = 0; j < p.k_len; ++j) {
          acc += s[j] * v.decoded[(kv0 + j) * D + e];
        }
        out[row * D + e] = acc / sum;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int b = 0; b < p.batch; ++b) {
    for (int h = 0; h < p.q_heads; ++h) {
      threads.emplace_back(head, b, h);
    }
  }
  for (auto& th : threads) {
    th.join();
  }
  return out;
}

template <typename T, typename R>
R rows_of_t(const Side& s, const DeviceBuffer<uint32_t>& w,
            const DeviceBuffer<T>& sc, const DeviceBuffer<T>& bi,
            cu::RowStrides strides) {
  R r{};
  r.w = w.ptr;
  r.scales = sc.ptr;
  r.words_per_row = s.words_per_row;
  r.strides = strides;
  if constexpr (R::has_biases) {
    r.biases = bi.ptr;
    r.groups_per_row = s.groups_per_row;
  }
  return r;
}

// Runs the tiled kernel and pass 2 on a random problem; returns the errors
// against reference_prefill, or, with `time_ms`, only times it.
template <typename T, int D, typename KR, typename VR>
Errors check_prefill(
    const Prefill& pf,
    const Format& kf,
    const Format& vf,
    std::mt19937& rng,
    float* time_ms = nullptr,
    int reps = 0) {
  const Problem& p = pf.p;
  constexpr bool bf16 = !std::is_same_v<T, __half>;
  int64_t kv_rows = p.kv_rows();
  bool decode = !time_ms;
  Side k(kf, kv_rows, D, rng, decode, bf16), v(vf, kv_rows, D, rng, decode, bf16);
  std::normal_distribution<float> n(0, 1);
  size_t n_rows = size_t(p.batch) * p.q_heads * p.q_len;
  std::vector<T> q(n_rows * D);
  std::vector<float> qf(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = to_type<T>(n(rng));
    qf[i] = from_type<T>(q[i]);
  }
  size_t mask_size = n_rows * p.k_len;
  std::vector<uint8_t> bmask;
  std::vector<T> fmask, sinks;
  std::vector<float> fmask_f, sinks_f;
  if (p.bool_mask) {
    std::bernoulli_distribution keep(0.7);
    for (size_t i = 0; i < mask_size; ++i) {
      bool empty = pf.empty_row && (i / p.k_len) % p.q_len == 0;
      bmask.push_back(!empty && keep(rng));
    }
  }
  if (p.float_mask) {
    for (size_t i = 0; i < mask_size; ++i) {
      bool empty = pf.empty_row && (i / p.k_len) % p.q_len == 0;
      float x = empty ? -INFINITY : (i % 7 == 3 ? -INFINITY : n(rng));
      fmask.push_back(to_type<T>(x));
      fmask_f.push_back(from_type<T>(fmask.back()));
    }
  }
  if (p.sinks) {
    for (int h = 0; h < p.q_heads; ++h) {
      sinks.push_back(to_type<T>(n(rng)));
      sinks_f.push_back(from_type<T>(sinks.back()));
    }
  }
  std::vector<T> ks, kb, vs, vb;
  auto convert = [&](const std::vector<__half>& a, const std::vector<__nv_bfloat16>& c,
                     std::vector<T>& out) {
    if constexpr (bf16) {
      out = c;
    } else {
      out = a;
    }
  };
  convert(k.scales, k.scales_bf, ks);
  convert(k.biases, k.biases_bf, kb);
  convert(v.scales, v.scales_bf, vs);
  convert(v.biases, v.biases_bf, vb);
  DeviceBuffer<uint32_t> kw(k.w), vw(v.w);
  DeviceBuffer<T> d_ks(ks), d_kb(kb), d_vs(vs), d_vb(vb);
  KR keys = rows_of_t<T, KR>(k, kw, d_ks, d_kb, p.kv_strides());
  VR values = rows_of_t<T, VR>(v, vw, d_vs, d_vb, p.kv_strides());

  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  auto plan = cu::quantized_sdpa_tile_plan(
      D, p.batch, p.kv_heads, p.q_heads / p.kv_heads * p.q_len, p.k_len, sms);
  int blocks = plan.grid.blocks;
  int rows = int(n_rows);
  DeviceBuffer<T> dq(q);
  DeviceBuffer<float> pout(size_t(rows) * blocks * D), pmax(size_t(rows) * blocks),
      psum(size_t(rows) * blocks);
  DeviceBuffer<T> out(size_t(rows) * D);
  DeviceBuffer<float> lse{size_t(rows)};
  DeviceBuffer<uint8_t> bm(bmask);
  DeviceBuffer<T> fm(fmask), sk(sinks);

  auto params = params_of(p, D, blocks, plan.grid.chunk_len);
  auto books = codebooks_of(kf, vf);

  // The kernel of the plan's row tiles a warp (the same arguments for each).
  auto pass1 = cu::quantized_sdpa_tiled_pass1<T, D, 1, KR, VR>;
  size_t smem = cu::qsdpa_tile_smem(D, 1);
  cu::dispatch_tile_mtiles<D>(plan.mtiles, [&](auto mtiles) {
    constexpr int M = decltype(mtiles)::value;
    pass1 = cu::quantized_sdpa_tiled_pass1<T, D, M, KR, VR>;
    smem = cu::qsdpa_tile_smem(D, M);
  });
  CHECK(cudaFuncSetAttribute(
      pass1, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  auto launch = [&]() {
    pass1<<<dim3(p.kv_heads * plan.row_groups, p.batch, blocks),
            dim3(32, cu::qsdpa_tile_warps),
            smem>>>(
        dq.ptr,
        keys,
        values,
        p.bool_mask ? reinterpret_cast<const bool*>(bm.ptr) : nullptr,
        p.float_mask ? fm.ptr : nullptr,
        pout.ptr,
        pmax.ptr,
        psum.ptr,
        params,
        books);
    cu::quantized_sdpa_pass2<T, D, VR><<<rows, cu::quantized_sdpa_pass2_block(D, blocks)>>>(
        pout.ptr,
        pmax.ptr,
        psum.ptr,
        p.sinks ? sk.ptr : nullptr,
        out.ptr,
        time_ms ? nullptr : lse.ptr,
        values,
        params,
        books,
        p.bool_mask || p.causal);
  };
  launch();
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  if (time_ms) {
    *time_ms = median_ms(reps, launch);
    return {};
  }
  auto got = floats_of(out);
  std::vector<double> ref_lse;
  auto ref = reference_prefill(
      p,
      qf,
      k,
      v,
      p.bool_mask ? &bmask : nullptr,
      p.float_mask ? &fmask_f : nullptr,
      p.sinks ? &sinks_f : nullptr,
      ref_lse);
  return {rms_error(got, ref), lse_error(lse.to_host(), ref_lse)};
}

// The path of many queries through cuDNN (quantized_sdpa_decode_chunk and
// quantized_sdpa_fold_chunk), with cuDNN's part done here in double: the
// keys split as quantized_sdpa_cudnn_chunks splits them (into chunks of
// `chunk` keys, or of its own length when 0), each decoded by the kernel
// into its rows (a padded chunk's rows past its keys zeroed, as eval_gpu lays
// it out for cuDNN's padding mask) and checked against the host's decoding
// and the zeros, attended over in double (causal in the causal chunk only,
// bottom-right, as cuDNN's mask), its output rounded to T and folded by the
// kernel; the result against reference_prefill over all the keys.
template <typename T, int D, typename KR, typename VR>
Errors check_cudnn_chunks(
    const Problem& p,
    const Format& kf,
    const Format& vf,
    std::mt19937& rng,
    int chunk = 0) {
  constexpr bool bf16 = !std::is_same_v<T, __half>;
  Side k(kf, p.kv_rows(), D, rng, true, bf16), v(vf, p.kv_rows(), D, rng, true, bf16);
  std::normal_distribution<float> n(0, 1);
  int rows = p.batch * p.q_heads * p.q_len;
  std::vector<T> q(size_t(rows) * D), sinks;
  std::vector<float> qf(q.size()), sinks_f;
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = to_type<T>(n(rng));
    qf[i] = from_type<T>(q[i]);
  }
  if (p.sinks) {
    for (int h = 0; h < p.q_heads; ++h) {
      sinks.push_back(to_type<T>(3 * n(rng)));
      sinks_f.push_back(from_type<T>(sinks.back()));
    }
  }
  auto typed = [&](const std::vector<__half>& a,
                   const std::vector<__nv_bfloat16>& b) {
    if constexpr (bf16) {
      return b;
    } else {
      return a;
    }
  };
  DeviceBuffer<uint32_t> kw(k.w), vw(v.w);
  DeviceBuffer<T> d_ks(typed(k.scales, k.scales_bf)),
      d_kb(typed(k.biases, k.biases_bf)), d_vs(typed(v.scales, v.scales_bf)),
      d_vb(typed(v.biases, v.biases_bf));
  KR keys = rows_of_t<T, KR>(k, kw, d_ks, d_kb, p.kv_strides());
  VR values = rows_of_t<T, VR>(v, vw, d_vs, d_vb, p.kv_strides());
  auto books = codebooks_of(kf, vf);

  int len = chunk ? chunk : cu::quantized_sdpa_cudnn_rows(p.k_len, p.q_len, p.causal);
  auto chunks = cu::quantized_sdpa_cudnn_chunks(p.k_len, p.q_len, p.causal, len);
  int n_chunks = chunks.size();
  size_t chunk_elems = size_t(p.batch) * p.kv_heads * len * D;
  DeviceBuffer<T> k_chunk(chunk_elems), v_chunk(chunk_elems), out(size_t(rows) * D),
      d_sinks(sinks);
  DeviceBuffer<float> chunk_lse(rows), acc(size_t(rows) * D), acc_lse(rows),
      lse(rows);
  // NaNs where the decode does not write, as a reused scratch may hold.
  CHECK(cudaMemset(k_chunk.ptr, 0xff, chunk_elems * sizeof(T)));
  CHECK(cudaMemset(v_chunk.ptr, 0xff, chunk_elems * sizeof(T)));
  int gqa = p.q_heads / p.kv_heads;
  double scale = 1.0 / std::sqrt(double(D));
  double decode_error = 0;
  for (int c = 0; c < n_chunks; ++c) {
    int k0 = chunks[c].k0;
    int k1 = chunks[c].k1;
    int stride = chunks[c].stride;
    int m = k1 - k0;
    constexpr int parts = D / cu::qsdpa_elems;
    cu::quantized_sdpa_decode_chunk<T, D, KR, VR>
        <<<dim3((stride * parts + 255) / 256, p.batch * p.kv_heads, 2), 256>>>(
            keys, values, k_chunk.ptr, v_chunk.ptr, p.kv_heads, k0, m, stride, books);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    auto kc = k_chunk.to_host();
    auto vc = v_chunk.to_host();
    // The decoded rows against the host's, and cuDNN's attention over them.
    std::vector<double> got, want;
    std::vector<T> o(size_t(rows) * D);
    std::vector<float> o_lse(rows);
    bool causal = chunks[c].causal;
    for (int b = 0; b < p.batch; ++b) {
      for (int hk = 0; hk < p.kv_heads; ++hk) {
        size_t base = (size_t(b) * p.kv_heads + hk) * stride * D;
        int64_t row0 = p.kv_row0(b, hk) + k0;
        for (int j = 0; j < stride * D; ++j) {
          for (auto [x, side] : {std::pair{&kc, &k}, std::pair{&vc, &v}}) {
            // A padded chunk's rows past m are zeroed.
            got.push_back(from_type<T>((*x)[base + j]));
            want.push_back(j < m * D ? side->decoded[row0 * D + j] : 0.0);
          }
        }
        for (int h = hk * gqa; h < (hk + 1) * gqa; ++h) {
          for (int i = 0; i < p.q_len; ++i) {
            int64_t row = (int64_t(b) * p.q_heads + h) * p.q_len + i;
            std::vector<double> s(m);
            double mx = -INFINITY;
            int seen = causal ? m - p.q_len + i + 1 : m;
            for (int j = 0; j < seen; ++j) {
              double dot = 0;
              for (int e = 0; e < D; ++e) {
                dot += double(qf[row * D + e]) * from_type<T>(kc[base + j * D + e]);
              }
              s[j] = dot * scale;
              mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < seen; ++j) {
              s[j] = std::exp(s[j] - mx);
              sum += s[j];
            }
            o_lse[row] = float(mx + std::log(sum));
            for (int e = 0; e < D; ++e) {
              double x = 0;
              for (int j = 0; j < seen; ++j) {
                x += s[j] * from_type<T>(vc[base + j * D + e]);
              }
              o[row * D + e] = to_type<T>(float(x / sum));
            }
          }
        }
      }
    }
    decode_error = std::max(decode_error, rms_error(got, want));
    CHECK(cudaMemcpy(out.ptr, o.data(), o.size() * sizeof(T), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(
        chunk_lse.ptr, o_lse.data(), rows * sizeof(float), cudaMemcpyHostToDevice));
    constexpr int warps = 8;
    cu::quantized_sdpa_fold_chunk<T, D><<<(rows + warps - 1) / warps, 32 * warps>>>(
        out.ptr,
        chunk_lse.ptr,
        acc.ptr,
        acc_lse.ptr,
        p.sinks ? d_sinks.ptr : nullptr,
        out.ptr,
        lse.ptr,
        rows,
        p.q_heads,
        p.q_len,
        c == 0,
        c == n_chunks - 1);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
  }
  std::vector<double> ref_lse;
  auto ref = reference_prefill(
      p, qf, k, v, nullptr, nullptr, p.sinks ? &sinks_f : nullptr, ref_lse);
  return {
      std::max(rms_error(floats_of(out), ref), decode_error),
      lse_error(lse.to_host(), ref_lse)};
}

template <typename T, int D>
int check_prefill_all(std::mt19937& rng) {
  constexpr bool bf16 = !std::is_same_v<T, __half>;
  int failures = 0;
  auto report = [&](const char* what, const Format& kf, const Format& vf,
                    const Prefill& pf, Errors err) {
    const Problem& p = pf.p;
    bool ok = err.ok(bf16);
    failures += !ok;
    std::printf(
        "%-4s %s D=%d %-11s/%-11s B=%d Hq=%d Hkv=%d Lq=%d Lk=%d %-9s rel err %.2e "
        "lse err %.2e\n",
        ok ? "ok" : "FAIL", bf16 ? "bf16" : "fp16", D, kf.name.c_str(),
        vf.name.c_str(), p.batch, p.q_heads, p.kv_heads, p.q_len, p.k_len, what,
        err.out, err.lse);
  };
  using R3 = cu::TurboRows<T, 3>;
  using R4 = cu::TurboRows<T, 4>;
  using A4 = cu::AffineRows<T, 4, 64>;
  using A4b = cu::AffineRows<T, 4, 32>;
  using A6 = cu::AffineRows<T, 6, 32>;
  using A8 = cu::AffineRows<T, 8, 32>;
  using A8b = cu::AffineRows<T, 8, 64>;
  const Format affine4_32{"affine4 g32", false, 4, 32};
  // Every pair of formats, causal, 33 queries (a block of 64 rows spans two
  // query heads), keys off the tiles.
  {
    Prefill c{{2, 8, 2, 33, 301, D}};
    c.p.causal = true;
#define PAIR(KR, VR, kf, vf) \
    report("causal", kf, vf, c, check_prefill<T, D, KR, VR>(c, kf, vf, rng))
    PAIR(R3, R3, turbo3, turbo3);
    PAIR(R4, R4, turbo4, turbo4);
    PAIR(A4, A4, affine4, affine4);
    PAIR(A4b, A4b, affine4_32, affine4_32);
    PAIR(A6, A6, affine6, affine6);
    PAIR(A8, A8, affine8, affine8);
    PAIR(A8b, A8b, affine8_64, affine8_64);
    PAIR(A8b, R4, affine8_64, turbo4);
    PAIR(A8, R3, affine8, turbo3);
    PAIR(R4, R3, turbo4, turbo3);
#undef PAIR
  }
  if (bf16) {
    return failures;
  }
  for (int q_len : {9, 16, 100}) {
    Prefill a{{2, 8, 2, q_len, 1003, D}};
    report("plain", turbo4, turbo4, a, check_prefill<T, D, R4, R4>(a, turbo4, turbo4, rng));
    Prefill c = a;
    c.p.causal = true;
    report("causal", turbo4, turbo4, c, check_prefill<T, D, R4, R4>(c, turbo4, turbo4, rng));
    Prefill m = a;
    m.p.bool_mask = true;
    m.empty_row = true;
    report("bool+empty", turbo3, turbo3, m, check_prefill<T, D, R3, R3>(m, turbo3, turbo3, rng));
    Prefill f = a;
    f.p.float_mask = true;
    f.empty_row = true;
    report("add+-inf", affine8, turbo4, f, check_prefill<T, D, A8, R4>(f, affine8, turbo4, rng));
    Prefill s = c;
    s.p.sinks = true;
    report("caus+sink", turbo4, turbo4, s, check_prefill<T, D, R4, R4>(s, turbo4, turbo4, rng));
    Prefill bs = m;
    bs.p.sinks = true;
    report("bool+sink", affine4, affine4, bs, check_prefill<T, D, A4, A4>(bs, affine4, affine4, rng));
  }
  // GQA 1 and 8, the query length equal to the key length, and a long cache
  // split over many chunks (some past the causal limit of their rows).
  Prefill g1{{2, 4, 4, 40, 200, D}};
  g1.p.causal = true;
  report("gqa1", turbo4, turbo4, g1, check_prefill<T, D, R4, R4>(g1, turbo4, turbo4, rng));
  Prefill g8{{1, 8, 1, 20, 500, D}};
  g8.p.causal = true;
  report("gqa8", turbo3, turbo3, g8, check_prefill<T, D, R3, R3>(g8, turbo3, turbo3, rng));
  Prefill sq{{1, 2, 2, 130, 130, D}};
  sq.p.causal = true;
  report("Lq=Lk", affine8, affine8, sq, check_prefill<T, D, A8, A8>(sq, affine8, affine8, rng));
  Prefill lg{{1, 4, 1, 16, 4000, D}};
  lg.p.causal = true;
  report("chunks", turbo4, turbo4, lg, check_prefill<T, D, R4, R4>(lg, turbo4, turbo4, rng));
  lg.p.causal = false;
  lg.p.bool_mask = true;
  report("chunks", turbo4, turbo3, lg, check_prefill<T, D, R4, R3>(lg, turbo4, turbo3, rng));
  // A slice of a cache that grows in steps, and one batch entry of keys and
  // values for all.
  Prefill sl{{2, 8, 2, 33, 150, D}};
  sl.p.causal = true;
  sl.p.k_alloc = 256;
  report("sliced", turbo4, turbo4, sl, check_prefill<T, D, R4, R4>(sl, turbo4, turbo4, rng));
  sl.p.kv_broadcast = true;
  report("bcast", affine4, turbo3, sl, check_prefill<T, D, A4, R3>(sl, affine4, turbo3, rng));
  // cuDNN's chunks (head dims up to 128): chunks of 64 keys (the first of
  // 45), causal, sinks, a sliced cache and a broadcast batch; and the split
  // eval_gpu uses, 8193 keys in three chunks.
  if constexpr (D <= 128) {
    Problem ch{2, 8, 2, 33, 301, D};
    ch.causal = true;
    report("cudnn", turbo4, turbo4, {ch}, check_cudnn_chunks<T, D, R4, R4>(ch, turbo4, turbo4, rng, 64));
    ch.sinks = true;
    report("cudnn+sink", affine8, turbo3, {ch}, check_cudnn_chunks<T, D, A8, R3>(ch, affine8, turbo3, rng, 64));
    ch.causal = false;
    ch.k_alloc = 320;
    report("cudnn slice", affine4, affine4, {ch}, check_cudnn_chunks<T, D, A4, A4>(ch, affine4, affine4, rng, 64));
    ch.kv_broadcast = true;
    report("cudnn bcast", turbo3, turbo3, {ch}, check_cudnn_chunks<T, D, R3, R3>(ch, turbo3, turbo3, rng, 64));
    Problem plan{1, 4, 2, 20, 8193, D};
    plan.causal = true;
    plan.sinks = true;
    report("cudnn plan", turbo4, turbo3, {plan}, check_cudnn_chunks<T, D, R4, R3>(plan, turbo4, turbo3, rng));
    // Fewer keys than a chunk: causal, the 20 keys the queries see in part
    // and the 130 before them padded to 4096 rows; without the mask, all 150
    // padded.
    Problem few{1, 4, 2, 20, 150, D};
    few.causal = true;
    report("cudnn short", turbo4, turbo4, {few}, check_cudnn_chunks<T, D, R4, R4>(few, turbo4, turbo4, rng));
    few.causal = false;
    report("cudnn short", affine8, turbo3, {few}, check_cudnn_chunks<T, D, A8, R3>(few, affine8, turbo3, rng));
  }
  return failures;
}

// Times of the tiled kernel on the issue's case: 512 queries against 32K keys,
// 32 query heads over 8 KV heads, D = 128.
void time_prefill(std::mt19937& rng) {
  std::printf("| case | ms | TFLOP/s (QK and PV) |\n|---|---|---|\n");
  for (bool causal : {true, false}) {
    Prefill pf{{1, 32, 8, 512, 32768, 128}};
    pf.p.causal = causal;
    auto time = [&](const char* name, auto kr, auto vr, const Format& kf,
                    const Format& vf) {
      float ms;
      check_prefill<__half, 128, decltype(kr), decltype(vr)>(pf, kf, vf, rng, &ms, 10);
      double flops = 4.0 * 32 * 512 * 32768.0 * 128;
      std::printf(
          "| %s %s | %.3f | %.0f |\n", name, causal ? "causal" : "plain", ms,
          flops / (ms / 1e3) / 1e12);
    };
    time("turbo4", cu::TurboRows<__half, 4>{}, cu::TurboRows<__half, 4>{}, turbo4, turbo4);
    if (causal) {
      time("turbo3", cu::TurboRows<__half, 3>{}, cu::TurboRows<__half, 3>{}, turbo3, turbo3);
      time("affine8 g32", cu::AffineRows<__half, 8, 32>{}, cu::AffineRows<__half, 8, 32>{}, affine8, affine8);
      time("affine4 g64", cu::AffineRows<__half, 4, 64>{}, cu::AffineRows<__half, 4, 64>{}, affine4, affine4);
    }
  }
  // 16 queries (speculative verification) against 32K keys: the keys split.
  Prefill v{{1, 32, 8, 16, 32768, 128}};
  v.p.causal = true;
  float ms;
  check_prefill<__half, 128, cu::TurboRows<__half, 4>, cu::TurboRows<__half, 4>>(
      v, turbo4, turbo4, rng, &ms, 20);
  std::printf("| turbo4 causal Lq=16 | %.3f | |\n", ms);
}

// A few cases of each kernel at D=128, for a quick run on the CPU
// (QSDPA_CHECKS=smoke): both tensor-core formats families, CUDA cores, masks,
// sinks, B=8, and the tiled kernel in float16 and bfloat16.
int check_smoke(std::mt19937& rng) {
  constexpr int D = 128;
  int failures = 0;
  auto report = [&](const char* what, const Problem& p, Errors err, bool bf16) {
    bool ok = err.ok(bf16);
    failures += !ok;
    std::printf(
        "%-4s smoke D=%d B=%d Hq=%d Hkv=%d Lq=%d Lk=%d %-12s rel err %.2e lse "
        "err %.2e\n",
        ok ? "ok" : "FAIL", D, p.batch, p.q_heads, p.kv_heads, p.q_len, p.k_len,
        what, err.out, err.lse);
  };
  using R3 = cu::TurboRows<T, 3>;
  using R4 = cu::TurboRows<T, 4>;
  using A4 = cu::AffineRows<T, 4, 64>;
  using A8 = cu::AffineRows<T, 8, 32>;
  Problem p{1, 8, 2, 1, 300, D};
  report("mma turbo4", p, check_case<D, R4, R4>(p, turbo4, turbo4, rng, true), false);
  report("turbo4", p, check_case<D, R4, R4>(p, turbo4, turbo4, rng), false);
  Problem c = p;
  c.causal = true;
  c.q_len = 4;
  report("mma k4v3 caus", c, check_case<D, R4, R3>(c, turbo4, turbo3, rng, true), false);
  Problem m = p;
  m.bool_mask = true;
  m.empty_rows = true;
  report("mma affine4 bo", m, check_case<D, A4, A4>(m, affine4, affine4, rng, true), false);
  Problem a = p;
  a.float_mask = true;
  a.sinks = true;
  report("mma a8/t3 add", a, check_case<D, A8, R3>(a, affine8, turbo3, rng, true), false);
  Problem b8{8, 8, 2, 1, 67, D};
  b8.causal = true;
  report("mma B=8", b8, check_case<D, R3, R3>(b8, turbo3, turbo3, rng, true), false);
  // A slice of a cache that grows in steps, with rows that see no key (the
  // mean of the values), and one batch entry of keys and values for all.
  Problem sl{2, 8, 2, 1, 300, D};
  sl.k_alloc = 320;
  sl.bool_mask = true;
  sl.empty_rows = true;
  report("mma sliced", sl, check_case<D, R4, R4>(sl, turbo4, turbo4, rng, true), false);
  report("sliced", sl, check_case<D, A4, R4>(sl, affine4, turbo4, rng), false);
  Problem bc{3, 8, 2, 1, 200, D};
  bc.kv_broadcast = true;
  bc.k_alloc = 256;
  report("mma bcast", bc, check_case<D, A8, A8>(bc, affine8, affine8, rng, true), false);
  // Many chunks (64 and 46 of them here), which the last thread block of
  // the row group merges.
  Problem many{1, 4, 1, 1, 16384, D};
  many.float_mask = true;
  many.sinks = true;
  report("mma chunks", many, check_case<D, R4, R4>(many, turbo4, turbo4, rng, true), false);
  Problem many_bool{1, 4, 1, 1, 12000, D};
  many_bool.bool_mask = true;
  many_bool.empty_rows = true;
  report("chunks bool", many_bool, check_case<D, A4, R3>(many_bool, affine4, turbo3, rng), false);
  Prefill f{{1, 8, 2, 33, 150, D}};
  f.p.causal = true;
  report("tiled turbo4", f.p, check_prefill<__half, D, R4, R4>(f, turbo4, turbo4, rng), false);
  Prefill fs = f;
  fs.p.batch = 2;
  fs.p.k_alloc = 256;
  report("tiled sliced", fs.p, check_prefill<__half, D, R4, R4>(fs, turbo4, turbo4, rng), false);
  using B4 = cu::TurboRows<__nv_bfloat16, 4>;
  using B8 = cu::AffineRows<__nv_bfloat16, 8, 32>;
  Prefill b = f;
  b.p.bool_mask = true;
  b.empty_row = true;
  report("tiled bf16", b.p, check_prefill<__nv_bfloat16, D, B8, B4>(b, affine8, turbo4, rng), true);
  // cuDNN's chunks, with cuDNN's part on the host: 5 chunks, causal, sinks.
  Problem ch{1, 8, 2, 33, 301, D};
  ch.causal = true;
  ch.sinks = true;
  report("cudnn chunks", ch, check_cudnn_chunks<__half, D, R4, R3>(ch, turbo4, turbo3, rng, 64), false);
  report("cudnn bf16", ch, check_cudnn_chunks<__nv_bfloat16, D, B8, B4>(ch, affine8, turbo4, rng, 64), true);
  // Fewer keys than a chunk (4096), causal: 268 keys padded, then 33 causal.
  report("cudnn short", ch, check_cudnn_chunks<__half, D, R4, R3>(ch, turbo4, turbo3, rng), false);
  return failures;
}

// Where the time of a short decode goes: turbo4 on tensor cores at B=1, one
// call at a time (the table above: the first launch's latency included), 20
// calls back to back (as in an MLX graph), and each pass alone, 20 back to
// back.
void time_fixed_cost(std::mt19937& rng, double copy_gbs) {
  std::printf(
      "\nturbo4 on tensor cores, B=1, us a call: one at a time; 20 back to "
      "back\n"
      "| L | one call | 20 calls | 20 calls, of copy |\n"
      "|---|---|---|---|\n");
  using R4 = cu::TurboRows<__half, 4>;
  for (int L : {4096, 16384, 32768, 131072}) {
    Problem p{1, 32, 8, 1, L, 128};
    float ms[2];
    double gb;
    const int calls[2] = {1, 20};
    for (int i = 0; i < 2; ++i) {
      time_calls = calls[i];
      check_case<128, R4, R4>(p, turbo4, turbo4, rng, true, &ms[i], 30, &gb);
    }
    time_calls = 1;
    std::printf(
        "| %d | %.1f | %.1f | %.0f%% |\n", L, ms[0] * 1e3, ms[1] * 1e3,
        100 * gb / (ms[1] / 1e3) / copy_gbs);
  }
}

// Copy bandwidth of the card, bytes read plus written.
double copy_bandwidth() {
  size_t n = size_t(1) << 30;
  DeviceBuffer<char> a(n), b(n);
  CHECK(cudaMemcpy(b.ptr, a.ptr, n, cudaMemcpyDeviceToDevice));
  float copy_ms = median_ms(20, [&] {
    CHECK(cudaMemcpy(b.ptr, a.ptr, n, cudaMemcpyDeviceToDevice));
  });
  double copy_gbs = 2.0 * n / 1e9 / (copy_ms / 1e3);
  std::printf("copy bandwidth %.0f GB/s (read + write)\n", copy_gbs);
  return copy_gbs;
}

// Decode times at 4K, 32K and 128K keys (B=1, 32 query and 8 KV heads,
// D=128, one query) of every format on tensor cores, and on CUDA cores
// unless mma_only.
void time_decode(std::mt19937& rng, double copy_gbs, bool mma_only) {
  std::printf("| L | K/V | us | GB read | GB/s | of copy |\n|---|---|---|---|---|---|\n");
  for (int L : {4096, 32768, 131072}) {
    Problem p{1, 32, 8, 1, L, 128};
    auto time = [&](const char* name, auto kr, auto vr, const Format& kf,
                    const Format& vf, bool mma = false) {
      if (!mma && mma_only) {
        return;
      }
      float ms;
      double gb;
      check_case<128, decltype(kr), decltype(vr)>(
          p, kf, vf, rng, mma, &ms, 50, &gb);
      std::printf(
          "| %d | %s | %.1f | %.4f | %.0f | %.0f%% |\n", L, name, ms * 1e3, gb,
          gb / (ms / 1e3), 100 * gb / (ms / 1e3) / copy_gbs);
    };
    time("turbo4 mma", cu::TurboRows<T, 4>{}, cu::TurboRows<T, 4>{}, turbo4, turbo4, true);
    time("turbo4", cu::TurboRows<T, 4>{}, cu::TurboRows<T, 4>{}, turbo4, turbo4);
    time("turbo3 mma", cu::TurboRows<T, 3>{}, cu::TurboRows<T, 3>{}, turbo3, turbo3, true);
    time("turbo3", cu::TurboRows<T, 3>{}, cu::TurboRows<T, 3>{}, turbo3, turbo3);
    time("K4V3 mma", cu::TurboRows<T, 4>{}, cu::TurboRows<T, 3>{}, turbo4, turbo3, true);
    time("K4V3", cu::TurboRows<T, 4>{}, cu::TurboRows<T, 3>{}, turbo4, turbo3);
    time("affine4 g64 mma", cu::AffineRows<T, 4, 64>{}, cu::AffineRows<T, 4, 64>{}, affine4, affine4, true);
    time("affine4 g64", cu::AffineRows<T, 4, 64>{}, cu::AffineRows<T, 4, 64>{}, affine4, affine4);
    time("affine8 g32 mma", cu::AffineRows<T, 8, 32>{}, cu::AffineRows<T, 8, 32>{}, affine8, affine8, true);
    time("affine8 g32", cu::AffineRows<T, 8, 32>{}, cu::AffineRows<T, 8, 32>{}, affine8, affine8);
    time("K8V4 mma", cu::AffineRows<T, 8, 64>{}, cu::TurboRows<T, 4>{}, affine8_64, turbo4, true);
    time("K8V4", cu::AffineRows<T, 8, 64>{}, cu::TurboRows<T, 4>{}, affine8_64, turbo4);
  }
}

#ifdef QSDPA_TIME_ONLY
int main() {
  std::mt19937 rng(0);
  if (std::getenv("QSDPA_DECODE")) {
    double copy_gbs = copy_bandwidth();
    time_decode(rng, copy_gbs, true);
    time_fixed_cost(rng, copy_gbs);
    return 0;
  }
  time_prefill(rng);
  return 0;
}
#else
int main() {
  std::mt19937 rng(0);
  if (std::getenv("QSDPA_HOST_ONLY")) {
    int failures = check_all_operands(rng);
    std::printf("%d checks failed\n", failures);
    return failures ? 1 : 0;
  }
  if (const char* profile = std::getenv("QSDPA_PROFILE")) {
    // One case at 128K keys on tensor cores, for a profiler: turbo4, or
    // turbo3 with QSDPA_PROFILE=turbo3.
    Problem p{1, 32, 8, 1, 131072, 128};
    float ms;
    double gb;
    if (std::string(profile) == "turbo3") {
      check_case<128, cu::TurboRows<T, 3>, cu::TurboRows<T, 3>>(
          p, turbo3, turbo3, rng, true, &ms, 20, &gb);
      std::printf("turbo3 128K: %.1f us\n", ms * 1e3);
    } else {
      check_case<128, cu::TurboRows<T, 4>, cu::TurboRows<T, 4>>(
          p, turbo4, turbo4, rng, true, &ms, 20, &gb);
      std::printf("turbo4 128K: %.1f us\n", ms * 1e3);
    }
    return 0;
  }
  if (std::getenv("QSDPA_PREFILL")) {
    // The tiled kernel only: checks, then times.
    int failures = check_prefill_all<__half, 64>(rng) +
        check_prefill_all<__half, 128>(rng) +
        check_prefill_all<__half, 256>(rng) +
        check_prefill_all<__nv_bfloat16, 64>(rng) +
        check_prefill_all<__nv_bfloat16, 128>(rng) +
        check_prefill_all<__nv_bfloat16, 256>(rng);
    time_prefill(rng);
    std::printf("%d checks failed\n", failures);
    return failures ? 1 : 0;
  }
  if (const char* dims = std::getenv("QSDPA_CHECKS")) {
    // The checks without the times (cuda_run.py, on the CPU): every head
    // dimension, or those listed ("64,128").
    std::string d = std::string(",") + dims + ",";
    bool all = d == ",1,";
    auto has = [&](const char* x) {
      return all || d.find(std::string(",") + x + ",") != std::string::npos;
    };
    if (d == ",smoke,") {
      int failures = check_smoke(rng);
      std::printf("%d checks failed\n", failures);
      return failures ? 1 : 0;
    }
    int failures = check_all_operands(rng);
    if (has("64")) {
      failures += check_all<64>(rng) + check_prefill_all<__half, 64>(rng);
    }
    if (has("128")) {
      failures += check_all<128>(rng) + check_prefill_all<__half, 128>(rng) +
          check_prefill_all<__nv_bfloat16, 128>(rng);
    }
    if (has("256")) {
      failures += check_all<256>(rng) + check_prefill_all<__half, 256>(rng);
    }
    std::printf("%d checks failed\n", failures);
    return failures ? 1 : 0;
  }
  int failures = check_all_operands(rng);
  failures += check_all<64>(rng) + check_all<128>(rng) + check_all<256>(rng);
  failures += check_prefill_all<__half, 64>(rng) +
      check_prefill_all<__half, 128>(rng) + check_prefill_all<__half, 256>(rng) +
      check_prefill_all<__nv_bfloat16, 128>(rng);
  double copy_gbs = copy_bandwidth();
  time_decode(rng, copy_gbs, false);
  time_fixed_cost(rng, copy_gbs);
  std::printf("%d checks failed\n", failures);
  return failures ? 1 : 0;
}
#endif
