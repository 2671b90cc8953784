// luoxia::int8_matmul_avx2 (built with -mavxvnni: luoxia::int8_matmul_avxvnni): q · wᵀ in int32 for int8 activations
// q (M, K) and int8 weights w (N, K), with AVX2 (and AVX-VNNI), for CPUs without AVX-512 VNNI; the exact integer
// product, torch._int_mm(q, w.t())'s where oneDNN's is exact. int8_matmul.py says why and what it measured.
//
// Each weight row is multiplied with each activation row as a dot product along k, four weight rows at a time
// (read once from memory and kept in L1 while every activation row passes), two activation rows at a time, so that
// eight sums, the four weight vectors and an activation vector fit the 16 vector registers. With AVX-VNNI,
// VPDPBUSD multiplies 32 unsigned weight bytes (each + 128, taken back as 128 × the activation row's sum) by 32
// signed activation bytes and adds each 4 neighbours into 8 int32 lanes. Plain AVX2 has no exact byte product
// (VPMADDUBSW saturates), so the activations are widened to int16 once, the weights 16 at a time as they are read,
// and VPMADDWD adds each pair of products. The lanes of each sum are added up once, at the end of the row. The
// first pass over a block asks the cache for the block two on, a line or two a step, so that reading the weights
// from memory overlaps the arithmetic (one row's products 7.3 → 6.3 ms a step, 16 rows' 17.0 → 13.0, AVX-VNNI).
#include <ATen/core/Tensor.h>
#include <ATen/ops/_int_mm.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

constexpr int64_t WEIGHT_ROWS = 4;  // weight rows multiplied together: a block
constexpr int64_t PREFETCH_AHEAD = 2;  // blocks between the one multiplied and the one asked for
// With AVX-VNNI, products of more rows go to torch._int_mm, whose blocking pays off there (benchmarks/int8_matmul.py).
// Without it they stay here: oneDNN's AVX2 path multiplies bytes with VPMADDUBSW, whose int16 sums saturate, and
// gets most sums wrong (all of them for random int8 operands, 40% with activations within ±20).
#ifdef __AVXVNNI__
constexpr const char* NAME = "int8_matmul_avxvnni";
constexpr int64_t MOST_ROWS = 32;
using Activation = int8_t;
constexpr int64_t STEP = 32;  // elements of k a multiply-add takes
constexpr int32_t OFFSET = 128;

inline __m256i weights_at(const int8_t* w) {  // 32 weights as unsigned bytes: x ^ 0x80 = x + 128
  return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
                          _mm256_set1_epi8(static_cast<char>(0x80)));
}
// Written as assembly: GCC 12 copies the sum around the intrinsic's result, and spills it, on every step.
inline __m256i multiply_add(__m256i sum, __m256i w, __m256i x) {
  asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(sum) : "x"(w), "x"(x));
  return sum;
}
#else
constexpr const char* NAME = "int8_matmul_avx2";
constexpr int64_t MOST_ROWS = INT64_MAX;
using Activation = int16_t;
constexpr int64_t STEP = 16;
constexpr int32_t OFFSET = 0;

inline __m256i weights_at(const int8_t* w) {  // 16 weights widened to int16
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}
inline __m256i multiply_add(__m256i sum, __m256i w, __m256i x) { return _mm256_add_epi32(sum, _mm256_madd_epi16(w, x)); }
#endif

// The 8 lanes of each of s[0..4) added up: {Σ s[0], Σ s[1], Σ s[2], Σ s[3]}.
inline __m128i add_lanes(const __m256i s[WEIGHT_ROWS]) {
  const __m256i pairs = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
}

