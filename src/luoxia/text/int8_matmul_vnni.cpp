// luoxia::int8_matmul_vnni: q · wᵀ in int32 for int8 activations q (M, K) and int8 weights w (N, K), with
// AVX-512 VNNI for CPUs without AMX; exactly torch._int_mm(q, w.t()). int8_matmul.py says why and what it measured.
//
// VPDPBUSD multiplies 64 unsigned bytes by 64 signed ones and adds each 4 neighbours into 16 int32 lanes. Here a
// lane is a weight row n: each block of 16 weight rows is repacked, 64 bytes of k at a time, into [k / 4][n][k % 4]
// (a 16 × 16 transpose of 32-bit words) with 128 added to each byte to make it unsigned, and each 4 bytes of an
// activation row are broadcast to all lanes, so 16 rows of activations keep 16 accumulators of 16 columns each
// and the result comes out in place. The + 128 is taken back with 128 × each activation row's sum. The block
// being multiplied asks the cache for the one two blocks on, a line per step, so that reading the weights from
// memory overlaps the arithmetic instead of waiting between blocks.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_int_mm.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "transpose16.h"

namespace {

constexpr int64_t LANES = 16;        // int32 lanes of a vector: weight rows of a block, activation rows of a chunk
constexpr int64_t DEPTH = 64;        // bytes of k a vector holds
constexpr int64_t PREFETCH_AHEAD = 2;  // blocks between the one multiplied and the one asked for
// Bytes of k packed and multiplied at a time, so that a block's slice and 16 activation rows' (8 KB each) stay in
// a 48 KB L1 cache however wide the layer (SmolLM2's 576 and 1,536 ran the same with whole rows).
constexpr int64_t SLICE = 512;
// Products of more rows (prompts) go to torch._int_mm: the repacking pays for itself over few rows only
// (1.6x _int_mm's speed over a step at 16 rows, 1.2x at 32, 0.87x at 64; benchmarks/int8_matmul.py).
constexpr int64_t MOST_ROWS = 32;

// Activation rows [m0, m0 + 16) as [k / 4][m][k % 4] (rows past M zero), and each row's sum into `sums`.
void pack_rows(const int8_t* q, int64_t M, int64_t K, int64_t m0, int8_t* packed, int32_t* sums) {
  const int64_t rows = std::min(LANES, M - m0);
  if (rows < LANES) std::memset(packed, 0, K * LANES);
  for (int64_t m = 0; m < rows; ++m) {
    const int8_t* row = q + (m0 + m) * K;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += row[k];
    sums[m] = sum;
    for (int64_t k = 0; k < K; k += 4) std::memcpy(packed + (k / 4 * LANES + m) * 4, row + k, 4);
  }
}

// Bytes [k0, k0 + width) of 16 weight rows (from w, K wide) as [k / 4][n][k % 4], each byte + 128 (unsigned).
void pack_weights(const int8_t* w, int64_t K, int64_t k0, int64_t width, uint8_t* packed) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));  // x ^ 0x80 = x + 128 as an unsigned byte
  for (int64_t k = 0; k < width; k += DEPTH) {
    __m512i r[LANES];
    for (int n = 0; n < LANES; ++n) r[n] = _mm512_loadu_si512(w + n * K + k0 + k);
    luoxia::transpose16(r);
    for (int c = 0; c < LANES; ++c) _mm512_store_si512(packed + (k / 4 + c) * DEPTH, _mm512_xor_si512(r[c], flip));
  }
}

#define LUOXIA_EACH_ROW(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

