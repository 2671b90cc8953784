// luoxia::int8_matmul: q · wᵀ in int32 for int8 activations q (M, K) and int8 weights w (N, K), with the CPU's
// AMX tile unit; exactly torch._int_mm(q, w.t()). int8_matmul.py says why and what it measured.
//
// AMX multiplies a 16×64 int8 tile by a 64×16 one packed four bytes deep (each 64-byte row holds 4 consecutive
// k of 16 columns) into a 16×16 int32 tile. The weights are the big side and stay as they are: 16 consecutive
// weight rows are the first tile as they lie in memory, one contiguous block, so each weight is read once and
// in order. The few activation rows are packed four deep instead, and the result comes out transposed (n by m),
// which the store turns back.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "transpose16.h"

namespace {

constexpr int64_t TILE = 16;     // rows of a tile; columns of a result tile
constexpr int64_t DEPTH = 64;    // int8 values along k in one tile row
constexpr int64_t GROUP = 4;     // blocks of 16 weight rows multiplied together (tiles 0-3 hold their sums)

struct TileConfig {  // the layout `ldtilecfg` reads: palette 1, then per tile its bytes a row and rows
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Every tile used is 16 rows of 64 bytes: 0-3 int32 sums, 4-5 weights, 6 packed activations.
void configure_tiles() {
  TileConfig config;
  for (int t = 0; t < 7; ++t) {
    config.rows[t] = TILE;
    config.bytes_per_row[t] = DEPTH;
  }
  _tile_loadconfig(&config);
}

// The activation rows [m0, m0 + 16) four deep: packed[k / 4][m][k % 4], rows past M zero.
void pack_rows(const int8_t* q, int64_t M, int64_t K, int64_t m0, int8_t* packed) {
  const int64_t rows = std::min(TILE, M - m0);
  if (rows < TILE) std::memset(packed, 0, K * TILE);
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t k = 0; k < K; k += 4) std::memcpy(packed + (k / 4 * TILE + m) * 4, q + (m0 + m) * K + k, 4);
}

// Sums of BLOCKS blocks of 16 weight rows (from w, K wide) with 16 packed activation rows, into `sums`
// (BLOCKS tiles of 16 × 16 int32, weight row by activation row).
template <int BLOCKS>
void multiply(const int8_t* w, int64_t K, const int8_t* packed, int32_t* sums) {
  if constexpr (BLOCKS > 0) _tile_zero(0);
  if constexpr (BLOCKS > 1) _tile_zero(1);
  if constexpr (BLOCKS > 2) _tile_zero(2);
  if constexpr (BLOCKS > 3) _tile_zero(3);
  for (int64_t k = 0; k < K; k += DEPTH) {
    _tile_loadd(6, packed + k * TILE, DEPTH);
    const int8_t* a = w + k;
    if constexpr (BLOCKS > 0) { _tile_loadd(4, a, K); _tile_dpbssd(0, 4, 6); }
    if constexpr (BLOCKS > 1) { _tile_loadd(5, a + TILE * K, K); _tile_dpbssd(1, 5, 6); }
    if constexpr (BLOCKS > 2) { _tile_loadd(4, a + 2 * TILE * K, K); _tile_dpbssd(2, 4, 6); }
    if constexpr (BLOCKS > 3) { _tile_loadd(5, a + 3 * TILE * K, K); _tile_dpbssd(3, 5, 6); }
  }
  if constexpr (BLOCKS > 0) _tile_stored(0, sums, DEPTH);
  if constexpr (BLOCKS > 1) _tile_stored(1, sums + 256, DEPTH);
  if constexpr (BLOCKS > 2) _tile_stored(2, sums + 512, DEPTH);
  if constexpr (BLOCKS > 3) _tile_stored(3, sums + 768, DEPTH);
}

at::Tensor int8_matmul(const at::Tensor& q, const at::Tensor& w) {
  TORCH_CHECK(q.scalar_type() == at::kChar && w.scalar_type() == at::kChar, "int8_matmul: q and w must be int8");
  TORCH_CHECK(q.dim() == 2 && w.dim() == 2 && q.size(1) == w.size(1),
              "int8_matmul: q (M, K) and w (N, K) must be matrices of the same width K");
  const int64_t M = q.size(0), K = q.size(1), N = w.size(0);
  TORCH_CHECK(K % DEPTH == 0 && K > 0, "int8_matmul: the width K must be a multiple of 64, not ", K);
  TORCH_CHECK(N % TILE == 0, "int8_matmul: the weight's rows N must be a multiple of 16, not ", N);
  const at::Tensor qc = q.contiguous(), wc = w.contiguous();
  at::Tensor out = at::empty({M, N}, q.options().dtype(at::kInt));
  if (M == 0 || N == 0) return out;
  const int64_t chunks = (M + TILE - 1) / TILE;
  at::Tensor packed = at::empty({chunks, K * TILE}, q.options());
  for (int64_t c = 0; c < chunks; ++c) pack_rows(qc.data_ptr<int8_t>(), M, K, c * TILE, packed.data_ptr<int8_t>() + c * K * TILE);
  const int8_t* weights = wc.data_ptr<int8_t>();
  const int8_t* rows = packed.data_ptr<int8_t>();
  int32_t* result = out.data_ptr<int32_t>();
  at::parallel_for(0, N / TILE, 1, [&](int64_t begin, int64_t end) {
    configure_tiles();
    alignas(64) int32_t sums[GROUP * TILE * TILE];
    for (int64_t block = begin; block < end; block += GROUP) {
      const int blocks = static_cast<int>(std::min(GROUP, end - block));
      const int8_t* wb = weights + block * TILE * K;
      for (int64_t c = 0; c < chunks; ++c) {  // the weight blocks stay in L2 across the chunks of rows
        const int8_t* pc = rows + c * K * TILE;
        switch (blocks) {
          case 4: multiply<4>(wb, K, pc, sums); break;
          case 3: multiply<3>(wb, K, pc, sums); break;
          case 2: multiply<2>(wb, K, pc, sums); break;
          default: multiply<1>(wb, K, pc, sums); break;
        }
        const int64_t valid = std::min(TILE, M - c * TILE);
        for (int b = 0; b < blocks; ++b) {  // sums[b][n][m] → result[m][n]
          __m512i columns[TILE];
          for (int n = 0; n < TILE; ++n) columns[n] = _mm512_load_si512(sums + (b * TILE + n) * TILE);
          luoxia::transpose16(columns);
          for (int64_t m = 0; m < valid; ++m)
            _mm512_storeu_si512(result + (c * TILE + m) * N + (block + b) * TILE, columns[m]);
        }
      }
    }
    _tile_release();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(luoxia, m) {
  m.def("int8_matmul(Tensor q, Tensor w) -> Tensor");
}

TORCH_LIBRARY_IMPL(luoxia, CPU, m) {
  m.impl("int8_matmul", &int8_matmul);
}
