// luoxia::decode_attention: attention of a few new query tokens over a float32 or bfloat16 key/value cache on
// the CPU.
// Each key head's cached keys and values are read once for all the query rows that share it (decode_attention.py
// says why and what it measured). Vectors are ATen's `Vectorized<float>`, as in Inductor's own kernels; the build
// defines CPU_CAPABILITY_AVX512 or _AVX2 for the machine it runs on.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/functional_bfloat16.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t LANES = Vec::size();
constexpr int64_t ROWS = 4;       // query rows kept in registers at once
constexpr int64_t MAX_WIDTH = 128 / LANES;  // the widest head taken, in vectors: 128 floats

// LANES floats from float32 or bfloat16 (widened exactly).
inline Vec load(const float* p) { return Vec::loadu(p); }
inline Vec load(const at::BFloat16* p) {
  Vec out;
  at::vec::load_to_float<at::BFloat16>(p, out);
  return out;
}

// Scores (rows × S) of `n` query rows (each `width` vectors wide) against the keys.
template <int64_t N, typename Cache>
void score_rows(const float* const* queries, int64_t width, const Cache* keys, int64_t key_stride, int64_t S,
                float scale, float* const* scores) {
  Vec q[N][MAX_WIDTH];
  for (int64_t r = 0; r < N; ++r)
    for (int64_t w = 0; w < width; ++w) q[r][w] = Vec::loadu(queries[r] + w * LANES);
  for (int64_t s = 0; s < S; ++s) {
    const Cache* key = keys + s * key_stride;
    Vec sum[N];
    for (int64_t r = 0; r < N; ++r) sum[r] = Vec(0.0f);
    for (int64_t w = 0; w < width; ++w) {
      const Vec k = load(key + w * LANES);
      for (int64_t r = 0; r < N; ++r) sum[r] = at::vec::fmadd(q[r][w], k, sum[r]);
    }
    for (int64_t r = 0; r < N; ++r) scores[r][s] = sum[r].reduce_add() * scale;
  }
}

// acc (rows × width vectors) = weights (rows × S) · values.
template <int64_t N, typename Cache>
void weigh_rows(float* const* weights, int64_t width, const Cache* values, int64_t value_stride, int64_t S,
                float* const* out) {
  Vec acc[N][MAX_WIDTH];
  for (int64_t r = 0; r < N; ++r)
    for (int64_t w = 0; w < width; ++w) acc[r][w] = Vec(0.0f);
  for (int64_t s = 0; s < S; ++s) {
    const Cache* value = values + s * value_stride;
    Vec p[N];
    for (int64_t r = 0; r < N; ++r) p[r] = Vec(weights[r][s]);
    for (int64_t w = 0; w < width; ++w) {
      const Vec v = load(value + w * LANES);
      for (int64_t r = 0; r < N; ++r) acc[r][w] = at::vec::fmadd(p[r], v, acc[r][w]);
    }
  }
  for (int64_t r = 0; r < N; ++r)
    for (int64_t w = 0; w < width; ++w) acc[r][w].store(out[r] + w * LANES);
}

// In place: row = softmax(row) over S entries (-inf = masked); a row with nothing to attend gets zeros.
void softmax_row(float* row, int64_t S) {
  const float top = at::vec::reduce_all<float>([](Vec& a, Vec& b) { return at::vec::maximum(a, b); }, row, S);
  if (top == -std::numeric_limits<float>::infinity()) {
    std::fill(row, row + S, 0.0f);
    return;
  }
  at::vec::map([top](Vec x) { return (x - Vec(top)).exp_u20(); }, row, row, S);
  const float total = at::vec::reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, row, S);
  const float inverse = 1.0f / total;
  at::vec::map([inverse](Vec x) { return x * Vec(inverse); }, row, row, S);
}

// Calls fn.template operator()<n>() for n = rows, 1 to ROWS: the row count fixed at compile time.
template <typename Fn>
void with_rows(int64_t rows, Fn&& fn) {
  switch (rows) {
    case 1: fn.template operator()<1>(); break;
    case 2: fn.template operator()<2>(); break;
    case 3: fn.template operator()<3>(); break;
    default: fn.template operator()<4>(); break;
  }
}