// ROWS activation rows (x, K apart, with 128 × their sums in `offsets`) times 4 weight rows (w, K apart), into
// out[r][0..4) (rows N apart).
template <int ROWS>
void multiply(const int8_t* w, int64_t K, const Activation* x, const int32_t* offsets, int32_t* out, int64_t N,
              const int8_t* ahead) {
  __m256i sums[ROWS][WEIGHT_ROWS];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < WEIGHT_ROWS; ++j) sums[r][j] = _mm256_setzero_si256();
  for (int64_t k = 0; k < K; k += STEP) {
    __m256i weights[WEIGHT_ROWS];
    for (int j = 0; j < WEIGHT_ROWS; ++j) weights[j] = weights_at(w + j * K + k);
    if (ahead != nullptr)  // a block is WEIGHT_ROWS * K contiguous bytes: WEIGHT_ROWS * STEP of them a step
      for (int64_t line = 0; line < WEIGHT_ROWS * STEP; line += 64)
        _mm_prefetch(reinterpret_cast<const char*>(ahead + WEIGHT_ROWS * k + line), _MM_HINT_T1);
    for (int r = 0; r < ROWS; ++r) {  // loaded once for the 4 weight rows: loads, not arithmetic, bound this loop
      const __m256i activations = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + r * K + k));
      for (int j = 0; j < WEIGHT_ROWS; ++j) sums[r][j] = multiply_add(sums[r][j], weights[j], activations);
    }
  }
  for (int r = 0; r < ROWS; ++r) {
    const __m128i dots = _mm_sub_epi32(add_lanes(sums[r]), _mm_set1_epi32(offsets[r]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + r * N), dots);
  }
}

at::Tensor int8_matmul_avx2(const at::Tensor& q, const at::Tensor& w) {
  TORCH_CHECK(q.scalar_type() == at::kChar && w.scalar_type() == at::kChar, NAME, ": q and w must be int8");
  TORCH_CHECK(q.dim() == 2 && w.dim() == 2 && q.size(1) == w.size(1),
              NAME, ": q (M, K) and w (N, K) must be matrices of the same width K");
  const int64_t M = q.size(0), K = q.size(1), N = w.size(0);
  TORCH_CHECK(K % 32 == 0 && K > 0, NAME, ": the width K must be a multiple of 32, not ", K);
  TORCH_CHECK(N % WEIGHT_ROWS == 0, NAME, ": the weight's rows N must be a multiple of 4, not ", N);
  if (M > MOST_ROWS) return at::_int_mm(q, w.t());
  const at::Tensor qc = q.contiguous(), wc = w.contiguous();
  at::Tensor out = at::empty({M, N}, q.options().dtype(at::kInt));
  if (M == 0 || N == 0) return out;
  const int8_t* rows = qc.data_ptr<int8_t>();
  std::vector<Activation> x(rows, rows + M * K);  // plain AVX2: widened to int16
  std::vector<int32_t> offsets(M, 0);
  for (int64_t m = 0; m < M; ++m) {
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += rows[m * K + k];
    offsets[m] = OFFSET * sum;
  }
  const int8_t* weights = wc.data_ptr<int8_t>();
  int32_t* result = out.data_ptr<int32_t>();
  at::parallel_for(0, N / WEIGHT_ROWS, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* block = weights + b * WEIGHT_ROWS * K;
      const int8_t* ahead = weights + std::min(b + PREFETCH_AHEAD, N / WEIGHT_ROWS - 1) * WEIGHT_ROWS * K;
      int64_t m = 0;
      for (; m + 2 <= M; m += 2)  // the first pass asks for the block ahead; the others find this one in L1
        multiply<2>(block, K, x.data() + m * K, offsets.data() + m, result + m * N + b * WEIGHT_ROWS, N,
                    m == 0 ? ahead : nullptr);
      if (m < M)
        multiply<1>(block, K, x.data() + m * K, offsets.data() + m, result + m * N + b * WEIGHT_ROWS, N,
                    m == 0 ? ahead : nullptr);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(luoxia, m) {
  m.def((std::string(NAME) + "(Tensor q, Tensor w) -> Tensor").c_str());
}

TORCH_LIBRARY_IMPL(luoxia, CPU, m) {
  m.impl(NAME, &int8_matmul_avx2);
}
