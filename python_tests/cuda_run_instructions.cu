// The CUDA executor's warp model, instruction by instruction, against the
// PTX ISA's own statement of each layout (written here from the ISA's
// tables, not from the shim's code): one warp, operands whose values encode
// their position, results compared on the host. Built by cuda_run.py like
// the checker (python_tests/test_cuda_run.py). Prints "ok NAME" or
// "FAIL NAME ..." per check; exits 1 if one fails. With an argument, runs
// one misuse that the executor must refuse (it aborts).

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int failures = 0;

void check(const char* name, bool ok, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "ok" : "FAIL", name, ok ? "" : " ",
              ok ? "" : detail.c_str());
  failures += !ok;
}

// A kernel's `n` outputs, on the host: `launch(out)` launches it with a
// device buffer for them.
template <typename T, typename F>
std::vector<T> outputs(size_t n, F launch) {
  T* out;
  cudaMalloc(&out, n * sizeof(T));
  launch(out);
  cudaDeviceSynchronize();
  std::vector<T> host(n);
  cudaMemcpy(host.data(), out, n * sizeof(T), cudaMemcpyDeviceToHost);
  cudaFree(out);
  return host;
}

__device__ uint16_t bits16(float x, bool bf16) {
  if (bf16) {
    __nv_bfloat16 h = __float2bfloat16(x);
    return *reinterpret_cast<uint16_t*>(&h);
  }
  __half h = __float2half(x);
  return *reinterpret_cast<uint16_t*>(&h);
}

// Small integers, exact in float16 and bfloat16, as are their products'
// sums in float32.
__host__ __device__ float a_value(int row, int k) {
  return float((row * 16 + k) % 13 - 6);
}
__host__ __device__ float b_value(int k, int col) {
  return float((k * 8 + col) % 11 - 5);
}
__host__ __device__ float c_value(int row, int col) {
  return 0.5f * float(row * 8 + col);
}