// out (B, T, H·D) = attention of q (B, H, T, D, contiguous) over k and v (B, K, S, D) of element type Cache.
template <typename Cache>
void attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor* mask, at::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), K = k.size(1), S = k.size(2);
  const int64_t G = H / K, R = G * T;  // query heads per key head; query rows per key head (r = g * T + t)
  const int64_t width = D / LANES;
  const float* qp = q.data_ptr<float>();
  const Cache* kp = k.data_ptr<Cache>();
  const Cache* vp = v.data_ptr<Cache>();
  const bool* mp = mask != nullptr ? mask->data_ptr<bool>() : nullptr;
  float* op = out.data_ptr<float>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  // One work item: up to ROWS query rows of one key head of one batch row, so that the threads share out a
  // one-row step's few key heads' rows too (T > 1: a speculative check).
  const int64_t groups = (R + ROWS - 1) / ROWS;
  at::parallel_for(0, B * K * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(ROWS * S);
    float* scores[ROWS];
    const float* queries[ROWS];
    float* outs[ROWS];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / (K * groups), kh = i / groups % K, first = i % groups * ROWS;
      const int64_t n = std::min(ROWS, R - first);
      const Cache* keys = kp + b * k.stride(0) + kh * k.stride(1);
      const Cache* values = vp + b * v.stride(0) + kh * v.stride(1);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t g = (first + j) / T, t = (first + j) % T;
        scores[j] = scratch.data() + j * S;
        queries[j] = qp + ((b * H + kh * G + g) * T + t) * D;
        outs[j] = op + (b * T + t) * H * D + (kh * G + g) * D;
      }
      with_rows(n, [&]<int64_t N>() { score_rows<N>(queries, width, keys, k.stride(2), S, scale, scores); });
      for (int64_t j = 0; j < n; ++j) {
        if (mp != nullptr) {
          const bool* allowed = mp + b * mask->stride(0) + (first + j) % T * mask->stride(2);
          for (int64_t s = 0; s < S; ++s)
            if (!allowed[s * mask->stride(3)]) scores[j][s] = -std::numeric_limits<float>::infinity();
        }
        softmax_row(scores[j], S);
      }
      with_rows(n, [&]<int64_t N>() { weigh_rows<N>(scores, width, values, v.stride(2), S, outs); });
    }
  });
}

// q (B, H, T, D) float32; k and v (B, K, S, D) float32 or bfloat16 with unit stride in D; mask (B, 1, T, S)
// boolean (true = attend) or none. Returns softmax(q·kᵀ/√D + mask)·v as (B, T, H·D) float32, the layout the
// output projection takes.
at::Tensor decode_attention(const at::Tensor& q_in, const at::Tensor& k, const at::Tensor& v,
                            const std::optional<at::Tensor>& mask_in) {
  TORCH_CHECK(q_in.dim() == 4 && k.dim() == 4 && v.dim() == 4, "decode_attention: q, k, v must be 4-D");
  TORCH_CHECK(q_in.scalar_type() == at::kFloat, "decode_attention: q must be float32");
  TORCH_CHECK(k.scalar_type() == v.scalar_type() && (k.scalar_type() == at::kFloat || k.scalar_type() == at::kBFloat16),
              "decode_attention: k and v must both be float32 or both bfloat16");
  TORCH_CHECK(k.sizes() == v.sizes() && k.stride(3) == 1 && v.stride(3) == 1,
              "decode_attention: k and v must have one shape and unit stride in the last dimension");
  const int64_t B = q_in.size(0), H = q_in.size(1), T = q_in.size(2), D = q_in.size(3);
  const int64_t K = k.size(1), S = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(3) == D && K > 0 && H % K == 0,
              "decode_attention: k (B, K, S, D) does not match q (B, H, T, D) with H a multiple of K");
  TORCH_CHECK(D % LANES == 0 && D / LANES <= MAX_WIDTH, "decode_attention: head width ", D, " is not a multiple of ",
              LANES, " up to ", LANES * MAX_WIDTH);
  const at::Tensor q = q_in.contiguous();
  at::Tensor out = at::empty({B, T, H * D}, q.options());
  at::Tensor mask;
  if (mask_in.has_value()) {
    TORCH_CHECK(mask_in->scalar_type() == at::kBool, "decode_attention: the mask must be boolean");
    mask = mask_in->expand({B, 1, T, S});
  }
  const at::Tensor* mask_or_none = mask_in.has_value() ? &mask : nullptr;
  if (k.scalar_type() == at::kFloat) {
    attend<float>(q, k, v, mask_or_none, out);
  } else {
    attend<at::BFloat16>(q, k, v, mask_or_none, out);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(luoxia, m) {
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, Tensor? mask) -> Tensor");
}

TORCH_LIBRARY_IMPL(luoxia, CPU, m) {
  m.impl("decode_attention", &decode_attention);
}