// ROWS packed activation rows (`x`, with their `sums`) times `steps` × 4 bytes of k of a packed block of 16 weight
// rows, added to out[m][0..16) (rows N apart; zeros before the `first` slice, the + 128 taken back after the
// `last`), asking the cache for `ahead` (in the block two on) a line a step. The accumulators are named variables
// and the product is written as assembly: GCC 12 keeps neither an array of them nor the intrinsic's result in
// registers, and copies all 16 on every step.
template <int ROWS>
void multiply(const uint8_t* block, int64_t steps, const int8_t* x, const int32_t* sums, int32_t* out, int64_t N,
              const int8_t* ahead, bool first, bool last) {
#define LUOXIA_START(i) __m512i sum##i = (ROWS > i && !first) ? _mm512_loadu_si512(out + i * N) : _mm512_setzero_si512();
  LUOXIA_EACH_ROW(LUOXIA_START)
  const int32_t* words = reinterpret_cast<const int32_t*>(x);
  for (int64_t k4 = 0; k4 < steps; ++k4, words += LANES) {
    const __m512i weights = _mm512_load_si512(block + k4 * DEPTH);
    _mm_prefetch(reinterpret_cast<const char*>(ahead + k4 * DEPTH), _MM_HINT_T1);
#define LUOXIA_STEP(i) \
  if constexpr (ROWS > i) asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(sum##i) : "v"(weights), "m"(words[i]));
    LUOXIA_EACH_ROW(LUOXIA_STEP)
  }
#define LUOXIA_STORE(i)                                                                           \
  if constexpr (ROWS > i) {                                                                       \
    const __m512i offset = _mm512_set1_epi32(last ? static_cast<int32_t>(int64_t{sums[i]} * 128) : 0); \
    _mm512_storeu_si512(out + i * N, _mm512_sub_epi32(sum##i, offset));                           \
  }
  LUOXIA_EACH_ROW(LUOXIA_STORE)
}

using Multiply = void (*)(const uint8_t*, int64_t, const int8_t*, const int32_t*, int32_t*, int64_t, const int8_t*,
                          bool, bool);
template <int... R>
constexpr std::array<Multiply, sizeof...(R)> multiplies(std::integer_sequence<int, R...>) { return {&multiply<R + 1>...}; }
constexpr auto MULTIPLY = multiplies(std::make_integer_sequence<int, LANES>{});  // MULTIPLY[rows - 1]

at::Tensor int8_matmul_vnni(const at::Tensor& q, const at::Tensor& w) {
  TORCH_CHECK(q.scalar_type() == at::kChar && w.scalar_type() == at::kChar, "int8_matmul_vnni: q and w must be int8");
  TORCH_CHECK(q.dim() == 2 && w.dim() == 2 && q.size(1) == w.size(1),
              "int8_matmul_vnni: q (M, K) and w (N, K) must be matrices of the same width K");
  const int64_t M = q.size(0), K = q.size(1), N = w.size(0);
  TORCH_CHECK(K % DEPTH == 0 && K > 0, "int8_matmul_vnni: the width K must be a multiple of 64, not ", K);
  TORCH_CHECK(N % LANES == 0, "int8_matmul_vnni: the weight's rows N must be a multiple of 16, not ", N);
  if (M > MOST_ROWS) return at::_int_mm(q, w.t());
  const at::Tensor qc = q.contiguous(), wc = w.contiguous();
  at::Tensor out = at::empty({M, N}, q.options().dtype(at::kInt));
  if (M == 0 || N == 0) return out;
  const int64_t chunks = (M + LANES - 1) / LANES;
  at::Tensor packed = at::empty({chunks * K * LANES + DEPTH}, q.options());  // + DEPTH: room to align
  int8_t* rows = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(packed.data_ptr<int8_t>()) + DEPTH - 1)
                                           & ~static_cast<uintptr_t>(DEPTH - 1));
  std::vector<int32_t> sums(chunks * LANES, 0);
  for (int64_t c = 0; c < chunks; ++c)
    pack_rows(qc.data_ptr<int8_t>(), M, K, c * LANES, rows + c * K * LANES, sums.data() + c * LANES);
  const int8_t* weights = wc.data_ptr<int8_t>();
  int32_t* result = out.data_ptr<int32_t>();
  const int64_t blocks = N / LANES;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    alignas(64) uint8_t block[SLICE * LANES];
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* ahead = weights + std::min(b + PREFETCH_AHEAD, blocks - 1) * LANES * K;
      for (int64_t k0 = 0; k0 < K; k0 += SLICE) {
        const int64_t width = std::min(SLICE, K - k0);
        pack_weights(weights + b * LANES * K, K, k0, width, block);
        for (int64_t c = 0; c < chunks; ++c) {  // the packed slice stays in L1 across the chunks of rows
          const int64_t valid = std::min(LANES, M - c * LANES);
          MULTIPLY[valid - 1](block, width / 4, rows + (c * K + k0) * LANES, sums.data() + c * LANES,
                              result + c * LANES * N + b * LANES, N, ahead + k0 * LANES, k0 == 0, k0 + width == K);
        }
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(luoxia, m) {
  m.def("int8_matmul_vnni(Tensor q, Tensor w) -> Tensor");
}

TORCH_LIBRARY_IMPL(luoxia, CPU, m) {
  m.impl("int8_matmul_vnni", &int8_matmul_vnni);
}