// mma.m16n8k16 with .f16 or .bf16 operands (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"): groupID = lane >> 2,
// threadID_in_group = lane % 4.
//   a_i (i = 0..7): row = groupID + 8 for a2, a3, a6, a7, else groupID;
//     col = threadID_in_group * 2 + (i & 1), plus 8 for i >= 4.
//   b_i (i = 0..3): row = threadID_in_group * 2 + (i & 1), plus 8 for
//     i >= 2; col = groupID.
//   c_i (i = 0..3): row = groupID, plus 8 for i >= 2;
//     col = threadID_in_group * 2 + (i & 1).
// Two 16-bit elements a register, the lower-numbered in the low half.
__global__ void mma_kernel(float* out, int bf16) {
  int lane = threadIdx.x, group = lane >> 2, tig = lane % 4;
  uint32_t a[4] = {}, b[2] = {};
  for (int i = 0; i < 8; ++i) {
    int row = group + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
    int col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
    a[i / 2] |= uint32_t(bits16(a_value(row, col), bf16)) << (16 * (i & 1));
  }
  for (int i = 0; i < 4; ++i) {
    int row = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
    b[i / 2] |= uint32_t(bits16(b_value(row, group), bf16)) << (16 * (i & 1));
  }
  float d[4];
  for (int i = 0; i < 4; ++i) {
    d[i] = c_value(group + (i >= 2 ? 8 : 0), tig * 2 + (i & 1));
  }
  if (bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  for (int i = 0; i < 4; ++i) {
    int row = group + (i >= 2 ? 8 : 0), col = tig * 2 + (i & 1);
    out[row * 8 + col] = d[i];
  }
}

void check_mma(bool bf16) {
  auto host = outputs<float>(128, [&](float* out) {
    mma_kernel<<<1, 32>>>(out, bf16);
  });
  std::string bad;
  for (int row = 0; row < 16; ++row) {
    for (int col = 0; col < 8; ++col) {
      float want = c_value(row, col);
      for (int k = 0; k < 16; ++k) {
        want += a_value(row, k) * b_value(k, col);
      }
      if (host[row * 8 + col] != want && bad.empty()) {
        bad = "D[" + std::to_string(row) + "][" + std::to_string(col) +
            "] = " + std::to_string(host[row * 8 + col]) + ", not " +
            std::to_string(want);
      }
    }
  }
  check(bf16 ? "mma m16n8k16 bf16" : "mma m16n8k16 f16", bad.empty(), bad);
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 (PTX ISA, "ldmatrix"):
// threads 8j to 8j + 7 give the addresses of rows 0 to 7 of matrix j; each
// thread receives, in register j, two elements of matrix j: row lane / 4,
// columns 2 (lane % 4) and the next; with .trans, of the transpose (column
// lane / 4, rows 2 (lane % 4) and the next). Element (m, r, c) holds
// m * 64 + r * 8 + c; rows are 24 elements apart (48 bytes), not 8.
constexpr int kStride = 24;
__global__ void ldmatrix_kernel(uint32_t* out, int trans, int misalign) {
  __shared__ __align__(16) uint16_t tile[4 * 8 * kStride];
  int lane = threadIdx.x;
  for (int i = lane; i < 4 * 8 * kStride; i += 32) {
    int m = i / (8 * kStride), r = i / kStride % 8, c = i % kStride;
    tile[i] = uint16_t(c < 8 ? m * 64 + r * 8 + c : 0xdead);
  }
  __syncwarp();
  uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(
      tile + (lane / 8 * 8 + lane % 8) * kStride + misalign));
  uint32_t x[4];
  if (trans) {
    asm volatile(
        "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
        : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
        : "r"(address));
  } else {
    asm volatile(
        "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
        : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
        : "r"(address));
  }
  for (int j = 0; j < 4; ++j) {
    out[lane * 4 + j] = x[j];
  }
}

void check_ldmatrix(bool trans) {
  auto host = outputs<uint32_t>(128, [&](uint32_t* out) {
    ldmatrix_kernel<<<1, 32>>>(out, trans, 0);
  });
  std::string bad;
  for (int lane = 0; lane < 32; ++lane) {
    for (int j = 0; j < 4; ++j) {
      uint32_t want = 0;
      for (int h = 0; h < 2; ++h) {
        int r = trans ? 2 * (lane % 4) + h : lane / 4;
        int c = trans ? lane / 4 : 2 * (lane % 4) + h;
        want |= uint32_t(j * 64 + r * 8 + c) << (16 * h);
      }
      if (host[lane * 4 + j] != want && bad.empty()) {
        bad = "lane " + std::to_string(lane) + " register " + std::to_string(j);
      }
    }
  }
  check(trans ? "ldmatrix x4 trans" : "ldmatrix x4", bad.empty(), bad);
}

// movmatrix.sync.aligned.m8n8.trans.b16: lane l holds row l / 4, columns
// 2 (l % 4) and the next of the matrix, and receives the same of its
// transpose.
__global__ void movmatrix_kernel(uint32_t* out) {
  int lane = threadIdx.x, r = lane / 4, c = 2 * (lane % 4);
  uint32_t x = uint32_t(r * 8 + c) | uint32_t(r * 8 + c + 1) << 16, y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;"
               : "=r"(y)
               : "r"(x));
  out[lane] = y;
}

void check_movmatrix() {
  auto host = outputs<uint32_t>(32, [](uint32_t* out) {
    movmatrix_kernel<<<1, 32>>>(out);
  });
  std::string bad;
  for (int lane = 0; lane < 32; ++lane) {
    int r = lane / 4, c = 2 * (lane % 4);
    // Element (r, c) of the transpose is (c, r) of the matrix.
    uint32_t want = uint32_t(c * 8 + r) | uint32_t((c + 1) * 8 + r) << 16;
    if (host[lane] != want && bad.empty()) {
      bad = "lane " + std::to_string(lane);
    }
  }
  check("movmatrix m8n8 trans", bad.empty(), bad);
}

