// A 16 × 16 transpose of 32-bit words in AVX-512 registers, shared by the int8 kernels (int8_matmul.cpp turns
// AMX's transposed result tiles back, int8_matmul_vnni.cpp repacks weight rows). Listed as a header of both in
// int8_matmul.py, so that a change here rebuilds them.
#pragma once

#include <immintrin.h>

namespace luoxia {

// r[0..16) transposed in place: three rounds of shuffles (32-bit pairs, 64-bit pairs, 128-bit lanes twice).
inline void transpose16(__m512i r[16]) {
  __m512i quads[4][4];  // [g][j]: in 128-bit lane L, column 4L + j of rows 4g..4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512i t0 = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]), t1 = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
    const __m512i t2 = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]);
    const __m512i t3 = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
    quads[g][0] = _mm512_unpacklo_epi64(t0, t2);
    quads[g][1] = _mm512_unpackhi_epi64(t0, t2);
    quads[g][2] = _mm512_unpacklo_epi64(t1, t3);
    quads[g][3] = _mm512_unpackhi_epi64(t1, t3);
  }
  for (int j = 0; j < 4; ++j) {  // 0x88 takes lanes 0 and 2 of each side, 0xdd lanes 1 and 3
    const __m512i low_even = _mm512_shuffle_i32x4(quads[0][j], quads[1][j], 0x88);
    const __m512i low_odd = _mm512_shuffle_i32x4(quads[0][j], quads[1][j], 0xdd);
    const __m512i high_even = _mm512_shuffle_i32x4(quads[2][j], quads[3][j], 0x88);
    const __m512i high_odd = _mm512_shuffle_i32x4(quads[2][j], quads[3][j], 0xdd);
    r[j] = _mm512_shuffle_i32x4(low_even, high_even, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(low_even, high_even, 0xdd);
    r[4 + j] = _mm512_shuffle_i32x4(low_odd, high_odd, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(low_odd, high_odd, 0xdd);
  }
}

}  // namespace luoxia