// ex2.approx.ftz.f32: 2^x, subnormal inputs and results flushed to +0 (a
// subnormal input is 0, so 1); -inf gives +0, +inf +inf, NaN NaN.
__global__ void ex2_kernel(const float* in, float* out, int n) {
  for (int i = threadIdx.x; i < n; i += 32) {
    float y, x = in[i];
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    out[i] = y;
  }
}

void check_ex2() {
  std::vector<float> x = {-INFINITY, INFINITY, NAN, 1e-40f, -126.0f,
                          -127.0f,   3.0f,     0.0f};
  std::vector<float> want = {0.0f, INFINITY, NAN, 1.0f, std::ldexp(1.0f, -126),
                             0.0f, 8.0f,     1.0f};
  float* in;
  cudaMalloc(&in, x.size() * 4);
  cudaMemcpy(in, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
  auto got = outputs<float>(x.size(), [&](float* out) {
    ex2_kernel<<<1, 32>>>(in, out, int(x.size()));
  });
  cudaFree(in);
  std::string bad;
  for (size_t i = 0; i < x.size(); ++i) {
    bool same = std::isnan(want[i])
        ? std::isnan(got[i])
        : (got[i] == want[i] && !std::signbit(got[i]));
    if (!same && bad.empty()) {
      bad = "2^" + std::to_string(x[i]) + " = " + std::to_string(got[i]);
    }
  }
  check("ex2.approx.ftz.f32", bad.empty(), bad);
}

// __shfl_xor_sync with a width under 32: a lane whose partner is in a later
// segment of `width` lanes keeps its own value; one in an earlier segment is
// read (CUDA C++ Programming Guide, warp shuffle functions).
__global__ void shuffle_kernel(int* out) {
  int lane = threadIdx.x;
  out[lane] = __shfl_xor_sync(0xffffffff, lane, 16, 16);
  out[32 + lane] = __shfl_xor_sync(0xffffffff, lane, 2, 4);
  out[64 + lane] = __any_sync(0xffffffff, lane == 19);
  out[96 + lane] = int(__ballot_sync(0xffffffff, lane % 3 == 0));
}

void check_shuffles() {
  auto host = outputs<int>(128, [](int* out) {
    shuffle_kernel<<<1, 32>>>(out);
  });
  std::string bad;
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) {
    ballot |= 1u << l;
  }
  for (int lane = 0; lane < 32; ++lane) {
    int want[4] = {lane < 16 ? lane : lane - 16, lane ^ 2, 1, int(ballot)};
    for (int k = 0; k < 4; ++k) {
      if (host[32 * k + lane] != want[k] && bad.empty()) {
        bad = "case " + std::to_string(k) + " lane " + std::to_string(lane) +
            ": " + std::to_string(host[32 * k + lane]);
      }
    }
  }
  check("shuffles and votes", bad.empty(), bad);
}

// cp.async.ca.shared.global of 4, 8 and 16 bytes, in two groups
// (cp.async.commit_group): after cp.async.wait_group 1 the older group has
// landed, after cp.async.wait_group 0 both (PTX ISA, "Data Movement and
// Conversion Instructions: cp.async").
__global__ void cp_async_kernel(const uint32_t* in, uint32_t* out) {
  __shared__ __align__(16) uint32_t words[32][8];
  int lane = threadIdx.x;
  uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(words[lane]));
  const uint32_t* src = in + 8 * lane;
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;"
               :
               : "r"(base), "l"(src), "n"(4));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;"
               :
               : "r"(base + 8), "l"(src + 2), "n"(8));
  asm volatile("cp.async.commit_group;");
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;"
               :
               : "r"(base + 16), "l"(src + 4), "n"(16));
  asm volatile("cp.async.commit_group;");
  asm volatile("cp.async.wait_group %0;" : : "n"(1));
  out[3 * lane] = words[lane][0];
  out[3 * lane + 1] = words[lane][3];
  asm volatile("cp.async.wait_group %0;" : : "n"(0));
  out[3 * lane + 2] = words[lane][4] ^ words[lane][7];
}

void check_cp_async() {
  std::vector<uint32_t> x(256);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = uint32_t(i * 2654435761u);
  }
  uint32_t* in;
  cudaMalloc(&in, x.size() * 4);
  cudaMemcpy(in, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
  auto host = outputs<uint32_t>(96, [&](uint32_t* out) {
    cp_async_kernel<<<1, 32>>>(in, out);
  });
  cudaFree(in);
  std::string bad;
  for (int lane = 0; lane < 32; ++lane) {
    const uint32_t* w = x.data() + 8 * lane;
    uint32_t want[3] = {w[0], w[3], w[4] ^ w[7]};
    for (int k = 0; k < 3; ++k) {
      if (host[3 * lane + k] != want[k] && bad.empty()) {
        bad = "lane " + std::to_string(lane) + " word " + std::to_string(k);
      }
    }
  }
  check("cp.async groups", bad.empty(), bad);
}

// ld.global.nc.L1::no_allocate.v4.u32: 16 bytes of device memory into four
// registers, the first at the lowest address.
__global__ void load_streamed_kernel(const uint32_t* in, uint32_t* out) {
  uint32_t x, y, z, w;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(x), "=r"(y), "=r"(z), "=r"(w)
      : "l"(in + 4 * threadIdx.x));
  out[4 * threadIdx.x] = x;
  out[4 * threadIdx.x + 1] = y;
  out[4 * threadIdx.x + 2] = z;
  out[4 * threadIdx.x + 3] = w;
}

void check_load_streamed() {
  std::vector<uint32_t> x(128);
  for (int i = 0; i < 128; ++i) {
    x[i] = 0x9e3779b9u * (i + 1);
  }
  uint32_t* in;
  cudaMalloc(&in, x.size() * 4);
  cudaMemcpy(in, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
  auto got = outputs<uint32_t>(x.size(), [&](uint32_t* out) {
    load_streamed_kernel<<<1, 32>>>(in, out);
  });
  cudaFree(in);
  std::string bad;
  for (int i = 0; i < 128 && bad.empty(); ++i) {
    if (got[i] != x[i]) {
      bad = "word " + std::to_string(i);
    }
  }
  check("ld.global.nc.L1::no_allocate.v4.u32", bad.empty(), bad);
}

// Misuses the executor must refuse.
__global__ void local_as_shared_kernel(uint32_t* out) {
  uint32_t local[4] = {1, 2, 3, 4};
  uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(local));
  uint32_t y;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(y) : "r"(address));
  out[threadIdx.x] = y;
}

__global__ void past_the_end_kernel(uint32_t* out) {
  __shared__ uint32_t words[8];
  words[threadIdx.x % 8] = threadIdx.x;
  __syncthreads();
  uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(words));
  uint32_t y;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(y) : "r"(address + 32));
  out[threadIdx.x] = y;
}

int main(int argc, char** argv) {
  if (argc > 1) {
    std::string misuse = argv[1];
    uint32_t* out;
    cudaMalloc(&out, 128 * sizeof(uint32_t));
    if (misuse == "local-as-shared") {
      local_as_shared_kernel<<<1, 32>>>(out);
    } else if (misuse == "past-the-end") {
      past_the_end_kernel<<<1, 32>>>(out);
    } else if (misuse == "misaligned-ldmatrix") {
      ldmatrix_kernel<<<1, 32>>>(out, 0, 1);
    } else if (misuse == "dynamic-smem-unraised") {
      ex2_kernel<<<1, 32, 64 * 1024>>>(nullptr, nullptr, 0);
    }
    cudaDeviceSynchronize();
    std::printf("not refused: %s\n", misuse.c_str());
    return 0;
  }
  check_mma(false);
  check_mma(true);
  check_ldmatrix(false);
  check_ldmatrix(true);
  check_movmatrix();
  check_ex2();
  check_shuffles();
  check_cp_async();
  check_load_streamed();
  std::printf("%d checks failed\n", failures);
  return failures ? 1 : 0;
}
